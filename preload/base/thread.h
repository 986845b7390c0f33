/*
 * thread: pymem's per-thread state. Initial-exec TLS (no __tls_get_addr, which
 * may allocate on a thread's first access) and trivially destructible: glibc
 * still calls free() on a thread after its TLS destructors have run.
 */
#ifndef PM_THREAD_H
#define PM_THREAD_H

#include <errno.h>
#include <stdint.h>

struct pm_buffer;

enum { PM_IN_RECORDER = 1, PM_IN_BOOTSTRAP = 2, PM_IN_PROBE = 3, PM_PROBE_REACHED = 4, PM_IN_UNWIND = 5,
       PM_IN_WRITE = 6, PM_IN_PYPROBE = 7 };

struct pm_thread {
    /* Non-zero while this thread is inside pymem or inside a hooked Python
     * allocator: nested calls pass straight through, so an allocation is
     * recorded once, at its outermost layer, and pymem never records itself.
     * PM_GUARD_PYTHON inside a Python allocator domain's own allocator: an
     * anonymous mapping made or returned there is one of pymalloc's arenas. */
    int guard;
    /* PM_IN_RECORDER inside the recorder proper: a malloc reaching the hooks
     * now comes from a signal handler that interrupted us, and cannot be
     * recorded without corrupting the event being written. It is counted
     * instead. PM_IN_BOOTSTRAP while pyhooks.c registers with a Python that is
     * not yet initialised: the blocks malloc returns are noted (see pyhooks.c,
     * bootstrap blocks). PM_IN_PROBE while interpose.c checks that malloc
     * reaches pymem at all. PM_IN_UNWIND while libunwind runs: its first use
     * of thread-local storage on a thread may allocate, which is pymem's own;
     * PM_IN_WRITE while a thread writes a chunk (zstd's own allocations);
     * PM_IN_PYPROBE while pyhooks.c checks that a Python allocator domain
     * still reaches pymem (PM_PROBE_REACHED when it did). */
    int recording;
    /* The last block a Python allocator domain gave this thread: an object
     * born there is new, not recycled (recycled.c). */
    void *last_py_alloc;
    /* The int CPython made to call the frame watch's callback (pyhooks.c),
     * neither recorded nor its free. */
    void *watch_block;
    /* Non-zero while pymem sets itself up (load, a followed child's start):
     * what the C library, the dynamic linker or libunwind allocate for it
     * then comes from the bootstrap pool, out of the program's heap. */
    int own;
    /* Blocks libunwind allocated on this thread for itself (its per-thread
     * cache): glibc frees them through free() when the thread exits, and
     * that free is pymem's, not an unmatched one of the program's. */
    void *unwind_blocks[2];
    /* This thread's event buffer; NULL until its first event. */
    struct pm_buffer *buf;
    /* Sampled mode: bytes left until this thread's next sample (0: not yet
     * drawn), and its random state. */
    int64_t sample_left;
    uint64_t rng;
    /* This thread's errno and pthread_self(), found once: each is a call
     * into the C library otherwise, on every event. */
    int *errno_at;
    unsigned long self;
    /* 3.12+: the interpreter's thread-local variable that holds this
     * thread's running Python thread state (pyframes.c), found once: reading
     * it otherwise takes a call into libpython and __tls_get_addr. */
    void *const *tstate_at;
};

extern __thread struct pm_thread pm_thread __attribute__((tls_model("initial-exec")));

/* In a forked child: this thread's buffer was the parent's. */
void pm_thread_reset_after_fork(void);

/* A stretch of code inside pymem: what it allocates passes through
 * unrecorded, and the program finds errno as it left it (pymem's own work at
 * load, fork or exit must never change the errno the program reads after its
 * call). Nests: leaving gives back the guard as it was on entry:
 *     struct pm_guard g = pm_guard_enter(); ...; pm_guard_leave(&g);
 * The allocator hooks, which record only with the guard clear, set it
 * (PM_GUARD_PYMEM; PM_GUARD_PYTHON around a Python domain's own allocator)
 * and clear it again; the recorder keeps errno (core/recorder.h). */
struct pm_guard {
    int guard;
    int err;
};

enum { PM_GUARD_PYMEM = 1, PM_GUARD_PYTHON = 2 };

static inline int *pm_errno(void)
{
    int *e = pm_thread.errno_at;
    if (__builtin_expect(!e, 0))
        e = pm_thread.errno_at = &errno;
    return e;
}

static inline struct pm_guard pm_guard_enter(void)
{
    struct pm_guard g = {pm_thread.guard, *pm_errno()};
    pm_thread.guard = PM_GUARD_PYMEM;
    return g;
}

static inline void pm_guard_leave(const struct pm_guard *g)
{
    pm_thread.guard = g->guard;
    *pm_errno() = g->err;
}

#endif
