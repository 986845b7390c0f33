/*
 * pyframes: per-version frame layouts and the frame walk (contract in
 * pyframes.h). Runs inside malloc: no allocation, no locks, no stdio.
 */
#define _GNU_SOURCE
#include "base/warn.h"
#include "stacks/pyframes.h"
#include "base/rawmem.h"
#include "base/thread.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/types.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

/* Offsets in bytes, x86-64 and other LP64 targets, release builds. */
struct layout {
    int minor;
    int tstate_frame;   /* PyThreadState: frame (3.8-3.10), cframe (3.11-12), current_frame (3.13) */
    int cframe_current; /* _PyCFrame.current_frame, or -1 when tstate_frame is the frame */
    int frame_back;
    int frame_code;
    int frame_instr;       /* f_lasti (int) for 3.8-3.10, instruction pointer after */
    int lasti_scale;       /* 3.8/3.9 count f_lasti in bytes, 3.10 in 2-byte units */
    int frame_owner;       /* -1 before 3.11; skip frames owned by the C stack (3, 3.12+) */
    int co_filename;
    int co_name;           /* co_qualname from 3.11 */
    int co_firstlineno;
    int co_code_adaptive;  /* start of the bytecode inside the code object, 3.11+ */
    int str_ascii_size;    /* sizeof(PyASCIIObject) */
    int str_compact_size;  /* sizeof(PyCompactUnicodeObject) */
    int frame_is_entry;    /* 3.11 only: the first frame an eval call runs */
    int tstate_thread_id;  /* PyThreadState.thread_id (pthread_self of its thread) */
    int co_firsttraceable; /* 3.11+: the first instruction after a frame's prologue */
    int tracemalloc_tracing; /* tracemalloc's `tracing` flag: in _Py_tracemalloc_config up
                                to 3.11, in _PyRuntime from 3.12 */
    int tstate_tracing;    /* 3.9+: PyThreadState.tracing, non-zero inside trace and profile
                              functions (3.9-3.11) and monitoring callbacks; -1: no frame watch */
    int tstate_context_ver; /* 3.12+: PyThreadState.context_ver, which stack switchers bump */
    int interp_monitors;   /* 3.12+: PyInterpreterState.monitors, the tools set on each event */
    int long_one_digit;    /* 3.12+: what the int of a monitoring call's offset asks PyObject_Malloc
                              for (3.12: _PyLong_New(1), 3.13: _PyLong_FromMedium) */
    unsigned char op_return_value, op_return_const, op_yield_value; /* 3.12+: INSTRUMENTED_* */
    int co_linetable;      /* the line table's bytes object: co_lnotab up to 3.9, co_linetable after */
    int interp_eval_frame; /* 3.9-3.11: PyInterpreterState.eval_frame (PEP 523), which the frame watch
                              sets; -1: the watch is sys.monitoring's (3.12+) or none */
};

static const struct layout layouts[] = {
    {8, 24, -1, 24, 32, 104, 1, -1, 104, 112, 40, 0, 48, 72, -1, 176, -1, 4, -1, -1, -1, -1, 0, 0, 0, 120, -1},
    {9, 24, -1, 24, 32, 104, 1, -1, 104, 112, 40, 0, 48, 72, -1, 176, -1, 4, 44, -1, -1, -1, 0, 0, 0, 120, 1400},
    {10, 24, -1, 24, 32, 96, 2, -1, 104, 112, 40, 0, 48, 72, -1, 176, -1, 4, 44, -1, -1, -1, 0, 0, 0, 120, 1368},
    {11, 56, 8, 48, 32, 56, 0, 69, 112, 128, 72, 184, 48, 72, 68, 152, 168, 4, 44, -1, -1, -1, 0, 0, 0, 136, 1424},
    {12, 56, 0, 8, 0, 56, 0, 70, 112, 128, 68, 192, 40, 56, -1, 136, 176, 2772, 44, 216, 381744, 28, 242, 247, 243,
     136, -1},
    {13, 72, -1, 8, 0, 56, 0, 70, 112, 128, 68, 200, 40, 56, -1, 152, 184, 10084, 60, 216, 193136, 32, 239, 240, 241,
     136, -1},
};

#define PM_OWNER_GENERATOR 1
#define PM_OWNER_CSTACK 3

static const struct layout *L;
static uintptr_t eval_lo, eval_hi;
static void *(*get_tstate)(void);
static void *(*running_tstate)(void);
static int (*code_addr2line)(const void *, int);
static int (*check_line_number)(int, void *); /* 3.10+: _PyCode_CheckLineNumber */
static const void *code_type;
static const void *unicode_type;
static const void *bytes_type;

static inline const void *load_ptr(const void *base, int off)
{
    const void *v;
    memcpy(&v, (const char *)base + off, sizeof v);
    return v;
}

static inline const void *ob_type(const void *obj)
{
    return load_ptr(obj, 8);
}

_Atomic(pm_walk_fn) pm_pyframes_walker;
_Atomic(pm_walk_cached_fn) pm_pyframes_cached_walker;

/* Runs inside malloc: one warning, then stacks stay empty. */
static void layout_mismatch(void)
{
    atomic_store(&pm_pyframes_cached_walker, NULL);
    if (atomic_exchange(&pm_pyframes_walker, NULL))
        pm_warn("this Python's frames do not have the expected layout; recording without call stacks");
}

/* Where the running thread state lives from 3.12: a thread-local variable
 * of the interpreter's (_Py_tss_tstate), found at start by its value in the
 * interpreter's thread-local block (see find_tstate_tls), as the module and
 * offset __tls_get_addr takes. Each thread checks its slot against the
 * interpreter's own function at its first use; `tstate_tls_ok` is cleared
 * when one finds another value there, and later threads then ask the
 * function every time. */
struct tls_index {
    unsigned long module, offset;
};
extern void *__tls_get_addr(struct tls_index *ti);
static struct tls_index tstate_tls;
static _Atomic bool tstate_tls_ok;

