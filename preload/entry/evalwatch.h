/*
 * evalwatch: 3.9-3.11's frame watch, a frame evaluator that reports the pops of
 * Python frames (evalwatch.c). Switched by framewatch.c; all with the GIL
 * held.
 */
#ifndef PM_EVALWATCH_H
#define PM_EVALWATCH_H

#include <stdbool.h>

/* Once, at the interpreter's start: looks CPython's evaluator API up. False
 * when the watch cannot run (API missing, native stacks). */
bool pm_evalwatch_init(void);
/* Sets pymem's evaluator in the calling thread's interpreter and trusts
 * its counts; false when the interpreter has the program's own, or the
 * watch was retired. */
bool pm_evalwatch_start(void);
/* After the counts were no longer trusted (pm_pyframes_watch_stop):
 * CPython's evaluator back, unless the watch was started again since. */
void pm_evalwatch_pause(void);
/* The interpreter finalises: CPython's evaluator back, for good. */
void pm_evalwatch_end(void);

#endif
