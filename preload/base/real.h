/*
 * real: the allocator functions pymem forwards to (the next definitions after
 * the preload: glibc's, or another preloaded allocator's), and the bootstrap
 * pool that serves allocations made while they are being looked up.
 * Runs inside malloc: no allocation, no locks, no stdio.
 */
#ifndef PM_REAL_H
#define PM_REAL_H

#include <stdbool.h>
#include <signal.h>
#include <stddef.h>

struct pm_real {
#define PM_HOOK(ret, name, params) ret(*name) params;
#include "base/hooks.def"
#undef PM_HOOK
};

extern struct pm_real pm_real;

/* True once every pointer in pm_real is set. */
bool pm_real_ready(void);
/* Looks the real functions up (idempotent). Returns false while a lookup is
 * already under way on this thread (dlsym allocating): the caller must then
 * serve the request from the bootstrap pool. */
bool pm_real_resolve(void);

/* Bootstrap pool: a static arena for the few allocations dlsym makes before
 * the real allocator is known. Its blocks are never given back. */
void *pm_pool_alloc(size_t size, size_t align);
bool pm_pool_owns(const void *p);
size_t pm_pool_size(const void *p);

#endif
