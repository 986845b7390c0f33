/*
 * interpose: the exported malloc family, the mmap family and dlopen/dlclose.
 * Each hook forwards to the real
 * function (real.h) and, when recording, calls one recorder function with the
 * thread's guard set. Frees are recorded before the real free: another thread
 * may be handed the same address the moment it is released.
 * Runs inside malloc: no allocation, no locks, no stdio; errno is preserved.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/warn.h"
#include "entry/lifecycle.h"
#include "stacks/modules.h"
#include "entry/pyhooks.h"
#include "pymem/format.h"
#include "base/rawmem.h"
#include "base/real.h"
#include "core/recorder.h"
#include "base/thread.h"

#define PM_EXPORT __attribute__((visibility("default")))
#define unlikely(x) __builtin_expect(!!(x), 0)

/* A call of the allocator behind pymem, under the guard: what it maps for
 * itself (jemalloc's extents, through mmap's symbol) is its own, not the
 * program's mmap domain. Inside a Python domain's allocator the guard stays
 * PM_GUARD_PYTHON, which marks pymalloc's arenas. */
static inline int allocator_enter(void)
{
    int outer = pm_thread.guard;
    pm_thread.guard = outer ? outer : PM_GUARD_PYMEM;
    return outer;
}

#define IN_ALLOCATOR(call)                                                                         \
    ({                                                                                             \
        int outer_ = allocator_enter();                                                            \
        __typeof__(call) result_ = (call);                                                         \
        pm_thread.guard = outer_;                                                                  \
        result_;                                                                                   \
    })

/* pymem setting itself up (pm_thread.own), or libunwind taking its
 * per-thread block: the block comes from the bootstrap pool, so that the
 * program's heap looks as it would without pymem. NULL when the pool is
 * spent: the C library's allocator serves (and a block of libunwind's is
 * remembered as pymem's, see unwind_block). */
static inline void *own_alloc(size_t size, size_t align)
{
    void *p = pm_pool_alloc(size, align);
    if (p && pm_thread.recording == PM_IN_BOOTSTRAP)
        pm_pyhooks_note_bootstrap(p);
    else if (p && pm_thread.recording == PM_IN_PROBE)
        pm_thread.recording = PM_PROBE_REACHED;
    return p;
}

static inline void record_alloc(void *p, size_t size)
{
    if (unlikely(!pm_lifecycle_loaded) && p && !pm_thread.guard)
        pm_lifecycle_load();
    if (p && pm_should_record()) {
        pm_thread.guard = PM_GUARD_PYMEM; /* clear before (pm_should_record); errno: recorder.h */
        pm_on_alloc(p, size, PM_DOMAIN_MALLOC);
        pm_thread.guard = 0;
    } else if (unlikely(pm_thread.recording >= PM_IN_BOOTSTRAP) && p) {
        if (pm_thread.recording == PM_IN_BOOTSTRAP)
            pm_pyhooks_note_bootstrap(p);
        else if (pm_thread.recording == PM_IN_PROBE)
            pm_thread.recording = PM_PROBE_REACHED;
        else if (pm_thread.recording == PM_IN_UNWIND)
            pm_thread.unwind_blocks[pm_thread.unwind_blocks[0] != NULL] = p;
    } else if (unlikely(pm_pyhooks_finalised) && p && !pm_thread.guard) {
        pm_pyhooks_count_after_end();
    }
}

/* True (and forgotten) if `p` is a block libunwind took for itself. */
static inline bool unwind_block(void *p)
{
    for (int i = 0; i < 2; i++)
        if (unlikely(pm_thread.unwind_blocks[i] == p)) {
            pm_thread.unwind_blocks[i] = NULL;
            return true;
        }
    return false;
}

static inline void record_free(void *p)
{
    if (p && pm_should_record() && !unwind_block(p)) {
        pm_thread.guard = PM_GUARD_PYMEM;
        pm_on_free(p);
        pm_thread.guard = 0;
    }
}

PM_EXPORT void *malloc(size_t size)
{
    if (unlikely(!pm_real_ready()) && !pm_real_resolve())
        return pm_pool_alloc(size, 16);
    void *p;
    if (unlikely(pm_thread.own || pm_thread.recording == PM_IN_UNWIND) && (p = own_alloc(size, 16)))
        return p;
    p = IN_ALLOCATOR(pm_real.malloc(size));
    record_alloc(p, size);
    return p;
}

