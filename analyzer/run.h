/*
 * run: `pymem run` (start a program under the preload, forward signals,
 * report, return its exit status) and `pymem snapshot PID` (ask a running
 * profiled process for a snapshot).
 */
#ifndef PMA_RUN_H
#define PMA_RUN_H

/* Both return the process exit status to use. */
int pm_run_main(int argc, char **argv);
int pm_snapshot_main(int argc, char **argv);

#endif
