/*
 * real: resolves the next definitions of the hooked functions with
 * dlsym(RTLD_NEXT), and serves dlsym's own allocations from a static pool
 * meanwhile (dlsym may call calloc for its error buffer). Forwarding to
 * RTLD_NEXT rather than glibc's __libc_malloc keeps a program that preloads
 * another allocator after pymem (jemalloc, tcmalloc) on that allocator.
 * Runs inside malloc: no allocation, no locks, no stdio.
 */
#define _GNU_SOURCE
#include "base/warn.h"
#include "base/real.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct pm_real pm_real;

static _Atomic int resolved;
static __thread int resolving __attribute__((tls_model("initial-exec")));

#define POOL_SIZE (256 * 1024)
static _Alignas(64) unsigned char pool[POOL_SIZE];
static _Atomic size_t pool_used;

bool pm_real_ready(void)
{
    return atomic_load_explicit(&resolved, memory_order_acquire);
}

bool pm_real_resolve(void)
{
    if (pm_real_ready())
        return true;
    if (resolving)
        return false;
    resolving = 1;
    struct pm_real r;
#define PM_HOOK(ret, name, params) r.name = (ret(*) params)dlsym(RTLD_NEXT, #name);
#include "base/hooks.def"
#undef PM_HOOK
    resolving = 0;
    if (!r.malloc || !r.free || !r.calloc || !r.realloc || !r._exit) {
        pm_warn("cannot find the C library's malloc; aborting");
        /* Nothing sane to forward to; continuing would crash later anyway. */
        syscall(SYS_exit_group, 127);
    }
    /* Other threads may race here; every racer computes the same values. */
    pm_real = r;
    atomic_store_explicit(&resolved, 1, memory_order_release);
    return true;
}

/* Each pool block is preceded by its size, so realloc can copy it out. */
void *pm_pool_alloc(size_t size, size_t align)
{
    if (align & (align - 1))
        return NULL; /* not a power of two: memalign would refuse it too */
    if (align < 16)
        align = 16;
    size_t need = size + align + 16;
    size_t start = atomic_fetch_add(&pool_used, need);
    if (start + need > POOL_SIZE)
        return NULL;
    uintptr_t base = (uintptr_t)pool + start + 16;
    uintptr_t p = (base + align - 1) & ~(uintptr_t)(align - 1);
    memcpy((void *)(p - sizeof(size_t)), &size, sizeof size);
    return (void *)p;
}

bool pm_pool_owns(const void *p)
{
    return (const unsigned char *)p >= pool && (const unsigned char *)p < pool + POOL_SIZE;
}

size_t pm_pool_size(const void *p)
{
    size_t size;
    memcpy(&size, (const unsigned char *)p - sizeof(size_t), sizeof size);
    return size;
}