PM_EXPORT void free(void *p)
{
    if (unlikely(!p || pm_pool_owns(p)))
        return;
    /* A block freed while dlsym is still being asked for the real functions
     * cannot be handed anywhere: it is kept rather than crash. */
    if (unlikely(!pm_real_ready()) && !pm_real_resolve())
        return;
    record_free(p);
    int outer = allocator_enter();
    pm_real.free(p);
    pm_thread.guard = outer;
}

PM_EXPORT void *calloc(size_t n, size_t size)
{
    size_t total;
    if (unlikely(!pm_real_ready()) && !pm_real_resolve()) {
        if (__builtin_mul_overflow(n, size, &total))
            return NULL;
        return pm_pool_alloc(total, 16); /* static memory is already zero */
    }
    void *p;
    if (unlikely(pm_thread.own || pm_thread.recording == PM_IN_UNWIND) && !__builtin_mul_overflow(n, size, &total) &&
        (p = own_alloc(total, 16)))
        return p;
    p = IN_ALLOCATOR(pm_real.calloc(n, size));
    if (p && !__builtin_mul_overflow(n, size, &total))
        record_alloc(p, total);
    return p;
}

/* Copies a bootstrap pool block into `q` (of `size` bytes). */
static void copy_pool_block(void *q, const void *p, size_t size)
{
    size_t old = pm_pool_size(p);
    memcpy(q, p, old < size ? old : size);
}

/* realloc is a free of the old block and an allocation of the new one. A
 * failed realloc leaves the old block live: it is recorded again, with the
 * size the allocator reports, since its requested size is not known here. */
PM_EXPORT void *realloc(void *p, size_t size)
{
    if (unlikely(!pm_real_ready()) && !pm_real_resolve()) {
        /* Inside dlsym: only pool blocks can exist yet. */
        void *q = pm_pool_alloc(size, 16);
        if (q && p && pm_pool_owns(p))
            copy_pool_block(q, p, size);
        return q;
    }
    if (unlikely(pm_thread.own) && (!p || pm_pool_owns(p))) {
        void *q = own_alloc(size, 16);
        if (q) {
            if (p)
                copy_pool_block(q, p, size);
            return q;
        }
    }
    if (unlikely(p && pm_pool_owns(p))) {
        void *q = IN_ALLOCATOR(pm_real.malloc(size));
        if (q) {
            copy_pool_block(q, p, size);
            record_alloc(q, size);
        }
        return q;
    }
    if (p)
        record_free(p);
    void *q = IN_ALLOCATOR(pm_real.realloc(p, size));
    if (q)
        record_alloc(q, size);
    else if (p && size)
        record_alloc(p, pm_real.malloc_usable_size(p));
    return q;
}

/* reallocarray is realloc once the product is known not to overflow. */
PM_EXPORT void *reallocarray(void *p, size_t nmemb, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(nmemb, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, total);
}

PM_EXPORT int posix_memalign(void **out, size_t alignment, size_t size)
{
    if (unlikely(!pm_real_ready()) && !pm_real_resolve()) {
        void *p = pm_pool_alloc(size, alignment);
        if (!p)
            return ENOMEM;
        *out = p;
        return 0;
    }
    void *own;
    if (unlikely(pm_thread.own) && (own = own_alloc(size, alignment))) {
        *out = own;
        return 0;
    }
    int rc = IN_ALLOCATOR(pm_real.posix_memalign(out, alignment, size));
    if (rc == 0)
        record_alloc(*out, size);
    return rc;
}

#define ALIGNED_HOOK(name, params, args, size_expr, align_expr)                                     \
    PM_EXPORT void *name params                                                                    \
    {                                                                                              \
        if (unlikely(!pm_real_ready()) && !pm_real_resolve())                                      \
            return pm_pool_alloc(size_expr, align_expr);                                           \
        void *p;                                                                                   \
        if (unlikely(pm_thread.own) && (p = own_alloc(size_expr, align_expr)))                     \
            return p;                                                                              \
        p = IN_ALLOCATOR(pm_real.name args);                                                       \
        record_alloc(p, size_expr);                                                                \
        return p;                                                                                  \
    }

ALIGNED_HOOK(aligned_alloc, (size_t alignment, size_t size), (alignment, size), size, alignment)
ALIGNED_HOOK(memalign, (size_t alignment, size_t size), (alignment, size), size, alignment)
ALIGNED_HOOK(valloc, (size_t size), (size), size, pm_page_size())
ALIGNED_HOOK(pvalloc, (size_t size), (size), size, pm_page_size())

