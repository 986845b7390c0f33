/*
 * recycled: the reference tracer (contract in recycled.h). The tracer runs
 * at every object's birth and death, inside CPython's object code: no
 * allocation, no lock, no Python API call; it records through the recorder
 * with the guard set, as the allocator hooks do.
 */
#define _GNU_SOURCE
#include "core/recycled.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "core/recorder.h"
#include "core/sampler.h"
#include "base/thread.h"

typedef int (*ref_tracer)(void *obj, int event, void *data);

enum { REFTRACER_CREATE = 0 };

/* PyTypeObject.tp_flags on LP64 builds, and the flags that put a header in
 * front of an object (_PyType_PreHeaderSize in CPython 3.13): the GC link
 * (16 bytes), and the managed dict and weakref pointers (16 bytes). */
#define TP_FLAGS_OFFSET 168
#define TPFLAGS_HAVE_GC (1ul << 14)
#define TPFLAGS_PREHEADER ((1ul << 3) | (1ul << 4))

static struct {
    int (*set)(ref_tracer, void *);
    ref_tracer (*get)(void **);
    ref_tracer mine; /* tracer or tracer_sampled, fixed at the start */
    ref_tracer prev;
    void *prev_data;
    _Atomic bool on;
} R;

static inline uintptr_t block_of(const void *obj)
{
    const void *type;
    unsigned long flags;
    memcpy(&type, (const char *)obj + 8, sizeof type);
    memcpy(&flags, (const char *)type + TP_FLAGS_OFFSET, sizeof flags);
    size_t pre = (flags & TPFLAGS_HAVE_GC ? 16 : 0) + (flags & TPFLAGS_PREHEADER ? 16 : 0);
    return (uintptr_t)obj - pre;
}

/* Out of the tracer's line: the tracer runs at every object's birth and
 * death, and stays a leaf that saves no register on its common paths (a
 * death, a birth in the block just allocated). */
static __attribute__((noinline)) void retag(void *block)
{
    pm_thread.guard = PM_GUARD_PYMEM; /* clear before (pm_should_record); errno: recorder.h */
    pm_record_retag(block);
    pm_thread.guard = 0;
}

/* What the chained tracer allocates (tracemalloc's tracebacks) is its own,
 * not the program's. */
static __attribute__((noinline)) int chain(void *obj, int event)
{
    struct pm_guard g = pm_guard_enter();
    int rc = R.prev(obj, event, R.prev_data);
    pm_guard_leave(&g);
    return rc;
}

/* A birth in `block`: new once, recycled when born again without an
 * allocation in between. */
static inline void born(void *block)
{
    if (block == pm_thread.last_py_alloc)
        pm_thread.last_py_alloc = NULL;
    else
        retag(block);
}

static int tracer(void *obj, int event, void *data)
{
    (void)data;
    if (event == REFTRACER_CREATE && atomic_load_explicit(&R.on, memory_order_relaxed) && pm_should_record())
        born((void *)block_of(obj));
    return R.prev ? chain(obj, event) : 0;
}

static __attribute__((noinline)) void born_maybe_sampled(void *block)
{
    if (atomic_load_explicit(&R.on, memory_order_relaxed) && pm_should_record())
        born(block);
}

/* Sampled mode's tracer: only a live sample's new owner is recorded, and the
 * filter's one load rules that out for almost every birth, so it comes
 * first and the rest waits until the filter says maybe (~1% less on 3.13's
 * small_objects and deep_stacks than the exact tracer's order). */
static int tracer_sampled(void *obj, int event, void *data)
{
    (void)data;
    if (event == REFTRACER_CREATE) {
        void *block = (void *)block_of(obj);
        if (__builtin_expect(pm_sample_may_hold(block), 0))
            born_maybe_sampled(block);
    }
    return R.prev ? chain(obj, event) : 0;
}

bool pm_recycled_init(int minor)
{
    if (minor < 13)
        return false;
    *(void **)&R.set = dlsym(RTLD_DEFAULT, "PyRefTracer_SetTracer");
    *(void **)&R.get = dlsym(RTLD_DEFAULT, "PyRefTracer_GetTracer");
    if (!R.set || !R.get)
        return false;
    R.mine = pm_sample_mean ? tracer_sampled : tracer;
    atomic_store(&R.on, true);
    pm_recycled_check();
    return true;
}

void pm_recycled_check(void)
{
    if (!R.set || !atomic_load_explicit(&R.on, memory_order_relaxed))
        return;
    void *data = NULL;
    ref_tracer cur = R.get(&data);
    if (cur == R.mine)
        return;
    R.prev = cur;
    R.prev_data = data;
    R.set(R.mine, NULL);
}

void pm_recycled_stop(void)
{
    atomic_store(&R.on, false);
}
