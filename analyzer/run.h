/*
 * run: `pymem run` (start a program under the preload, forward signals,
 * report, return its exit status) and `pymem snapshot PID` (ask a running
 * profiled process for a snapshot).
 */
#ifndef PMA_RUN_H
#define PMA_RUN_H

struct option;

/* Both return the process exit status to use. */
int pm_run_main(int argc, char **argv);
int pm_snapshot_main(int argc, char **argv);

/* Prints the one-line error for a bad option getopt_long reported: `bad` is
 * its optopt (0 for an unknown long option, then `arg` is the word). main.c. */
void pm_option_error(const char *cmd, const struct option *opts, int bad, const char *arg, const char *help);

#endif
