/*
 * snapshot: `pymem snapshot [--tree] PID [--label L] [--timeout SEC]`: asks
 * recording processes for a snapshot through the control channel
 * (include/pymem/control.h), never with a signal, and waits until it is in
 * their captures.
 */
#ifndef PMA_SNAPSHOT_H
#define PMA_SNAPSHOT_H

/* Returns the process exit status to use: 0 when every snapshot asked for
 * is in its capture, 1 when a process is not recorded or did not answer, 2
 * on bad usage. */
int pm_snapshot_main(int argc, char **argv);

/* Removes the control files that processes killed outright left behind
 * (include/pymem/control.h): those of this pid namespace whose process is
 * gone or is another one now. Quiet: a file it cannot judge stays. */
void pm_snapshot_sweep(void);

#endif