/* The thread's first look: its slot is looked up, and checked against the
 * interpreter's own answer before it is trusted. Called with the GIL held,
 * so that the interpreter's thread-local block is already allocated on this
 * thread (__tls_get_addr does not allocate then). */
static __attribute__((noinline)) const void *running_tstate_first(void)
{
    const void *tstate = running_tstate();
    if (!atomic_load_explicit(&tstate_tls_ok, memory_order_relaxed))
        return tstate;
    void *const *at = __tls_get_addr(&tstate_tls);
    if (at && *at == tstate)
        pm_thread.tstate_at = at;
    else
        atomic_store(&tstate_tls_ok, false);
    return tstate;
}

/* The running thread state of the calling thread, which holds the GIL. */
static inline __attribute__((always_inline)) const void *running_tstate_fast(void)
{
    void *const *at = pm_thread.tstate_at;
    if (__builtin_expect(at != NULL, 1))
        return *at;
    return atomic_load_explicit(&tstate_tls_ok, memory_order_relaxed) ? running_tstate_first() : running_tstate();
}

/* The calling thread's state, or NULL. The thread holding the GIL is the
 * one running: its thread state is one load away. Without the GIL (malloc,
 * PyMem_Raw*) the current state may be another thread's (up to 3.11 it is
 * the GIL holder's), so the thread's own is looked up in thread-specific
 * storage; so it is too when a MEM or OBJ allocation comes from a thread
 * that does not hold the GIL (a faulty extension), rather than walking
 * another thread's frames. */
static inline __attribute__((always_inline)) const void *thread_state(const struct layout *l, bool gil_held)
{
    const void *tstate = NULL;
    if (gil_held) {
        /* 3.12+: the interpreter's own thread-local slot, which holds this
         * thread's state while it is attached, and NULL otherwise */
        void *const *at = pm_thread.tstate_at;
        if (__builtin_expect(at != NULL, 1) && (tstate = *at) != NULL)
            return tstate;
        tstate = running_tstate_fast();
        unsigned long owner;
        if (tstate) {
            memcpy(&owner, (const char *)tstate + l->tstate_thread_id, sizeof owner);
            unsigned long self = pm_thread.self;
            if (__builtin_expect(!self, 0))
                self = pm_thread.self = (unsigned long)pthread_self();
            if (owner != self)
                tstate = NULL;
        }
    }
    if (!tstate)
        tstate = get_tstate();
    return tstate;
}

/* The innermost frame of thread state `tstate` (not NULL), or NULL. */
static inline __attribute__((always_inline)) const void *innermost_frame(const struct layout *l, const void *tstate)
{
    const void *frame = load_ptr(tstate, l->tstate_frame);
    if (frame && l->cframe_current >= 0)
        frame = load_ptr(frame, l->cframe_current);
    return frame;
}

static inline __attribute__((always_inline)) const void *top_frame(const struct layout *l, bool gil_held)
{
    const void *tstate = thread_state(l, gil_held);
    return tstate ? innermost_frame(l, tstate) : NULL;
}

/* What one frame of the chain is to a stack. */
enum frame_kind {
    FRAME_KEPT,
    FRAME_SHIM,     /* 3.12+: the shim an eval call pushes under the frames it runs */
    FRAME_LEFT_OUT, /* no code object (3.13 shims), or still in its prologue */
    FRAME_BAD,      /* not this layout */
};

/* Reads one frame into `out`. `innermost`: the first frame with a code
 * object the walk meets, whose code object is checked even before 3.13: a
 * layout that does not match this interpreter shows there first, and turns
 * the walk off instead of following stray pointers. */
static inline __attribute__((always_inline)) enum frame_kind read_frame(const struct layout *l, const void *frame,
                                                                       bool innermost, struct pm_rawframe *out)
{
    char owner = l->frame_owner >= 0 ? ((const char *)frame)[l->frame_owner] : 0;
    if (owner == PM_OWNER_CSTACK)
        return FRAME_SHIM;
    const void *code = load_ptr(frame, l->frame_code);
    out->code = code;
    out->lasti = -1;
    out->entry = 0;
    if (!code || ((l->minor >= 13 || innermost) && ob_type(code) != code_type))
        return l->minor >= 13 ? FRAME_LEFT_OUT : FRAME_BAD;
    int32_t lasti;
    if (l->co_code_adaptive) {
        const char *instr = load_ptr(frame, l->frame_instr);
        lasti = (int32_t)(instr - ((const char *)code + l->co_code_adaptive));
    } else {
        int raw;
        memcpy(&raw, (const char *)frame + l->frame_instr, sizeof raw);
        lasti = raw * l->lasti_scale;
    }
    out->lasti = lasti;
    /* 3.11+: a frame still in its prologue (making closure cells, or the
     * generator or coroutine it returns) has not begun to run its first
     * line; what it allocates is its caller's, as CPython's tracebacks and
     * tracemalloc say (_PyFrame_IsIncomplete). */
    if (l->co_firsttraceable >= 0 && owner != PM_OWNER_GENERATOR) {
        int first;
        memcpy(&first, (const char *)code + l->co_firsttraceable, sizeof first);
        if (lasti < first * 2)
            return FRAME_LEFT_OUT;
    }
    /* Up to 3.10 every Python frame has its own eval call. */
    out->entry = l->minor <= 10 || (l->frame_is_entry >= 0 && ((const char *)frame)[l->frame_is_entry]);
    return FRAME_KEPT;
}

/* The walk, written once and instantiated per layout below with the layout
 * as a constant, so that every offset folds into the instructions. */
static inline __attribute__((always_inline)) int walk(const struct layout *l, struct pm_rawframe *out,
                                                      int max, bool *truncated, bool gil_held)
{
    *truncated = false;
    int n = 0;
    for (const void *frame = top_frame(l, gil_held); frame; frame = load_ptr(frame, l->frame_back)) {
        struct pm_rawframe f;
        switch (read_frame(l, frame, n == 0, &f)) {
        case FRAME_SHIM:
            /* the frame above it is the first that eval call ran */
            if (n > 0)
                out[n - 1].entry = 1;
            continue;
        case FRAME_LEFT_OUT:
            continue;
        case FRAME_BAD:
            layout_mismatch();
            return 0;
        case FRAME_KEPT:
            break;
        }
        if (n == max) {
            *truncated = true;
            break;
        }
        out[n++] = f;
    }
    return n;
}

