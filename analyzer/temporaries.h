/*
 * temporaries: `pymem temporaries CAPTURE`, the allocations freed right
 * after they were made, by site: a CPU hint (each costs a malloc and a free
 * for nothing kept), as heaptrack and memray report them.
 */
#ifndef PMA_TEMPORARIES_H
#define PMA_TEMPORARIES_H

#include <stdio.h>

#include "commands.h"

/* A temporary allocation is one freed before its thread made
 * o->within_allocations more allocations (default 1: none in between, the
 * definition of heaptrack and memray); with o->within_ms > 0, one freed
 * within that many milliseconds instead (by the writer's 10 ms ticks). Each
 * site gives its temporaries and all its allocations. 0, or 1 after a
 * one-line error. */
int pm_cmd_temporaries(FILE *out, const char *path, const struct pm_opts *o);

#endif