PM_EXPORT size_t malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    if (pm_pool_owns(p))
        return pm_pool_size(p);
    if (unlikely(!pm_real_ready()) && !pm_real_resolve())
        return 0;
    return pm_real.malloc_usable_size(p);
}

PM_EXPORT void _exit(int status)
{
    pm_lifecycle_exit_now(status);
    pm_real_resolve();
    pm_real._exit(status);
    __builtin_unreachable();
}

/* exec: what was recorded reaches the capture, which ends (END "exec")
 * before the program is replaced; if the exec fails, recording goes on. */
#define EXEC_HOOK(call)                                                                            \
    do {                                                                                           \
        bool ended = pm_lifecycle_before_exec();                                                   \
        pm_real_resolve();                                                                         \
        int rc = call;                                                                             \
        int saved = errno;                                                                         \
        if (ended)                                                                                 \
            pm_lifecycle_exec_failed();                                                            \
        errno = saved;                                                                             \
        return rc;                                                                                 \
    } while (0)

PM_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    EXEC_HOOK(pm_real.execve(path, argv, envp));
}

PM_EXPORT int execv(const char *path, char *const argv[])
{
    EXEC_HOOK(pm_real.execv(path, argv));
}

PM_EXPORT int execvp(const char *file, char *const argv[])
{
    EXEC_HOOK(pm_real.execvp(file, argv));
}

PM_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    EXEC_HOOK(pm_real.execvpe(file, argv, envp));
}

PM_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    EXEC_HOOK(pm_real.fexecve(fd, argv, envp));
}

PM_EXPORT void _Exit(int status)
{
    pm_lifecycle_exit_now(status);
    pm_real_resolve();
    pm_real._Exit(status);
    __builtin_unreachable();
}

/* pymem's SIGTERM and SIGHUP handlers stand in for the default action:
 * asked for the current handler, the program (Python's signal module, at
 * start-up and in signal.getsignal) is told SIG_DFL, as without pymem. A
 * handler the program installs replaces pymem's, until the program sets the
 * default again. */
PM_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    pm_real_resolve();
    struct sigaction stand_in;
    if (pm_lifecycle_stand_in(sig, act, &stand_in))
        act = &stand_in;
    int rc = pm_real.sigaction(sig, act, old);
    if (rc == 0 && old && !(old->sa_flags & SA_SIGINFO) && pm_lifecycle_owns_handler(old->sa_handler)) {
        old->sa_handler = SIG_DFL;
        old->sa_flags = 0;
        sigemptyset(&old->sa_mask);
    }
    return rc;
}

PM_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
    pm_real_resolve();
    struct sigaction dfl = {.sa_handler = SIG_DFL}, stand_in;
    if (handler == SIG_DFL && pm_lifecycle_stand_in(sig, &dfl, &stand_in))
        handler = stand_in.sa_handler;
    sighandler_t old = pm_real.signal(sig, handler);
    return pm_lifecycle_owns_handler(old) ? SIG_DFL : old;
}

/* Anonymous mappings are the mmap domain, in whole pages as the kernel
 * maps them. Not recorded: mappings made under the guard (pymem's own
 * allocations, CPython's arenas inside the Python allocator hooks, an
 * allocator serving malloc), nor in a Python process before the allocator
 * hooks are in (pm_mmap_recording): arenas made then are later filled
 * with recorded objects, and counting both would count twice. */
static inline bool mmap_should_record(void)
{
    return pm_run_on() && atomic_load_explicit(&pm_mmap_recording, memory_order_relaxed) &&
           !pm_thread.guard;
}

static void record_mapping(void *p, size_t length, int flags, bool unmapped_first)
{
    struct pm_guard g = pm_guard_enter();
    if (unmapped_first)
        pm_record_munmap(p, pm_page_round(length));
    if (flags & MAP_ANONYMOUS)
        pm_record_alloc(p, pm_page_round(length), PM_DOMAIN_MMAP);
    pm_guard_leave(&g);
}

/* What mmap and mmap64 return, recorded. MAP_FIXED replaces whatever was
 * mapped there. */
/* An anonymous mapping of an arena's size made inside a Python domain's
 * own allocator: one of pymalloc's arenas (the objects in it are recorded
 * one by one). */