/* What tells a frame's position in its code: the instruction pointer from
 * 3.11, f_lasti before (with f_code, which a PyFrameObject reused from a
 * free list may change). From 3.11 the pointer alone says which code object
 * runs: it points into that object's bytecode, kept alive by the frame. */
static inline __attribute__((always_inline)) uintptr_t frame_word(const struct layout *l, const void *frame)
{
    if (l->co_code_adaptive)
        return (uintptr_t)load_ptr(frame, l->frame_instr);
    int raw;
    memcpy(&raw, (const char *)frame + l->frame_instr, sizeof raw);
    return (uint32_t)raw;
}

static inline unsigned frame_slot(const void *frame)
{
    uintptr_t a = (uintptr_t)frame;
    return (unsigned)((a >> 4) ^ (a >> 12)) & (PM_FRAMECACHE_SLOTS - 1);
}

/* The frame watch (pyframes.h, framewatch.c): the epoch of the watch in
 * force (0: none) and the interpreter whose pops it counts. */
_Atomic unsigned pm_pyframes_watch_epoch;
size_t pm_pyframes_watch_int_size = SIZE_MAX;
static const void *_Atomic watch_interp;
/* 3.9-3.11: pymem's frame evaluator, which counts the pops while it is
 * the interpreter's. */
static const void *_Atomic watch_evaluator;
/* The callback's reference count, and its value while it is registered. */
static const ssize_t *_Atomic watch_refcnt;
static ssize_t watch_refs;
static void (*_Atomic watch_wanted)(void);
static void (*_Atomic watch_unwanted)(void);
static _Atomic uint8_t watch_tool_bit; /* 1 << the watch's tool id */

/* Thread state's interpreter: the second word after two links. */
#define TSTATE_INTERP 16

/* Bumped by every switch of greenlet (and of any stack switcher that keeps
 * contextvars right): a switch replaces the chain without a pop reported,
 * and frames below the floor may then have run. */
static inline __attribute__((always_inline)) uint64_t context_version(const struct layout *l, const void *tstate)
{
    uint64_t v;
    memcpy(&v, (const char *)tstate + l->tstate_context_ver, sizeof v);
    return v;
}

/* sys.monitoring's event numbers (the indexes of PyInterpreterState's
 * monitors.tools, checked by test_pyoffsets.c). */
#define EVENT_PY_RETURN 2
#define EVENT_PY_YIELD 3
#define EVENT_PY_UNWIND 12

/* The tools set on each event in `interp`, by event number. */
static inline const uint8_t *event_tools(const struct layout *l, const void *interp)
{
    return (const uint8_t *)interp + l->interp_monitors;
}

/* This layout has a frame watch: sys.monitoring's (3.12+) or a frame
 * evaluator's (3.9-3.11). */
static inline __attribute__((always_inline)) bool has_watch(const struct layout *l)
{
    return l->tstate_tracing >= 0;
}

/* The watch's three events are set for its tool in `interp`: unless the
 * program cleared them behind pymem's wrappers (with one of
 * sys.monitoring's own functions, reached past them), in which case the
 * pops go uncounted. */
static inline __attribute__((always_inline)) bool watch_events_set(const struct layout *l, const void *interp)
{
    const uint8_t *tools = event_tools(l, interp);
    uint8_t bit = atomic_load_explicit(&watch_tool_bit, memory_order_relaxed);
    return tools[EVENT_PY_RETURN] & tools[EVENT_PY_YIELD] & tools[EVENT_PY_UNWIND] & bit;
}

/* The pops are still counted in `interp`: by pymem's frame evaluator,
 * unless the program set one of its own since (3.9-3.11); by the watch's
 * callback, still registered, on its three events (3.12+). */
static inline __attribute__((always_inline)) bool watch_counting(const struct layout *l, const void *interp)
{
    if (l->interp_eval_frame >= 0)
        return load_ptr(interp, l->interp_eval_frame) == atomic_load_explicit(&watch_evaluator, memory_order_relaxed);
    return *atomic_load_explicit(&watch_refcnt, memory_order_relaxed) == watch_refs && watch_events_set(l, interp);
}

/* A walk with the watch on checks only frames from here up: below the
 * lowest frame that can have run since the last walk, nothing changed. */
static inline __attribute__((always_inline)) int watched_floor(const struct layout *l, const struct pm_framecache *c,
                                                              const void *tstate, unsigned *epoch)
{
    *epoch = 0;
    if (!has_watch(l) || !tstate)
        return 0;
    unsigned e = atomic_load_explicit(&pm_pyframes_watch_epoch, memory_order_acquire);
    const void *interp = load_ptr(tstate, TSTATE_INTERP);
    if (!e || interp != atomic_load_explicit(&watch_interp, memory_order_relaxed) || !watch_counting(l, interp))
        return 0;
    *epoch = e;
    if (c->epoch != e || (l->tstate_context_ver >= 0 && context_version(l, tstate) != c->context_ver))
        return 0;
    int floor = c->low < c->running ? c->low : c->running;
    return floor > 0 ? floor : 0;
}

/* After a walk: the counts start again from it, unless it ran inside a
 * monitoring callback, or a trace or profile function (tstate->tracing).
 * There the pop being reported may not have happened yet (CPython calls
 * every tool's callback, pymem's among them, before it pops the frame),
 * pops inside a callback are not reported at all (3.12+), and a trace
 * function may move the frame it traces, below it, by a jump (setting
 * f_lineno): the counts of the last walk outside stay, which only makes the
 * next walks check more. */
