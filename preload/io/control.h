/*
 * control: the process side of the control channel (include/pymem/control.h):
 * announces the capture, takes the snapshot requests `pymem snapshot` leaves,
 * and answers them. Called by the writer, with its lock held; never from
 * inside malloc. If the directory cannot be made private, the channel is
 * off: the program is unaffected and `pymem snapshot` says the process is
 * not reachable.
 */
#ifndef PM_CONTROL_H
#define PM_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

/* At capture open: the directory (from $TMPDIR, read by the caller while no
 * other thread runs) and <pid>.capture for `capture_path`. */
void pm_control_open(const char *tmpdir, const char *capture_path);
/* A pending request, if any: its token and label (cut to the limit). */
bool pm_control_take(char *token, size_t token_cap, char *label, size_t label_cap);
/* The snapshot asked for with `token` is in the capture. */
void pm_control_answer(const char *token, const char *label);
/* The capture ended (or this is a forked child, which forgets its parent's
 * channel without touching it: `ours` false). */
void pm_control_close(bool ours);
/* The process may die at once without an exit pymem sees (Python re-raises
 * an unhandled SIGINT right after finalising): <pid>.capture is taken away
 * now, so that it is not left behind, and pm_control_restore puts it back if
 * the process goes on recording (a later interpreter). */
void pm_control_withdraw(void);
void pm_control_restore(void);

#endif
