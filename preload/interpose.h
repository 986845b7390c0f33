/*
 * interpose: the exported malloc family (interpose.c).
 */
#ifndef PM_INTERPOSE_H
#define PM_INTERPOSE_H

#include <stdbool.h>

/* True if the process's `malloc` is pymem's. False when another allocator
 * was preloaded ahead of pymem, or the program brings its own: C
 * allocations then bypass the hooks. Call with the guard set. */
bool pm_interpose_active(void);

#endif
