/*
 * run: `pymem run` (start a program under the preload, forward signals,
 * report, return its exit status).
 */
#ifndef PMA_RUN_H
#define PMA_RUN_H

/* Returns the process exit status to use. */
int pm_run_main(int argc, char **argv);

#endif
