/*
 * framewatch: the frame watch's switch (framewatch.c): sys.monitoring
 * (3.12+) or a frame evaluator (3.9-3.11, evalwatch.c) counts the pops of
 * Python frames for the stack walk. All with the GIL held.
 */
#ifndef PM_FRAMEWATCH_H
#define PM_FRAMEWATCH_H

#include <stdbool.h>

/* Once, when pymem starts with Python 3.`minor`: reads PYMEM_FRAME_WATCH
 * and looks the API up. False when the watch stays off. */
bool pm_framewatch_init(int minor);
/* The process's first interpreter is initialised. */
void pm_framewatch_interpreter_up(void);
/* It begins to finalise: counts are no longer trusted, and the watch is
 * not started again. */
void pm_framewatch_interpreter_down(void);

#endif