static inline __attribute__((always_inline)) void watch_baseline(const struct layout *l, struct pm_framecache *c,
                                                                const void *tstate, unsigned epoch)
{
    if (!has_watch(l))
        return;
    if (!epoch) {
        c->epoch = 0;
        return;
    }
    int tracing;
    memcpy(&tracing, (const char *)tstate + l->tstate_tracing, sizeof tracing);
    if (tracing)
        return;
    /* The innermost frame that has started (a frame above it, still in its
     * prologue, may go without a pop being reported: a generator function's
     * frame once it has made its generator). */
    int running = c->depth - 1;
    while (running >= 0 && !pm_framecache_started(c, running))
        running--;
    /* 3.9-3.11: the counts hold only from a frame the evaluator runs (one the
     * program ran before the watch started leaves unseen): the innermost
     * it runs, or the one under it while that one is in its prologue. */
    if (l->interp_eval_frame >= 0 &&
        (running < 0 || (c->frame[running] != c->evaluated && c->frame[running] != c->evaluated_under))) {
        c->epoch = 0;
        return;
    }
    c->epoch = epoch;
    c->context_ver = l->tstate_context_ver >= 0 ? context_version(l, tstate) : 0;
    c->low = INT_MAX;
    c->running = running;
    c->next_pop = c->depth - 1;
}

/* The watch is measured against what it replaces, per thread over
 * WATCH_WALKS walks. Off, the walks ask for it when they check WATCH_FRAMES
 * cached frames on average. On, it is stopped when its callbacks cost more
 * than the frames they spare: one callback costs about as much as checking
 * WATCH_POP_FRAMES frames (17 ns against 0.5 ns, measured on 3.12 and 3.13:
 * a deep program whose inner functions call many others between two
 * allocations); on 3.11, one call through the frame evaluator (12 ns, most
 * of it CPython's for a call it no longer inlines) as much as checking
 * EVALUATED_POP_FRAMES (1.3 ns each: the same program, 100 frames deep,
 * breaks even at 12 calls between two allocations); before 3.11, which
 * inlines no call, the evaluator costs less, and the same bound stays.
 * Both calls happen with the GIL held (framewatch.c schedules the change). */
#define WATCH_WALKS 1024
#define WATCH_FRAMES 48
#define WATCH_POP_FRAMES 32
#define EVALUATED_POP_FRAMES 10

static inline __attribute__((always_inline)) void measure_walk(const struct layout *l, struct pm_framecache *c,
                                                              int checked, int spared, bool gil_held)
{
    if (!has_watch(l))
        return;
    unsigned walks = ++c->walks;
    c->checked += (unsigned)checked;
    c->spared += (unsigned)spared; /* none without the watch: its floor is 0 */
    if (__builtin_expect(walks < WATCH_WALKS, 1))
        return;
    /* on, the watch may still spare nothing (its counts not trusted: frames
     * that began before it, on 3.9-3.11): it is measured all the same */
    bool on = atomic_load_explicit(&pm_pyframes_watch_epoch, memory_order_relaxed) != 0;
    if (gil_held && !on && c->checked >= WATCH_WALKS * WATCH_FRAMES) {
        void (*wanted)(void) = atomic_load_explicit(&watch_wanted, memory_order_relaxed);
        if (wanted)
            wanted();
    } else if (gil_held && on &&
               c->spared < (uint64_t)c->pops * (l->interp_eval_frame >= 0 ? EVALUATED_POP_FRAMES : WATCH_POP_FRAMES)) {
        void (*unwanted)(void) = atomic_load_explicit(&watch_unwanted, memory_order_relaxed);
        if (unwanted)
            unwanted();
    }
    c->walks = c->checked = c->pops = 0;
    c->spared = 0;
}

#ifdef PM_WATCH_SELFCHECK
/* Test builds (make check-watch): the frames the watch leaves unread are
 * read all the same, and one that moved stops the program. */
static void watch_selfcheck(const struct layout *l, const struct pm_framecache *c, int floor, int junction)
{
    for (int k = floor - 1; k >= 0; k--) {
        const void *fk = c->frame[k];
        if (load_ptr(fk, l->frame_back) != (k ? c->frame[k - 1] : NULL) || frame_word(l, fk) != c->word[k]) {
            pm_warn("frame watch self-check: frame %d of %d moved, below the floor %d (junction %d, low %d, "
                    "running %d)", k, c->depth, floor, junction, c->low, c->running);
            abort();
        }
    }
}
#endif

/* Cached frame `k`, at `fk`, checked against the chain: false when it no
 * longer links to `below` (another chain lies under it); else *keep is
 * lowered to k when its position moved. */
static inline __attribute__((always_inline)) bool frame_holds(const struct layout *l, const struct pm_framecache *c,
                                                             int k, const void *fk, const void *below, int *keep)
{
    if (__builtin_expect(load_ptr(fk, l->frame_back) != below, 0))
        return false;
    if (frame_word(l, fk) != c->word[k] || (!l->co_code_adaptive && load_ptr(fk, l->frame_code) != c->raw[k].code))
        *keep = k;
    return true;
}

/* Cached frames `k` down to `lowest` (>= 1), each checked by frame_holds
 * against the cached one below: returns the first that fails (below
 * `lowest` when all hold). The frame below, once checked as linked to, is
 * carried to the next step instead of loaded again from the cache, and the
 * frames that hold run straight through (most of a deep walk's time).
 * `relink` (window mode, a constant at each call) points each checked
 * frame's slot back at it: a descent overwrites the slots of the frames
 * under it with its own, and a return to a frame whose slot is another's
 * would count it new, and its callers, down to the first found. */
static inline __attribute__((always_inline)) int frames_hold(const struct layout *l, struct pm_framecache *c, int k,
                                                            int lowest, int *keep, bool relink)
{
    const void *fk = c->frame[k];
#pragma GCC unroll 4
    for (; k >= lowest; k--) {
        const void *below = c->frame[k - 1];
        if (!frame_holds(l, c, k, fk, below, keep))
            break;
        if (relink)
            c->slot[frame_slot(fk)] = (uint16_t)k;
        fk = below;
    }
    return k;
}