static inline bool arena_should_record(size_t length)
{
    return pm_thread.guard == PM_GUARD_PYTHON && length == atomic_load(&pm_pyhooks_arena_size) && pm_run_on() &&
           atomic_load_explicit(&pm_mmap_recording, memory_order_relaxed);
}

static void *mapped(void *p, size_t length, int flags)
{
    if (p != MAP_FAILED && mmap_should_record() && (flags & (MAP_ANONYMOUS | MAP_FIXED)))
        record_mapping(p, length, flags, (flags & MAP_FIXED) != 0);
    else if (p != MAP_FAILED && (flags & MAP_ANONYMOUS) && arena_should_record(length))
        pm_record_arena(p, pm_page_round(length), false);
    return p;
}

PM_EXPORT void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
    if (unlikely(!pm_real_ready()) && !pm_real_resolve())
        return (void *)syscall(SYS_mmap, addr, length, prot, flags, fd, offset);
    return mapped(pm_real.mmap(addr, length, prot, flags, fd, offset), length, flags);
}

PM_EXPORT void *mmap64(void *addr, size_t length, int prot, int flags, int fd, off64_t offset)
{
    if (unlikely(!pm_real_ready()) && !pm_real_resolve())
        return (void *)syscall(SYS_mmap, addr, length, prot, flags, fd, offset);
    return mapped(pm_real.mmap64(addr, length, prot, flags, fd, offset), length, flags);
}

/* Recorded before the pages go, as a free is: another thread may map the
 * same addresses the moment they are released. */
PM_EXPORT int munmap(void *addr, size_t length)
{
    if (unlikely(!pm_real_ready()) && !pm_real_resolve())
        return (int)syscall(SYS_munmap, addr, length);
    if (length && !((uintptr_t)addr & (pm_page_size() - 1)) && mmap_should_record()) {
        struct pm_guard g = pm_guard_enter();
        pm_record_munmap(addr, pm_page_round(length));
        pm_guard_leave(&g);
    } else if (length && arena_should_record(length)) {
        pm_record_arena(addr, pm_page_round(length), true);
    }
    return pm_real.munmap(addr, length);
}

/* The old range is released before the call and the new one recorded after;
 * if the call fails the old range, still mapped, is recorded again. */
PM_EXPORT void *mremap(void *old, size_t old_size, size_t new_size, int flags, ...)
{
    void *target = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        target = va_arg(ap, void *);
        va_end(ap);
    }
    if (unlikely(!pm_real_ready()) && !pm_real_resolve())
        return (void *)syscall(SYS_mremap, old, old_size, new_size, flags, target);
    bool record = mmap_should_record();
    if (record) {
        struct pm_guard g = pm_guard_enter();
        pm_record_munmap(old, pm_page_round(old_size));
        pm_guard_leave(&g);
    }
    void *p = pm_real.mremap(old, old_size, new_size, flags, target);
    if (record) {
        struct pm_guard g = pm_guard_enter();
        if (p != MAP_FAILED)
            pm_record_alloc(p, pm_page_round(new_size), PM_DOMAIN_MMAP);
        else
            pm_record_alloc(old, pm_page_round(old_size), PM_DOMAIN_MMAP);
        pm_guard_leave(&g);
    }
    return p;
}

/* RTLD_DEEPBIND would let the library bind malloc to the C library ahead of
 * pymem: the flag is dropped. The real dlopen must be reached by a tail call:
 * glibc finds the calling object (whose RUNPATH and namespace the lookup
 * uses) from dlopen's return address, which must stay the program's. The
 * module map is read again when the next native frame is recorded. */
PM_EXPORT void *dlopen(const char *file, int mode)
{
    if (mode & RTLD_DEEPBIND) {
        mode &= ~RTLD_DEEPBIND;
        static _Atomic int warned;
        if (pm_run_on() && !atomic_exchange(&warned, 1))
            pm_warn("dlopen(RTLD_DEEPBIND) would bypass pymem's hooks; loading without RTLD_DEEPBIND");
    }
    pm_modules_changed();
    if (unlikely(!pm_real_ready()))
        pm_real_resolve();
    return pm_real.dlopen(file, mode);
}

PM_EXPORT int dlclose(void *handle)
{
    if (unlikely(!pm_real_ready()))
        pm_real_resolve();
    int rc = pm_real.dlclose(handle);
    pm_modules_unloaded();
    return rc;
}
