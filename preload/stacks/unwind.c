/*
 * unwind: native backtraces through a privately loaded libunwind (contract
 * in unwind.h). Runs inside malloc: no allocation of its own, no stdio but
 * the one warning at start-up.
 */
#define _GNU_SOURCE
#include "base/warn.h"
#include "stacks/unwind.h"

#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>

#include "base/thread.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>

/* libunwind's names are macros over per-target symbols
 * (unw_set_caching_policy -> _ULx86_64_set_caching_policy). */
#define SYM_(x) #x
#define SYM(x) SYM_(x)
#define PM_LIBUNWIND_SONAME "libunwind.so.8"

static int (*backtrace_fn)(void **, int);
static uintptr_t own_lo, own_hi; /* libpymem.so's executable segment */

/* The frames pymem adds above the hook that called it: libunwind's own, the
 * recorder's and the hook's. More are skipped by address. */
#define OWN_FRAMES_MAX 16

static int find_own(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    uintptr_t self = (uintptr_t)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (self >= lo && self < hi) {
            own_lo = lo;
            own_hi = hi;
            return 1;
        }
    }
    return 0;
}

/* True if `pc` lies in libpymem.so itself. */
static bool is_own(uintptr_t pc)
{
    return pc >= own_lo && pc < own_hi;
}

bool pm_unwind_init(void)
{
    if (backtrace_fn)
        return true; /* a forked child: libunwind is loaded already */
    dl_iterate_phdr(find_own, (void *)(uintptr_t)pm_unwind_init);
    void *h = dlopen(PM_LIBUNWIND_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        pm_warn("cannot load %s (%s): recording without native stacks", PM_LIBUNWIND_SONAME, dlerror());
        return false;
    }
    backtrace_fn = (int (*)(void **, int))dlsym(h, "unw_backtrace");
    int (*set_policy)(unw_addr_space_t, unw_caching_policy_t) =
        (int (*)(unw_addr_space_t, unw_caching_policy_t))dlsym(h, SYM(unw_set_caching_policy));
    int (*set_size)(unw_addr_space_t, size_t, int) = (int (*)(unw_addr_space_t, size_t, int))dlsym(h, SYM(unw_set_cache_size));
    unw_addr_space_t *local_as = (unw_addr_space_t *)dlsym(h, SYM(unw_local_addr_space));
    if (!backtrace_fn) {
        pm_warn("%s has no unw_backtrace: recording without native stacks", PM_LIBUNWIND_SONAME);
        return false;
    }
    /* Per-thread caches: no lock shared between threads while unwinding. */
    if (local_as && set_policy)
        set_policy(*local_as, UNW_CACHE_PER_THREAD);
    if (local_as && set_size)
        set_size(*local_as, 4096, 0);
    return true;
}

int pm_unwind_backtrace(uintptr_t *out, int max, bool *truncated)
{
    void *pcs[OWN_FRAMES_MAX + PM_NATIVE_DEPTH_MAX + 1];
    int want = max + OWN_FRAMES_MAX + 1;
    if (want > (int)(sizeof pcs / sizeof pcs[0]))
        want = (int)(sizeof pcs / sizeof pcs[0]);
    *truncated = false;
    if (!backtrace_fn)
        return 0;
    int saved = pm_thread.recording;
    pm_thread.recording = PM_IN_UNWIND;
    int got = backtrace_fn(pcs, want);
    pm_thread.recording = saved;
    int i = 0;
    while (i < got && is_own((uintptr_t)pcs[i]))
        i++;
    int n = 0;
    for (; i < got && n < max; i++)
        out[n++] = (uintptr_t)pcs[i];
    *truncated = i < got || got == want;
    return n;
}