/* The bytes of a cache's arrays past their first PM_FRAMECACHE_FIRST
 * frames: counted as pymem's memory only once a chain that deep backs them. */
#define FRAMECACHE_RESERVE                                                                         \
    ((ptrdiff_t)(PM_FRAMECACHE_MAX - PM_FRAMECACHE_FIRST) *                                        \
     (ptrdiff_t)(sizeof(const void *) + sizeof(uintptr_t) + sizeof(struct pm_rawframe) +           \
                 sizeof(uint16_t) + sizeof(uint32_t)))

void pm_framecache_made(void)
{
    pm_rawmem_count(-FRAMECACHE_RESERVE);
}

/* The cache is about to hold more than its first frames. */
static __attribute__((noinline)) void framecache_deep(struct pm_framecache *c)
{
    c->deep = true;
    pm_rawmem_count(FRAMECACHE_RESERVE);
}

static int cache_limit = PM_FRAMECACHE_MAX;

void pm_pyframes_cache_deep(bool deep)
{
    cache_limit = deep ? PM_FRAMECACHE_MAX : PM_FRAMECACHE_FIRST;
}

static int check_window; /* pm_pyframes_set_window */

void pm_pyframes_set_window(int frames)
{
    check_window = frames < 0 ? 0 : frames;
}

/* The lowest cached frame that a walk whose first cached frame is
 * `junction` checks in window mode: every frame up to the junction that one
 * of the innermost `window` frames a stack keeps can be, and none below. */
static int window_floor(const struct pm_framecache *c, int junction, int window)
{
    unsigned kept = c->kept[junction];
    return kept > (unsigned)window ? pm_framecache_keeping(c, kept - (unsigned)window, junction) + 1 : 0;
}

/* The cached walk from the chain's `top`, trusting the frames below `floor`
 * unchanged (watched_floor), or in window mode (`window` > 0, a constant at
 * each call) leaving the frames below window_floor unread. */
static inline __attribute__((always_inline)) int walk_above(const struct layout *l, struct pm_framecache *c,
                                                            const void *tstate, const void *top, int floor,
                                                            unsigned epoch, bool gil_held, int window)
{
    int depth = c->depth, above = 0, junction = -1, limit = cache_limit;
    /* The watch on, no cached frame popped since the baseline (`low`), the
     * baseline's innermost started frame still the cache's innermost (a
     * walk inside a callback since would have cached frames above it), and
     * the chain's top is that frame, linked to the one under it, at the
     * same instruction: the stack is the last walk's (several allocations
     * of one instruction: a dict and its keys, a list and its items).
     * Frames it called that returned since were not cached: its
     * instruction tells whether it moved. */
    if (floor > 0 && floor == depth - 1 && c->low == INT_MAX && top == c->frame[floor] &&
        frame_word(l, top) == c->word[floor] && load_ptr(top, l->frame_back) == c->frame[floor - 1]) {
#ifdef PM_WATCH_SELFCHECK
        watch_selfcheck(l, c, depth, floor);
#endif
        measure_walk(l, c, 1, floor, gil_held);
        return depth;
    }
    /* Down from the top to the first frame the cache holds: `above` frames
     * are new. Most often the top is the last walk's innermost frame (the
     * same call, or a new one at its address), the only cached frame it
     * can be. */
    const void *f = top;
    if (depth > 0 && top == c->frame[depth - 1]) {
        junction = depth - 1;
    } else {
        for (; f; f = load_ptr(f, l->frame_back), above++) {
            unsigned i = c->slot[frame_slot(f)];
            if (i < (unsigned)depth && c->frame[i] == f) {
                junction = (int)i;
                break;
            }
            if (above == limit)
                goto uncached;
        }
    }
    /* A cached frame above the first one found went without its pop being
     * reported (a frame of a monitoring callback): all are checked. */
    if (junction < floor)
        floor = 0;
    /* Below it, each cached frame is checked with loads whose addresses are
     * known beforehand: its link to the one below (a frame is only read
     * once the one above it is known to link to it: a popped frame's memory
     * may be gone), and its position. The lowest that moved, and all above
     * it, are read again. Frames below `floor` are not read: the watch knows
     * them unchanged. */
    int keep = 0, total = above;
#ifdef PM_WATCH_SELFCHECK
    watch_selfcheck(l, c, floor, junction);
#endif
    if (junction >= 0) {
        keep = junction + 1;
        int spared = floor;
        if (window > 0)
            floor = window_floor(c, junction, window);
        measure_walk(l, c, junction + 1 - floor, spared, gil_held);
        /* the outermost frame, which links to nothing, apart: the loop over
         * the others (most of a deep walk's time) tests no index */
        int k = frames_hold(l, c, junction, floor > 1 ? floor : 1, &keep, window > 0);
        if (k >= floor && (k > 0 || !frame_holds(l, c, 0, c->frame[0], NULL, &keep)))
            keep = -1;
        if (keep >= 0) {
            total = above + junction + 1;
        } else {
            keep = 0; /* another chain under it: all of it is new */
            for (; f; f = load_ptr(f, l->frame_back))
                if (++total > limit)
                    goto uncached;
        }
    }
    if (total > limit)
        goto uncached;
    if (__builtin_expect(total > PM_FRAMECACHE_FIRST, 0) && !c->deep)
        framecache_deep(c);
    /* Only the innermost frame moved (in the same call, a new one at its
     * address, or the caller the frames above returned to): when it has
     * begun to run and had before, how many frames the stack keeps up to it
     * stays, and the cache ends with it. */
    if (above == 0 && keep == total - 1 && pm_framecache_started(c, keep)) {
        struct pm_rawframe raw;
        if (read_frame(l, top, true, &raw) == FRAME_KEPT) {
            c->frame[keep] = top;
            c->word[keep] = frame_word(l, top);
            c->raw[keep] = raw;
            c->slot[frame_slot(top)] = (uint16_t)keep;
            c->depth = total;
            watch_baseline(l, c, tstate, epoch);
            return keep;
        }
    }
    f = top;
    bool innermost = true;
    for (int pos = total - 1; pos >= keep; pos--, f = load_ptr(f, l->frame_back)) {
        c->frame[pos] = f;
        c->word[pos] = frame_word(l, f);
        enum frame_kind kind = read_frame(l, f, innermost, &c->raw[pos]);
        if (kind == FRAME_BAD) {
            layout_mismatch();
            goto uncached;
        }
        innermost = innermost && kind != FRAME_KEPT;
        c->kept[pos] = kind == FRAME_KEPT;
    }
    for (int pos = keep; pos < total; pos++) {
        c->kept[pos] = (uint16_t)(c->kept[pos] + (pos ? c->kept[pos - 1] : 0));
        c->slot[frame_slot(c->frame[pos])] = (uint16_t)pos;
    }
    c->depth = total;
    watch_baseline(l, c, tstate, epoch);
    return keep;
uncached:
    c->depth = 0;
    c->epoch = 0;
    return -1;
}

