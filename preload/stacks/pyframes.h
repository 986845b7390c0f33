/*
 * pyframes: reads the calling thread's Python frame chain directly from the
 * interpreter's structures, the way tracemalloc does inside CPython, so that
 * an allocation pays for a few pointer loads rather than for a profile hook on
 * every call. Layouts differ per minor version (3.8-3.10 PyFrameObject,
 * 3.11+ _PyInterpreterFrame); the offsets are tabled in pyframes.c and checked
 * against the real headers by tests/unit/test_pyoffsets.c.
 *
 * Only reads: no allocation, no locks, no Python API call that could take the
 * GIL. Reading the calling thread's own chain is safe without the GIL: only
 * this thread changes it, and every code object on it is kept alive by its
 * frame.
 */
#ifndef PM_PYFRAMES_H
#define PM_PYFRAMES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct pm_rawframe {
    const void *code; /* native frames (stacks.c): the return address */
    int32_t lasti;    /* byte offset of the instruction being executed */
    uint8_t entry;    /* the outermost Python frame of its eval call */
};

struct pm_codeinfo {
    const void *filename; /* str objects, compared by identity in the caches */
    const void *name;
    int firstlineno;
};

/* Chooses the layout for Python 3.`minor` and looks the few API functions up
 * (call with the GIL held, once the interpreter is initialised). Returns false
 * for a version it does not know: stacks then stay empty. */
bool pm_pyframes_init(int minor);

/* Writes up to `max` frames of the calling thread, innermost first. Sets
 * *truncated when more frames lie beyond. Returns 0 when the thread has no
 * Python frames or stacks are off. `gil_held`: an allocation in the MEM or
 * OBJ domain, which CPython makes only with the GIL held: the thread's state
 * is then found cheaper (and checked to be the calling thread's). */
typedef int (*pm_walk_fn)(struct pm_rawframe *out, int max, bool *truncated, bool gil_held);
/* The walk for this interpreter's layout; NULL before pm_pyframes_init and
 * after a layout mismatch. */
extern _Atomic(pm_walk_fn) pm_pyframes_walker;

static inline int pm_pyframes_walk(struct pm_rawframe *out, int max, bool *truncated, bool gil_held)
{
    pm_walk_fn walk = atomic_load_explicit(&pm_pyframes_walker, memory_order_relaxed);
    if (!walk) {
        *truncated = false;
        return 0;
    }
    return walk(out, max, truncated, gil_held);
}

/* The calling thread's last walk, every frame read (those a stack leaves
 * out included), outermost first: what the next walk checks with loads whose
 * addresses it knows beforehand, instead of following the chain and
 * re-reading it all. Consecutive allocations mostly share all but the top
 * frames; a frame below the top cannot have changed unless everything above
 * it was popped, which the check of every link and instruction catches (a
 * frame re-pushed at the same address under a caller now at another line).
 * `node` belongs to the stacks layer: its node for the stack up to and
 * including the frame.
 *
 * It holds chains of PM_FRAMECACHE_MAX frames (a recursion under a raised
 * recursion limit), PM_FRAMECACHE_FIRST in sampled mode
 * (pm_pyframes_cache_deep); deeper ones are walked without it. Its
 * arrays are inline, at offsets known when compiled (a pointer to them,
 * which a cache that grew would need, costs about 1% of small_objects), and
 * last: the fields read at every walk are together before them. Past their
 * first PM_FRAMECACHE_FIRST frames, the pages of a thread that never goes
 * that deep stay unbacked, and out of the count of pymem's memory until it
 * does (`deep`). */
