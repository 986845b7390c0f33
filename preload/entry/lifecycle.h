/*
 * lifecycle: when pymem records and when it stays out of the way. Decides at
 * load time (Python or not, root process or child, configuration), starts the
 * capture, follows fork, notices thread exits, and ends the capture on every
 * exit path: return from main/exit(), _exit()/os._exit(), SIGTERM.
 */
#ifndef PM_LIFECYCLE_H
#define PM_LIFECYCLE_H

#include <stdbool.h>

struct pm_buffer;

/* Load-time decisions and the start of the capture: run by pymem's
 * constructor, or by the first malloc hook called before it. */
extern bool pm_lifecycle_loaded;
void pm_lifecycle_load(void);

/* _exit()/_Exit() hook: end the capture before the process goes. */
void pm_lifecycle_exit_now(int status);

/* exec hooks: before the call, ends the capture (END "exec") and returns
 * true if it did; after an exec that failed, recording goes on. */
bool pm_lifecycle_before_exec(void);
void pm_lifecycle_exec_failed(void);

/* True if `handler` is one pymem installed (SIGTERM, SIGHUP) where the
 * program had left the default: the program is told it is still SIG_DFL. */
int pm_lifecycle_owns_handler(void (*handler)(int));

/* Where SIGTERM and SIGHUP are at their default action, pymem's handler
 * stands in for it and ends the capture first (PYMEM_SIGNALS=0: never): at
 * start, and whenever the program puts the default back, as Python's
 * finalisation does for the handlers a program installed (a server's
 * worker, terminated twice, dies in the middle of its finalisation). For
 * the sigaction hook: true, with the action to install in *out, when `act`
 * sets the default of such a signal in the recording process. */
struct sigaction;
bool pm_lifecycle_stand_in(int sig, const struct sigaction *act, struct sigaction *out);

#endif