static inline __attribute__((always_inline)) int walk_cached(const struct layout *l, struct pm_framecache *c,
                                                             bool gil_held)
{
    const void *tstate = thread_state(l, gil_held);
    const void *top = tstate ? innermost_frame(l, tstate) : NULL;
    unsigned epoch;
    int floor = watched_floor(l, c, tstate, &epoch);
    /* Most walks trust no frame (the watch off, or not yet counting): that
     * one with the floor a constant, which folds the bounds of the checks
     * (about 50 instructions a walk on 3.11 and 3.12). */
    if (__builtin_expect(floor == 0, 1)) {
        int w = check_window;
        if (w > 0)
            return walk_above(l, c, tstate, top, 0, epoch, gil_held, w);
        return walk_above(l, c, tstate, top, 0, epoch, gil_held, 0);
    }
    return walk_above(l, c, tstate, top, floor, epoch, gil_held, 0);
}

void pm_pyframes_watch_offer(void (*wanted)(void), void (*unwanted)(void))
{
    atomic_store(&watch_wanted, wanted);
    atomic_store(&watch_unwanted, unwanted);
}

/* The counts are trusted from here on, in the calling thread's
 * interpreter, with a new epoch. */
static void watch_trust(const void *tstate)
{
    static unsigned epochs;
    if (!++epochs)
        epochs = 1;
    atomic_store(&watch_interp, load_ptr(tstate, TSTATE_INTERP));
    atomic_store_explicit(&pm_pyframes_watch_epoch, epochs, memory_order_release);
}

bool pm_pyframes_watch_start(int tool, const ssize_t *refcnt)
{
    const void *tstate = L && L->tstate_tracing >= 0 && L->interp_eval_frame < 0 ? running_tstate_fast() : NULL;
    if (!tstate)
        return false;
    watch_refs = *refcnt;
    atomic_store(&watch_refcnt, refcnt);
    atomic_store(&watch_tool_bit, (uint8_t)(1u << tool));
    watch_trust(tstate);
    return true;
}

bool pm_pyframes_watch_start_evaluator(const void *evaluator)
{
    const void *tstate = L && L->interp_eval_frame >= 0 ? running_tstate_fast() : NULL;
    if (!tstate)
        return false;
    atomic_store(&watch_evaluator, evaluator);
    watch_trust(tstate);
    return true;
}

const void *pm_pyframes_innermost(void)
{
    return L ? top_frame(L, true) : NULL;
}

void *pm_pyframes_interp_of(const void *tstate)
{
    return (void *)load_ptr(tstate, TSTATE_INTERP);
}

void pm_pyframes_watch_stop(void)
{
    atomic_store(&pm_pyframes_watch_epoch, 0);
}

/* CPython's dispatch of a monitoring event makes the int of its offset
 * (PyLong_FromLong, with the thread not yet `tracing`), then calls each
 * tool's callback with it, then frees it; small ints are not made. The
 * dispatch is pymem's alone when its tool is the only one set on the
 * event, and it is this one when the innermost frame stands at the
 * instrumented return or yield that fires it (every tool's callback runs
 * with `tracing` set; from 3.13 a yielding frame already points past its
 * YIELD_VALUE, which has no cache entries). PY_UNWIND, which no instruction
 * tells, is left recorded. */
bool pm_pyframes_watch_int(size_t size)
{
    const struct layout *l = L;
    if (!l || (int)size != l->long_one_digit)
        return false;
    const void *tstate = thread_state(l, true);
    const void *frame = tstate ? innermost_frame(l, tstate) : NULL;
    const void *interp = frame ? load_ptr(tstate, TSTATE_INTERP) : NULL;
    int tracing;
    if (!frame || interp != atomic_load_explicit(&watch_interp, memory_order_relaxed))
        return false;
    memcpy(&tracing, (const char *)tstate + l->tstate_tracing, sizeof tracing);
    const unsigned char *instr = load_ptr(frame, l->frame_instr);
    const unsigned char *code = load_ptr(frame, l->frame_code);
    if (tracing || !instr || !code)
        return false;
    bool yielding = l->minor >= 13 ? instr >= code + l->co_code_adaptive + 2 && instr[-2] == l->op_yield_value
                                   : *instr == l->op_yield_value;
    int event = *instr == l->op_return_value || *instr == l->op_return_const ? EVENT_PY_RETURN
                : yielding                                                 ? EVENT_PY_YIELD
                                                                           : -1;
    return event >= 0 && event_tools(l, interp)[event] == atomic_load_explicit(&watch_tool_bit, memory_order_relaxed);
}

/* Frame `f`, innermost but for frames of no concern, leaves (3.12+:
 * about to; 3.11: has). */