#define PM_FRAMECACHE_MAX 8192
#define PM_FRAMECACHE_FIRST 1024
#define PM_FRAMECACHE_SLOTS 256
struct pm_framecache {
    int depth;
    bool deep; /* has held more than PM_FRAMECACHE_FIRST frames: its reserve counted */
    uint16_t slot[PM_FRAMECACHE_SLOTS];        /* frame address -> index, direct mapped */
    /* The frame watch (3.9+): while it counts the pops of Python frames,
     * a frame below the lowest one that can have run since the last walk
     * is known unchanged without being read. `epoch`: the watch the counts
     * belong to (0: none, every frame is checked). `low`: the lowest frame
     * whose callee popped since; `running`: the innermost started frame of
     * the last walk; `context_ver`: the thread's then (a greenlet switch
     * changes it); `next_pop`: the next cached frame to leave. `walks`
     * counts the walks of the current measure: without the watch, `checked`
     * is what checking costs; with it, `spared` (frames left unread) is
     * what it saves, and `pops` (its callbacks) what it costs. */
    uint64_t context_ver;
    unsigned epoch;
    int low, running;
    int next_pop;
    unsigned walks, pops, checked; /* walks and checked apart: added as a vector, they cost more */
    uint64_t spared;
    /* 3.9-3.11's watch, kept by its frame evaluator: the innermost frame it
     * runs on this thread, the one it ran when that one began (the next
     * innermost it runs), and how low in the thread's stack it may nest. */
    const void *evaluated, *evaluated_under;
    const char *stack_floor;
    /* last, past the fields read at every walk */
    const void *frame[PM_FRAMECACHE_MAX];
    uintptr_t word[PM_FRAMECACHE_MAX];        /* the instruction pointer (3.11+), f_lasti (before) */
    struct pm_rawframe raw[PM_FRAMECACHE_MAX]; /* its code object as read, and offset */
    uint16_t kept[PM_FRAMECACHE_MAX];          /* frames the stack keeps up to and including this one */
    uint32_t node[PM_FRAMECACHE_MAX];
};

/* Whether the cache holds chains past its first PM_FRAMECACHE_FIRST frames
 * (it does unless told otherwise). */
void pm_pyframes_cache_deep(bool deep);

/* Window mode, for processes without the frame watch (0: off, the
 * default). A cached walk then checks only the cached frames that one of the
 * innermost `frames` frames a stack keeps can be: the frames below them
 * cannot be in any stack, and are not read. A chain 1,500 frames deep costs
 * each walk a stack's worth of checks instead of 1,500. The frames left
 * unread may have changed: the cache can then count the chain's depth
 * wrong, which moves only where a stack's cut falls (within its step, the
 * frames kept all read and checked), until a walk reaches them and finds
 * them changed. The frame watch's floors assume every frame below them
 * checked: the two never run together. */
void pm_pyframes_set_window(int frames);

/* A thread's cache was just mapped, zeroed: takes off pymem's memory count
 * the reserve that only its first deep chain will back. */
void pm_framecache_made(void);

/* Cached frame `i` had begun to run (not a shim, not in its prologue): the
 * stack keeps it. */
static inline bool pm_framecache_started(const struct pm_framecache *c, int i)
{
    return c->kept[i] != (i ? c->kept[i - 1] : 0);
}

/* The first cached frame below `hi` up to which the stack keeps `n` frames
 * (kept[] never decreases); `hi` if none is. */
