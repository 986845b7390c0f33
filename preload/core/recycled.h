/*
 * recycled: re-attribution of Python objects that CPython recycles from its
 * free lists (tuples, lists, dicts, floats...) without calling an allocator.
 * Such an object belongs to the line that reused it, as tracemalloc says;
 * without this it would stay at the line that first allocated its memory.
 *
 * Python 3.13 tells a reference tracer (PyRefTracer_SetTracer) of every
 * object's birth: pymem sets one, chained to whatever tracer was set before
 * (tracemalloc sets its own while it traces, replacing any other, and clears
 * it when it stops, so pymem sets its own again at each check point). An
 * object born in the block a Python allocator just gave the same thread is
 * new and already recorded; any other birth is a recycled block: a RETAG
 * record moves it to the current stack. Before 3.13 the interpreter tells
 * only tracemalloc: recycled objects keep their first line there (see the
 * README, "Attribution").
 *
 * Call everything with the GIL held.
 */
#ifndef PM_RECYCLED_H
#define PM_RECYCLED_H

#include <stdbool.h>

/* For Python 3.`minor`: true if recycled objects can be re-attributed. */
bool pm_recycled_init(int minor);
/* A check point: puts pymem's tracer back if another replaced it. */
void pm_recycled_check(void);
/* Finalisation has begun: no more re-attribution. */
void pm_recycled_stop(void);

#endif