static void frame_popped(struct pm_framecache *c, const void *f)
{
    /* The cached frames leave innermost first, each once: the leaving frame
     * is the next of them to leave, past the ones that go without a pop
     * reported (a shim with the frame it ran, a frame still in its
     * prologue), or one pushed since the walk, whose caller is checked by
     * the next walk anyway. (A frame pushed since at the address of a
     * cached one is told apart by that order.) */
    int i = c->next_pop;
    while (i >= 0 && c->frame[i] != f && !pm_framecache_started(c, i))
        i--;
    if (i < 0 || c->frame[i] != f)
        return;
    /* The frame that runs next is the first started one below. */
    int below = i - 1;
    while (below > 0 && !pm_framecache_started(c, below))
        below--;
    c->next_pop = below;
    if (below < c->low)
        c->low = below;
}

void pm_pyframes_frame_leaving(struct pm_framecache *c)
{
    c->pops++;
    const void *tstate = c->epoch ? running_tstate_fast() : NULL;
    const void *f = tstate ? innermost_frame(L, tstate) : NULL;
    if (f)
        frame_popped(c, f);
}

void pm_pyframes_frame_left(struct pm_framecache *c, const void *tstate, const void *frame, const void *under)
{
    c->pops++;
    if (!c->epoch)
        return;
    /* The frame it returns to was run by some other evaluator (CPython's,
     * before the watch started): it may leave unseen, and so may all
     * below it. */
    if (innermost_frame(L, tstate) != under)
        c->low = 0;
    frame_popped(c, frame);
}

#define WALK(i)                                                                                    \
    static int walk_##i(struct pm_rawframe *out, int max, bool *truncated, bool gil_held)          \
    {                                                                                              \
        return walk(&layouts[i], out, max, truncated, gil_held);                                   \
    }                                                                                              \
    static int walk_cached_##i(struct pm_framecache *c, bool gil_held)                              \
    {                                                                                              \
        return walk_cached(&layouts[i], c, gil_held);                                              \
    }
WALK(0)
WALK(1)
WALK(2)
WALK(3)
WALK(4)
WALK(5)
#undef WALK

static const pm_walk_fn walks[] = {walk_0, walk_1, walk_2, walk_3, walk_4, walk_5};
static const pm_walk_cached_fn cached_walks[] = {walk_cached_0, walk_cached_1, walk_cached_2,
                                                 walk_cached_3, walk_cached_4, walk_cached_5};
_Static_assert(sizeof walks / sizeof walks[0] == sizeof layouts / sizeof layouts[0],
               "one walk per layout");
_Static_assert(sizeof cached_walks / sizeof cached_walks[0] == sizeof layouts / sizeof layouts[0],
               "one cached walk per layout");

/* The module whose code holds `fn`, and its thread-local block. */
struct tls_search {
    uintptr_t fn;
    size_t module;
    const void *data;
    size_t size;
};

static int find_module_tls(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct tls_search *s = arg;
    bool holds = false;
    const ElfW(Phdr) *tls = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && s->fn >= lo && s->fn < lo + ph->p_memsz)
            holds = true;
        if (ph->p_type == PT_TLS)
            tls = ph;
    }
    if (!holds)
        return 0;
    if (tls) {
        s->module = info->dlpi_tls_modid;
        s->data = info->dlpi_tls_data;
        s->size = tls->p_memsz;
    }
    return 1;
}

/* From 3.12 the running thread state is a thread-local variable of the
 * interpreter's, not exported: it is the one word of the interpreter's
 * thread-local block (its module: the object that holds the function
 * returning it) that holds this thread's state, which must not be NULL.
 * Called with the GIL held. */
static void find_tstate_tls(void)
{
    const void *tstate = running_tstate();
    struct tls_search s = {.fn = (uintptr_t)running_tstate};
    if (!tstate || dl_iterate_phdr(find_module_tls, &s) != 1 || !s.data)
        return;
    size_t found = 0, at = 0;
    for (size_t off = 0; off + sizeof(void *) <= s.size; off += sizeof(void *))
        if (load_ptr(s.data, (int)off) == tstate) {
            found++;
            at = off;
        }
    if (found != 1)
        return;
    tstate_tls = (struct tls_index){s.module, at};
    void *const *slot = __tls_get_addr(&tstate_tls);
    if (slot && *slot == tstate)
        atomic_store(&tstate_tls_ok, true);
}

bool pm_pyframes_init(int minor)
{
    const struct layout *found = NULL;
    size_t index = 0;
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        if (layouts[i].minor == minor) {
            found = &layouts[i];
            index = i;
        }
    get_tstate = (void *(*)(void))dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
    running_tstate = (void *(*)(void))dlsym(RTLD_DEFAULT, "PyThreadState_GetUnchecked");
    if (!running_tstate)
        running_tstate = (void *(*)(void))dlsym(RTLD_DEFAULT, "_PyThreadState_UncheckedGet");
    code_addr2line = (int (*)(const void *, int))dlsym(RTLD_DEFAULT, "PyCode_Addr2Line");
    code_type = dlsym(RTLD_DEFAULT, "PyCode_Type");
    unicode_type = dlsym(RTLD_DEFAULT, "PyUnicode_Type");
    bytes_type = dlsym(RTLD_DEFAULT, "PyBytes_Type");
    if (minor >= 10)
        check_line_number = (int (*)(int, void *))dlsym(RTLD_DEFAULT, "_PyCode_CheckLineNumber");
    if (!found || !get_tstate || !running_tstate || !code_addr2line || !code_type || !unicode_type)
        return false;
    /* Debug builds (Py_DEBUG) lay their structures out differently. */
    if (dlsym(RTLD_DEFAULT, "_Py_RefTotal") || dlsym(RTLD_DEFAULT, "_Py_GetRefTotal"))
        return false;
    L = found;
    if (found->long_one_digit > 0)
        pm_pyframes_watch_int_size = (size_t)found->long_one_digit;
    if (minor >= 12)
        find_tstate_tls();
    /* The interpreter loop's extent, from its dynamic symbol's size: the
     * native frames that hybrid stacks replace by Python frames. */
    void *eval = dlsym(RTLD_DEFAULT, "_PyEval_EvalFrameDefault");
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if (eval && dladdr1(eval, &info, (void **)&sym, RTLD_DL_SYMENT) && sym && sym->st_size) {
        eval_lo = (uintptr_t)eval;
        eval_hi = eval_lo + sym->st_size;
    }
    atomic_store(&pm_pyframes_cached_walker, cached_walks[index]);
    atomic_store(&pm_pyframes_walker, walks[index]);
    return true;
}

