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

#endif
