/*
 * unwind: the calling thread's native return addresses, from libunwind.
 * libunwind is loaded with dlopen(RTLD_LOCAL) only when native stacks are
 * asked for: linked in, its _Unwind_* and backtrace() symbols would take the
 * place of libgcc's and glibc's in the profiled program.
 * Runs inside malloc: no allocation of its own, no stdio.
 */
#ifndef PM_UNWIND_H
#define PM_UNWIND_H

#include <stdbool.h>
#include <stdint.h>

#include "pymem/env.h"

/* depth bounds and defaults: pymem/env.h */

/* Loads libunwind and turns its per-thread cache on. Call once, from the
 * constructor with the guard set. False (with one warning) if it cannot. */
bool pm_unwind_init(void);

/* Writes up to `max` return addresses of the caller's callers, innermost
 * first, leaving out pymem's own frames. Sets *truncated when the stack goes
 * deeper than `max`. */
int pm_unwind_backtrace(uintptr_t *out, int max, bool *truncated);

#endif