const int *pm_pyframes_tracemalloc_flag(void)
{
    if (!L)
        return NULL;
    char *base = dlsym(RTLD_DEFAULT, L->minor <= 11 ? "_Py_tracemalloc_config" : "_PyRuntime");
    return base ? (const int *)(const void *)(base + L->tracemalloc_tracing) : NULL;
}

bool pm_pyframes_is_eval(uintptr_t pc)
{
    return pc > eval_lo && pc <= eval_hi;
}

void pm_pyframes_codeinfo(const void *code, struct pm_codeinfo *out)
{
    out->filename = load_ptr(code, L->co_filename);
    out->name = load_ptr(code, L->co_name);
    memcpy(&out->firstlineno, (const char *)code + L->co_firstlineno, sizeof(int));
}

int pm_pyframes_line(const void *code, int32_t lasti)
{
    return code_addr2line(code, lasti < 0 ? -1 : lasti);
}

/* A bytes object: its size and its data (LP64). */
#define BYTES_SIZE 16
#define BYTES_DATA 32

/* co_lnotab (3.8, 3.9): pairs of (bytecode offset increment, signed line
 * increment), applied while the offset reached is not past `lasti`, as
 * PyCode_Addr2Line does; forward from the cursor, from the start when
 * `lasti` lies before it. */
static int lnotab_line(struct pm_linecursor *cur, const uint8_t *p, int32_t lasti)
{
    if (lasti < cur->at.lnotab.addr)
        cur->at.lnotab = (__typeof__(cur->at.lnotab)){0, 0, cur->firstlineno};
    int64_t pair = cur->at.lnotab.pair, pairs = cur->length / 2;
    int addr = cur->at.lnotab.addr, line = cur->at.lnotab.line;
    for (; pair < pairs && addr + p[2 * pair] <= lasti; pair++) {
        addr += p[2 * pair];
        line += (signed char)p[2 * pair + 1];
    }
    cur->at.lnotab.pair = pair;
    cur->at.lnotab.addr = addr;
    cur->at.lnotab.line = line;
    return line;
}

int pm_pyframes_line_at(struct pm_linecursor *cur, const void *code, int32_t lasti)
{
    const void *table = load_ptr(code, L->co_linetable);
    if (lasti < 0 || !table || ob_type(table) != bytes_type || (L->minor >= 10 && !check_line_number))
        return pm_pyframes_line(code, lasti);
    int64_t length;
    memcpy(&length, (const char *)table + BYTES_SIZE, sizeof length);
    const uint8_t *data = (const uint8_t *)table + BYTES_DATA;
    uint64_t head = 0, tail = 0;
    memcpy(&head, data, length < 8 ? (size_t)length : 8);
    if (length >= 8)
        memcpy(&tail, data + length - 8, 8);
    int first;
    memcpy(&first, (const char *)code + L->co_firstlineno, sizeof first);
    if (cur->code != code || cur->table != table || cur->length != length || cur->head != head ||
        cur->tail != tail || cur->firstlineno != first) {
        *cur = (struct pm_linecursor){code, table, length, head, tail, first, {{0}}};
        if (L->minor >= 10)
            cur->at.range = (__typeof__(cur->at.range)){-1, 0, -1, {first, data, data + length}};
        else
            cur->at.lnotab = (__typeof__(cur->at.lnotab)){0, 0, first};
    }
    int line = L->minor >= 10 ? check_line_number(lasti, &cur->at.range) : lnotab_line(cur, data, lasti);
#ifdef PM_LINE_SELFCHECK
    if (line != pm_pyframes_line(code, lasti)) {
        pm_warn("line self-check: %d against %d at offset %d", line, pm_pyframes_line(code, lasti), lasti);
        abort();
    }
#endif
    return line;
}

static size_t put_utf8(char *out, size_t at, size_t cap, uint32_t cp)
{
    char tmp[4];
    size_t n;
    if (cp < 0x80) {
        tmp[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        tmp[0] = (char)(0xc0 | cp >> 6);
        tmp[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        tmp[0] = (char)(0xe0 | cp >> 12);
        tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        tmp[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        tmp[0] = (char)(0xf0 | cp >> 18);
        tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        tmp[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    if (at + n > cap)
        return 0;
    memcpy(out + at, tmp, n);
    return n;
}

size_t pm_pyframes_str(const void *str, char *out, size_t cap)
{
    if (!str || !L || ob_type(str) != unicode_type) {
        out[0] = '?';
        return 1;
    }
    int64_t length;
    uint32_t state;
    memcpy(&length, (const char *)str + 16, sizeof length);
    memcpy(&state, (const char *)str + 32, sizeof state);
    unsigned kind = (state >> 2) & 7, compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
    if (!compact || length < 0 || (kind != 1 && kind != 2 && kind != 4)) {
        out[0] = '?';
        return 1;
    }
    const unsigned char *data =
        (const unsigned char *)str + (ascii ? L->str_ascii_size : L->str_compact_size);
    if (ascii) {
        size_t n = (size_t)length < cap ? (size_t)length : cap;
        memcpy(out, data, n);
        return n;
    }
    size_t at = 0;
    for (int64_t i = 0; i < length; i++) {
        uint32_t cp;
        if (kind == 1)
            cp = data[i];
        else if (kind == 2)
            cp = ((const uint16_t *)(const void *)data)[i];
        else
            cp = ((const uint32_t *)(const void *)data)[i];
        if (cp >= 0xd800 && cp <= 0xdfff)
            cp = 0xfffd; /* a lone surrogate (undecodable bytes in a path) */
        size_t w = put_utf8(out, at, cap, cp);
        if (!w)
            break;
        at += w;
    }
    return at;
}