static inline int pm_framecache_keeping(const struct pm_framecache *c, unsigned n, int hi)
{
    int lo = 0;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (c->kept[mid] >= n)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Walks the calling thread's frames against `c` and brings it up to date.
 * Returns how many of its frames, from the outermost, are unchanged; the
 * others, up to c->depth, are new. -1 when this walk cannot be cached (a
 * deeper chain than the cache, stacks off): c is then emptied and
 * pm_pyframes_walk must do. */
typedef int (*pm_walk_cached_fn)(struct pm_framecache *c, bool gil_held);
extern _Atomic(pm_walk_cached_fn) pm_pyframes_cached_walker;

static inline int pm_pyframes_walk_cached(struct pm_framecache *c, bool gil_held)
{
    pm_walk_cached_fn walk = atomic_load_explicit(&pm_pyframes_cached_walker, memory_order_relaxed);
    if (!walk) {
        c->depth = 0;
        return -1;
    }
    return walk(c, gil_held);
}

/* The frame watch: pops of Python frames counted through sys.monitoring
 * (framewatch.c) spare the walk the frames below the lowest one that can
 * have run. `wanted` is called (GIL held, rarely) when a thread's walks
 * check many frames; `unwanted`, after the watch was stopped, when it costs
 * a thread more than it spares. Start and stop with the GIL held; start
 * counts from the calling thread's interpreter, for sys.monitoring's tool
 * `tool`, with the callback's reference count (`refcnt`): while it differs
 * from its value at the start, the callback may have been unregistered, and
 * every frame is checked; so is it while the tool's events are not set.
 * pm_pyframes_frame_leaving: from the callback of every pop (PY_RETURN,
 * PY_YIELD, PY_UNWIND), with the calling thread's cache, while the leaving
 * frame is still the innermost. */
void pm_pyframes_watch_offer(void (*wanted)(void), void (*unwanted)(void));
bool pm_pyframes_watch_start(int tool, const ssize_t *refcnt);
void pm_pyframes_watch_stop(void);
/* The epoch of the watch in force (0: none). */
extern _Atomic unsigned pm_pyframes_watch_epoch;
static inline bool pm_pyframes_watch_on(void)
{
    return atomic_load(&pm_pyframes_watch_epoch) != 0;
}
/* An allocation of `size` bytes in the OBJ domain (GIL held) is the int
 * CPython makes only to call the watch's callback: pymem's, not the
 * program's. Costs a compare of the size unless it is that int's (3.12+;
 * SIZE_MAX: none). */
bool pm_pyframes_watch_int(size_t size);
extern size_t pm_pyframes_watch_int_size;
static inline bool pm_pyframes_watch_dispatching(size_t size)
{
    return size == pm_pyframes_watch_int_size &&
           atomic_load_explicit(&pm_pyframes_watch_epoch, memory_order_relaxed) && pm_pyframes_watch_int(size);
}
void pm_pyframes_frame_leaving(struct pm_framecache *c);
/* 3.9-3.11 (entry/evalwatch.c): the frame evaluator pymem sets counts the pops
 * in the interpreter it was set in, while it stays the interpreter's; the
 * start is the watch's, GIL held. pm_pyframes_frame_left: from that
 * evaluator, `frame` has returned or yielded on thread state `tstate`,
 * whose frame it ran when it began was `under` (the innermost it ran, then). */
bool pm_pyframes_watch_start_evaluator(const void *evaluator);
void pm_pyframes_frame_left(struct pm_framecache *c, const void *tstate, const void *frame, const void *under);
/* The calling thread's innermost Python frame, the interpreter's own (no
 * frame object is made: callable inside the allocator's hooks), or NULL.
 * GIL held. */
const void *pm_pyframes_innermost(void);
/* The interpreter of thread state `tstate`. */
void *pm_pyframes_interp_of(const void *tstate);

/* True if return address `pc` lies in _PyEval_EvalFrameDefault: a native
 * frame that runs Python frames (a return address points just past a call,
 * hence the half-open range shifted by one). */
bool pm_pyframes_is_eval(uintptr_t pc);

/* tracemalloc's "is tracing" flag in this interpreter (read without the
 * GIL: a plain int), or NULL. */
const int *pm_pyframes_tracemalloc_flag(void);

void pm_pyframes_codeinfo(const void *code, struct pm_codeinfo *out);
/* Line number of byte offset `lasti` in `code` (CPython's own line table). */
int pm_pyframes_line(const void *code, int32_t lasti);

/* The same, from a position kept in one code object's line table: the next
 * offset asked for in that code object is found from there, not from the
 * table's start (a module's code asks for its lines top to bottom while it
 * imports: from the start each time, a long module cost thousands of
 * instructions a line). The caller keeps the cursors and serializes their
 * use; a cursor last used for another code object, or for one whose table
 * is not the same (a code object made since at the same address), starts
 * again. */
struct pm_linecursor {
    const void *code, *table;
    int64_t length;
    uint64_t head, tail; /* the table's first and last 8 bytes */
    int firstlineno;
    union {
        struct { /* 3.10+: CPython's PyCodeAddressRange (test_pyoffsets.c) */
            int ar_start, ar_end, ar_line;
            struct {
                int computed_line;
                const uint8_t *lo_next, *limit;
            } opaque;
        } range;
        struct { /* 3.8, 3.9: co_lnotab, pairs before `pair` applied */
            int64_t pair;
            int addr, line;
        } lnotab;
    } at;
};
int pm_pyframes_line_at(struct pm_linecursor *cur, const void *code, int32_t lasti);
/* UTF-8 text of a str object, cut to `cap` bytes; "?" for what it cannot read. */
size_t pm_pyframes_str(const void *str, char *out, size_t cap);

#endif
