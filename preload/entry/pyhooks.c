/*
 * pyhooks: CPython entry points (contract in pyhooks.h), through the API
 * table of pyapi.h. The allocator hooks leave errno as the allocator under
 * them left it.
 */
#define _GNU_SOURCE
#include "base/warn.h"
#include "entry/pyhooks.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "entry/framewatch.h"
#include "entry/pyapi.h"
#include "stacks/pyframes.h"
#include "pymem/format.h"
#include "core/recorder.h"
#include "core/recycled.h"
#include "stacks/stacks.h"
#include "base/thread.h"
#include "io/writer.h"

enum { PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ };

static bool installed, installing, allocators_in, finishing, main_seen, main_next, recording_wanted, objects_wanted;
static int user_snapshots;

/* One layer of pymem's wrapper on one domain. `record` is false for the RAW
 * wrapper when Python's allocators are left alone: it then only hands the
 * bootstrap blocks back to free(), and passes everything else on unguarded,
 * so that malloc records it (malloc domain).
 *
 * Layers: pymem wraps each domain at the interpreter's first audit event,
 * before tracemalloc can start (-X tracemalloc, PYTHONTRACEMALLOC), so that
 * tracemalloc wraps pymem and tracemalloc.stop() puts pymem back. Whenever
 * something else has wrapped the domain since (tracemalloc.start() at run
 * time), pymem adds a layer on top of it at the next check point. Every
 * layer records only when it is the outermost of pymem's on the call (the
 * guard): the top one while it is installed, the one below when the top is
 * taken off again. So tracemalloc's own tables, allocated inside its hook,
 * are not counted at the program's lines, and no removal of a wrapper above
 * pymem's first layer can switch pymem off. */
struct domain_ctx {
    PyMemAllocatorEx prev;
    int domain;
    int slot; /* index in `layers` */
    bool record;
};
#define LAYERS_MAX 8
static struct domain_ctx layers[3][LAYERS_MAX];
static int layer_count[3];
static struct domain_ctx *_Atomic top[3]; /* the layer pushed last */
static const int api_domain[3] = {PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};
static const int pm_domain[3] = {PM_DOMAIN_PYRAW, PM_DOMAIN_PYMEM, PM_DOMAIN_PYOBJ};
static char lost[40];
static char python_version[32];
static int python_minor;
static bool forks_watched, fork_paused;
static bool recycled_on, frames_on, watch_on;
/* Interpreter lifetimes (an embedding program may run Py_Initialize and
 * Py_FinalizeEx more than once): `relay` when pymem's Py_AtExit function is
 * registered for the end of this one; `between` from its end to the next
 * one's first audit event. */
static bool relay, between;
static int lifetimes = 1;
/* tracemalloc's "tracing" flag (its value at the last check point is
 * rare.s.tm_seen): when it changes, tracemalloc has just wrapped (or
 * unwrapped) the domains. */
static const int tm_not_found; /* where tm_tracing points when the flag was not found */
static const int *tm_tracing = &tm_not_found;

/* The hooks' rare states, in one word so that their common case tests all of
 * them with one load (rare.any == 0):
 * - resume_countdown: see after_fork_parent();
 * - startup_counting: see startup_blocks_made;
 * - tm_seen: tracemalloc's flag at the last check point. */
static union {
    struct {
        uint16_t resume_countdown;
        uint8_t startup_counting, tm_seen;
    } s;
    uint64_t any;
} rare;
static void check_layers(void);
bool pm_pyhooks_finalised;
_Atomic size_t pm_pyhooks_arena_size;
static _Atomic uint64_t after_end;
/* Python 3.12+ no longer export the count of blocks Python's allocator holds:
 * from the domains' wrapping to the end of start-up the blocks recorded are
 * counted, and sys.getallocatedblocks() then tells what was there before
 * (see count_blocks_before). */
static uint64_t startup_blocks_made, startup_blocks_freed;

/* One more block made or freed in the MEM or OBJ domain during start-up. */
static inline void count_startup_block(const struct domain_ctx *d, uint64_t *counter)
{
    if (__builtin_expect(rare.s.startup_counting, 0) && d->domain != PM_DOMAIN_PYRAW)
        (*counter)++;
}

/* What layer `d` does with this call. It records it when the guard is clear
 * (it is the outermost of pymem's layers on the call). While tracemalloc
 * traces with one of pymem's layers above it, a lower layer is reached
 * unguarded only by tracemalloc's own allocations (its tables, and on
 * 3.8-3.12 the tracebacks it copies outside any allocator hook when an
 * object is made or recycled under a traceback new to it): those are not
 * the program's, and the allocator under the layer runs guarded, or the C
 * library's malloc under CPython's raw allocator would record them. In a
 * MEM or OBJ hook (GIL held), a change of tracemalloc's state is a check
 * point: pymem's top layer goes back on top at once, and the call that
 * noticed is recorded. */
enum layer_call { LAYER_PASSES, LAYER_RECORDS, LAYER_PASSES_GUARDED };
static void resume_after_countdown(void);

static inline enum layer_call layer_call(struct domain_ctx *d)
{
    if (!d->record || !pm_should_record())
        return LAYER_PASSES;
    if (__builtin_expect(rare.s.resume_countdown != 0, 0) && d->domain != PM_DOMAIN_PYRAW &&
        --rare.s.resume_countdown == 0)
        resume_after_countdown();
    int tracing = *tm_tracing;
    if (__builtin_expect(tracing != rare.s.tm_seen, 0) && d->domain != PM_DOMAIN_PYRAW && !finishing) {
        check_layers();
        return LAYER_RECORDS;
    }
    return !tracing || d == atomic_load_explicit(&top[d->slot], memory_order_relaxed) ? LAYER_RECORDS
                                                                                      : LAYER_PASSES_GUARDED;
}

/* `call`, a layer's call of the allocator under it when the layer does not
 * record (`how`), under the guard for tracemalloc's own. */
#define CALL_BELOW(how, call)                                                                      \
    ({                                                                                             \
        bool guarded_ = __builtin_expect((how) == LAYER_PASSES_GUARDED, 0);                        \
        if (guarded_)                                                                              \
            pm_thread.guard = PM_GUARD_PYTHON;                                                     \
        __typeof__(call) result_ = (call);                                                         \
        if (guarded_)                                                                              \
            pm_thread.guard = 0;                                                                   \
        result_;                                                                                   \
    })

/* Bootstrap blocks. Before 3.12, PySys_AddAuditHook called before
 * Py_Initialize takes its entry from plain malloc, but finalisation frees it
 * with PyMem_RawFree, which under the debug hooks (PYTHONMALLOC=debug,
 * -X dev) checks for a header the block never had and aborts. The blocks
 * malloc returned during that call are noted here, and the RAW wrapper hands
 * them back to free() itself. */
#define BOOTSTRAP_MAX 8
static void *bootstrap[BOOTSTRAP_MAX];
static int bootstrap_count;

void pm_pyhooks_note_bootstrap(void *p)
{
    if (bootstrap_count < BOOTSTRAP_MAX)
        bootstrap[bootstrap_count++] = p;
}

static bool take_bootstrap(void *p)
{
    for (int i = 0; i < bootstrap_count; i++) {
        if (bootstrap[i] == p) {
            bootstrap[i] = bootstrap[--bootstrap_count];
            return true;
        }
    }
    return false;
}

/* The hooks below record only with the guard clear (layer_call), and
 * clear it again on the way out. They keep no errno of their own: the
 * allocator under them sets it, and recording leaves it alone (recorder.h). */
static void *py_malloc(void *ctx, size_t size)
{
    struct domain_ctx *d = ctx;
    enum layer_call how = layer_call(d);
    if (how != LAYER_RECORDS) {
        if (pm_thread.recording == PM_IN_PYPROBE)
            pm_thread.recording = PM_PROBE_REACHED;
        return CALL_BELOW(how, d->prev.malloc(d->prev.ctx, size));
    }
    pm_thread.guard = PM_GUARD_PYTHON;
    void *p = d->prev.malloc(d->prev.ctx, size);
    if (p) {
        if (__builtin_expect(watch_on, 0) && d->domain == PM_DOMAIN_PYOBJ && pm_pyframes_watch_dispatching(size))
            pm_thread.watch_block = p; /* the frame watch's own */
        else
            pm_on_alloc(p, size, d->domain);
        count_startup_block(d, &startup_blocks_made);
    }
    pm_thread.last_py_alloc = p;
    pm_thread.guard = 0;
    return p;
}

static void *py_calloc(void *ctx, size_t nelem, size_t elsize)
{
    struct domain_ctx *d = ctx;
    enum layer_call how = layer_call(d);
    if (how != LAYER_RECORDS)
        return CALL_BELOW(how, d->prev.calloc(d->prev.ctx, nelem, elsize));
    pm_thread.guard = PM_GUARD_PYTHON;
    void *p = d->prev.calloc(d->prev.ctx, nelem, elsize);
    size_t total;
    if (p && !__builtin_mul_overflow(nelem, elsize, &total))
        pm_on_alloc(p, total, d->domain);
    if (p)
        count_startup_block(d, &startup_blocks_made);
    pm_thread.last_py_alloc = p;
    pm_thread.guard = 0;
    return p;
}

/* Free first, allocation after (as in interpose.c). A failed realloc leaves
 * the old block live: it is recorded again with size 0, its requested size
 * being unknown here. */
static void *py_realloc(void *ctx, void *ptr, size_t size)
{
    struct domain_ctx *d = ctx;
    enum layer_call how = layer_call(d);
    if (how != LAYER_RECORDS)
        return CALL_BELOW(how, d->prev.realloc(d->prev.ctx, ptr, size));
    pm_thread.guard = PM_GUARD_PYTHON;
    if (ptr)
        pm_on_free(ptr);
    void *p = d->prev.realloc(d->prev.ctx, ptr, size);
    if (p)
        pm_on_alloc(p, size, d->domain);
    else if (ptr)
        pm_on_alloc(ptr, 0, d->domain);
    if (p && !ptr)
        count_startup_block(d, &startup_blocks_made);
    pm_thread.last_py_alloc = p;
    pm_thread.guard = 0;
    return p;
}

static void py_free(void *ctx, void *ptr)
{
    struct domain_ctx *d = ctx;
    if (__builtin_expect(bootstrap_count > 0, 0) && d->domain == PM_DOMAIN_PYRAW && take_bootstrap(ptr)) {
        free(ptr);
        return;
    }
    bool watch_own = __builtin_expect(ptr && ptr == pm_thread.watch_block, 0); /* not recorded */
    if (watch_own)
        pm_thread.watch_block = NULL;
    enum layer_call how = !ptr || watch_own ? LAYER_PASSES : layer_call(d);
    if (how != LAYER_RECORDS) {
        CALL_BELOW(how, (d->prev.free(d->prev.ctx, ptr), 0));
        return;
    }
    pm_thread.guard = PM_GUARD_PYTHON;
    pm_on_free(ptr);
    count_startup_block(d, &startup_blocks_freed);
    d->prev.free(d->prev.ctx, ptr);
    pm_thread.guard = 0;
}

/* Sampled mode's common case, where layer_call records with nothing to
 * do: no rare state, recording on, and tracemalloc not tracing. An
 * allocation that is no sample and the free of a block that was none are
 * then settled with a few loads. Every test here costs sampled mode about
 * half a percent on small objects, so what is fixed when the layer is pushed
 * is decided there (push_layer): these hooks go only on layers that record,
 * with no frame watch (whose own blocks are not counted), and the RAW
 * domain's free has a hook of its own for the bootstrap blocks. */
static inline bool sampled_quiet(void)
{
    return !rare.any && pm_run_on() && !pm_thread.guard && !*tm_tracing;
}

static void *py_malloc_sampled(void *ctx, size_t size)
{
    struct domain_ctx *d = ctx;
    if (!sampled_quiet())
        return py_malloc(ctx, size);
    pm_thread.guard = PM_GUARD_PYTHON;
    void *p = d->prev.malloc(d->prev.ctx, size);
    if (p && !pm_sample_skip_alloc(size))
        pm_record_alloc(p, size, d->domain);
    pm_thread.last_py_alloc = p;
    pm_thread.guard = 0;
    return p;
}

static void py_free_sampled(void *ctx, void *ptr)
{
    struct domain_ctx *d = ctx;
    if (!ptr || !sampled_quiet()) {
        py_free(ctx, ptr);
        return;
    }
    pm_thread.guard = PM_GUARD_PYTHON;
    if (!pm_sample_skip_free(ptr))
        pm_record_free(ptr);
    d->prev.free(d->prev.ctx, ptr);
    pm_thread.guard = 0;
}

static void py_free_sampled_raw(void *ctx, void *ptr)
{
    if (__builtin_expect(bootstrap_count > 0, 0))
        py_free(ctx, ptr);
    else
        py_free_sampled(ctx, ptr);
}

static void snapshot(int kind, const char *label)
{
    if (!pm_run_on() || pm_thread.guard)
        return;
    struct pm_guard g = pm_guard_enter();
    pm_record_snapshot(kind, label);
    pm_writer_heapstats_now();
    pm_guard_leave(&g);
}

static PyObject *mod_snapshot(PyObject *self, PyObject *args)
{
    (void)self;
    const char *label = NULL;
    if (!pm_py.ArgParseTuple(args, "|z:snapshot", &label))
        return NULL;
    char generated[32];
    user_snapshots++;
    if (!label || !*label) {
        snprintf(generated, sizeof generated, "snapshot-%d", user_snapshots);
        label = generated;
    }
    check_layers();
    snapshot(PM_SNAP_USER, label);
    return pm_py.BuildValue("");
}

static PyObject *mod_capture_path(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    if (pm_run_state() == PM_STATE_DORMANT || !*pm_writer_path())
        return pm_py.BuildValue("");
    return pm_py.BuildValue("s", pm_writer_path());
}

static PyObject *mod_recording(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return pm_py.BuildValue("i", pm_run_on());
}

/* Processes forked with os.fork while forks are not followed go on
 * unrecorded (a server's workers): the capture says how many, so that no
 * report of this process is taken for theirs. The count is written at each
 * power of two and at exit (a later META overrides an earlier one), not at
 * every fork: the META a capture keeps is bounded. */
static bool forks_followed;
static uint64_t forks_unrecorded, forks_written;

void pm_pyhooks_forks_followed(bool followed)
{
    forks_followed = followed;
}

static void write_forks_unrecorded(void)
{
    char n[24];
    snprintf(n, sizeof n, "%llu", (unsigned long long)forks_unrecorded);
    forks_written = forks_unrecorded;
    struct pm_guard g = pm_guard_enter();
    pm_writer_meta(PM_META_FORKS_UNRECORDED, n);
    pm_guard_leave(&g);
}

static PyObject *at_exit(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    check_layers();
    if (forks_unrecorded != forks_written)
        write_forks_unrecorded();
    snapshot(PM_SNAP_EXIT, "exit");
    finishing = true;
    pm_recycled_stop();
    pm_framewatch_interpreter_down();
    pm_stacks_enable(false);
    return pm_py.BuildValue("");
}

static PyMethodDef module_methods[] = {
    {"snapshot", mod_snapshot, METH_VARARGS,
     "snapshot(label=None)\n--\n\nMark a snapshot in the capture, with an optional label."},
    {"capture_path", mod_capture_path, METH_NOARGS,
     "capture_path()\n--\n\nPath of the capture this process writes, or None."},
    {"recording", mod_recording, METH_NOARGS,
     "recording()\n--\n\nWhether pymem is recording this process (0 or 1)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef module_def = {
    .m_base = {1, NULL, NULL, 0, NULL},
    .m_name = "pymem",
    .m_doc = "Control of the pymem memory profiler running in this process.",
    .m_size = -1,
    .m_methods = module_methods,
};

static PyObject *module_init(void)
{
    return pm_py.ModuleCreate2(&module_def, PYTHON_API_VERSION);
}

/* os.register_at_fork's after_in_parent, on every Python: counts the
 * children not followed (above), and on 3.12+ restarts the writer. os.fork
 * on Python 3.12+ warns (DeprecationWarning; an exception from os.fork under
 * -W error) when it sees more than one thread in the process, which would
 * count pymem's writer: the writer stops at the "os.fork" audit event, and
 * starts again once the parent has counted. Python 3.12 counts before it
 * runs the after-fork callbacks: the callback restarts the writer. 3.13
 * counts after them, so the callback only arms the restart, which waits
 * until fork_counted(). It is tried at once by a pending call (which the
 * interpreter runs at its next check between instructions, as os.fork
 * returns, or inside a callback registered after pymem's, where it asks to
 * run again, up to RESUME_CALLS times), and after that at each audit event
 * and every RESUME_EVENTS object allocations (a fork from a thread other
 * than the main one, whose pending call runs on the main thread). */
#define RESUME_EVENTS 256
#define RESUME_CALLS 64

static const void *fork_frame; /* compared only: os.fork's caller, alive until os.fork returns */
static pthread_t fork_thread;
static int resume_calls;

static void resume_writer(void)
{
    rare.s.resume_countdown = 0;
    fork_paused = false;
    pm_writer_resume();
}

/* Whether os.fork has counted the threads it warns of, or the count no
 * longer depends on pymem: on the thread that forked, once the frame that
 * called os.fork is the innermost again (inside a later callback its
 * frames are above it; a frame at its address later is another call, made
 * after os.fork returned); on any other thread at once (the process has
 * threads of its own, and os.fork warned whatever pymem does). GIL held. */
static bool fork_counted(void)
{
    return !pthread_equal(pthread_self(), fork_thread) || pm_pyframes_innermost() == fork_frame;
}

static int resume_after_fork(void *unused)
{
    (void)unused;
    if (!rare.s.resume_countdown)
        return 0; /* restarted already, or another fork paused it since */
    if (fork_counted())
        resume_writer();
    else if (++resume_calls < RESUME_CALLS)
        pm_py.AddPendingCall(resume_after_fork, NULL);
    return 0;
}

static void resume_after_countdown(void)
{
    if (fork_counted())
        resume_writer();
    else
        rare.s.resume_countdown = RESUME_EVENTS;
}

static PyObject *after_fork_parent(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    if (!forks_followed && pm_run_on()) {
        forks_unrecorded++;
        if ((forks_unrecorded & (forks_unrecorded - 1)) == 0)
            write_forks_unrecorded();
    }
    if (fork_paused && python_minor == 12) {
        resume_writer();
    } else if (fork_paused) {
        rare.s.resume_countdown = RESUME_EVENTS;
        fork_frame = pm_pyframes_innermost();
        fork_thread = pthread_self();
        resume_calls = 0;
        if (pm_pyapi_resolve_pending())
            pm_py.AddPendingCall(resume_after_fork, NULL);
    }
    return pm_py.BuildValue("");
}

static PyMethodDef at_exit_def = {"_pymem_at_exit", at_exit, METH_NOARGS, NULL};
static PyMethodDef after_fork_def = {"_pymem_after_fork_parent", after_fork_parent, METH_NOARGS, NULL};

/* module.attr(fn), or module.attr(keyword=fn), with `def` as fn. Failures
 * are cleared: pymem then goes without the callback. */
static void register_callback(const char *module, const char *attr, PyMethodDef *def, const char *keyword)
{
    PyObject *mod = pm_py.ImportModule(module);
    if (!mod) {
        pm_py.ErrClear();
        return;
    }
    PyObject *reg = pm_py.GetAttrString(mod, attr);
    PyObject *fn = pm_py.CFunctionNewEx(def, NULL, NULL);
    PyObject *res = NULL;
    if (reg && fn && !keyword) {
        res = pm_py.CallFunctionObjArgs(reg, fn, NULL);
    } else if (reg && fn) {
        PyObject *args = pm_py.TupleNew(0), *kwargs = pm_py.DictNew();
        if (args && kwargs && pm_py.DictSetItemString(kwargs, keyword, fn) == 0)
            res = pm_py.Call(reg, args, kwargs);
        if (args)
            pm_py.DecRef(args);
        if (kwargs)
            pm_py.DecRef(kwargs);
    }
    if (!res)
        pm_py.ErrClear();
    if (res)
        pm_py.DecRef(res);
    if (fn)
        pm_py.DecRef(fn);
    if (reg)
        pm_py.DecRef(reg);
    pm_py.DecRef(mod);
}

/* Puts a new layer of pymem's wrapper on top of domain `i`. */
static void push_layer(int i)
{
    if (layer_count[i] == LAYERS_MAX)
        return;
    struct domain_ctx *d = &layers[i][layer_count[i]++];
    d->domain = pm_domain[i];
    d->slot = i;
    d->record = objects_wanted;
    pm_py.GetAllocator(api_domain[i], &d->prev);
    PyMemAllocatorEx mine = {d, py_malloc, py_calloc, py_realloc, py_free};
    if (pm_sample_mean && d->record && !watch_on) {
        mine.malloc = py_malloc_sampled;
        mine.free = d->domain == PM_DOMAIN_PYRAW ? py_free_sampled_raw : py_free_sampled;
    }
    pm_py.SetAllocator(api_domain[i], &mine);
    atomic_store_explicit(&top[i], d, memory_order_release);
}

static void install_allocators(void)
{
    /* With Python's allocators left alone only RAW is wrapped, for the bootstrap
     * blocks. */
    int count = objects_wanted ? 3 : 1;
    for (int i = 0; i < count; i++)
        push_layer(i);
    allocators_in = true;
}

/* Whether an allocator's context is one of pymem's layers of domain `i`. */
static bool is_layer(int i, const void *ctx)
{
    const struct domain_ctx *d = ctx;
    return d >= &layers[i][0] && d < &layers[i][LAYERS_MAX];
}

/* Whether an allocation through `a` reaches one of pymem's layers. */
static bool reaches_pymem(const PyMemAllocatorEx *a)
{
    struct pm_guard g = pm_guard_enter();
    int saved = pm_thread.recording;
    pm_thread.recording = PM_IN_PYPROBE;
    void *p = a->malloc(a->ctx, 1);
    bool reached = pm_thread.recording == PM_PROBE_REACHED;
    pm_thread.recording = saved;
    if (p)
        a->free(a->ctx, p);
    pm_guard_leave(&g);
    return reached;
}

/* A check point (GIL held, outside any allocator): a domain whose outermost
 * allocator is no longer one of pymem's layers gets a new one on top. If
 * the one in place did not reach pymem at all (replaced rather than
 * wrapped), what was allocated meanwhile was not seen: the capture says so
 * (META "python_lost"), once per domain. Nothing to do while Python's
 * allocators are left alone, once finalisation has begun, or when not
 * recording. */
static void check_layers(void)
{
    if (!objects_wanted || finishing || !pm_run_on())
        return;
    /* Marked in the capture, so that what tracemalloc saw can be compared
     * with what pymem saw since (pymem leaks --since tracemalloc-start). */
    if (*tm_tracing != rare.s.tm_seen) {
        rare.s.tm_seen = (uint8_t)*tm_tracing;
        snapshot(PM_SNAP_USER, rare.s.tm_seen ? "tracemalloc-start" : "tracemalloc-stop");
    }
    for (int i = 0; i < 3; i++) {
        PyMemAllocatorEx cur;
        pm_py.GetAllocator(api_domain[i], &cur);
        if (is_layer(i, cur.ctx))
            continue;
        if (!reaches_pymem(&cur)) {
            static const char *const names[3] = {"pyraw", "pymem", "pyobj"};
            if (!strstr(lost, names[i])) {
                snprintf(lost + strlen(lost), sizeof lost - strlen(lost), "%s%s", *lost ? "," : "", names[i]);
                struct pm_guard g = pm_guard_enter();
                pm_writer_meta(PM_META_PYTHON_LOST, lost);
                pm_warn("CPython's %s allocator was replaced by one that does not reach pymem; "
                        "what it allocated meanwhile was not recorded",
                        names[i]);
                pm_guard_leave(&g);
            }
        }
        push_layer(i);
    }
    pm_recycled_check();
}

/* At the interpreter's first audit event, before tracemalloc can start: the
 * allocator layers and the frame walk. What runs before is the earliest
 * start-up, with no Python frame yet. */
static void install_early(void)
{
    installing = true;
    const char *version = pm_py.GetVersion();
    char short_version[32];
    size_t n = strcspn(version, " ");
    snprintf(short_version, sizeof short_version, "%.*s", (int)n, version);
    int major = 0, minor = 0;
    sscanf(short_version, "%d.%d", &major, &minor);
    memcpy(python_version, short_version, sizeof python_version);
    python_minor = major == 3 ? minor : 0;
    if (python_minor)
        atomic_store(&pm_pyhooks_arena_size, python_minor >= 10 && sizeof(void *) == 8 ? 1u << 20 : 256u << 10);
    pm_writer_meta(PM_META_PYTHON, short_version);
    if (major == 3 && pm_pyframes_init(minor)) {
        frames_on = true;
        pm_stacks_enable(true);
        const int *flag = pm_pyframes_tracemalloc_flag();
        if (flag)
            tm_tracing = flag;
        rare.s.tm_seen = (uint8_t)*tm_tracing;
        recycled_on = objects_wanted && pm_recycled_init(minor);
        watch_on = pm_framewatch_init(minor);
        /* No watch: 3.8, --native on 3.9 to 3.11, --frame-watch off, and
         * sampled mode. Sampled walks are far apart, and rarely find the
         * last one's frames: past the cache's first frames, a walk without
         * it (the frames a stack keeps, read and compared with the last
         * such walk's) costs less than checking and refilling it
         * (bench/workloads/deep_recursion.py, 1,500 frames deep, on 3.11:
         * 1.10x this way, 1.27x with the whole cache). */
        pm_stacks_set_watched(watch_on);
        pm_pyframes_cache_deep(!pm_sample_mean);
        if (recycled_on)
            pm_writer_meta(PM_META_RECYCLED, "reftracer");
    } else {
        pm_warn("Python %s is not supported for call stacks; recording without them", short_version);
    }
    /* Blocks Python's allocator holds before pymem sees its domains: what
     * can be freed without having been recorded (frees of a sampled capture
     * count them; an exact capture reports them as unmatched). */
    ssize_t (*allocated_blocks)(void) = (ssize_t(*)(void))dlsym(RTLD_DEFAULT, "_Py_GetAllocatedBlocks");
    if (allocated_blocks && objects_wanted) {
        char before[24];
        snprintf(before, sizeof before, "%zd", allocated_blocks());
        pm_writer_meta(PM_META_BLOCKS_BEFORE, before);
    } else if (objects_wanted) {
        startup_blocks_made = startup_blocks_freed = 0;
        rare.s.startup_counting = true;
    }
    install_allocators();
    atomic_store(&pm_mmap_recording, 1);
    installing = false;
}

/* The capture ends with the interpreter, and what a later interpreter of
 * the process allocates is only counted (pm_pyhooks_count_after_end). */
static void end_with_interpreter(void)
{
    struct pm_guard g = pm_guard_enter();
    pm_writer_finish(PM_END_EXIT, 0);
    pm_guard_leave(&g);
    pm_pyhooks_finalised = true;
}

/* Start-up has ended (GIL held): the blocks held before the domains were
 * wrapped are those held now, less those recorded since. Without the count
 * the capture says nothing of them (its unmatched frees stay unexplained). */
static void count_blocks_before(void)
{
    rare.s.startup_counting = false;
    PyObject *fn = pm_py.SysGetObject("getallocatedblocks"); /* borrowed */
    PyObject *now = fn ? pm_py.CallFunctionObjArgs(fn, NULL) : NULL;
    Py_ssize_t held = now ? pm_py.LongAsSsize(now) : -1;
    if (now)
        pm_py.DecRef(now);
    if (held < 0) {
        pm_py.ErrClear();
        return;
    }
    int64_t before = (int64_t)held - (int64_t)(startup_blocks_made - startup_blocks_freed);
    if (before < 0)
        return;
    char text[24];
    snprintf(text, sizeof text, "%lld", (long long)before);
    struct pm_guard g = pm_guard_enter();
    pm_writer_meta(PM_META_BLOCKS_BEFORE, text);
    pm_guard_leave(&g);
}

static int audit_hook(const char *event, PyObject *args, void *data);

/* Py_AtExit: the last step of Py_FinalizeEx, after the audit hooks were
 * cleared. What was recorded is written with an END (Python re-raises an
 * unhandled SIGINT right after this), and the audit hook is added again:
 * CPython keeps its hook list across Py_Initialize, so that the next
 * interpreter of an embedding program is recorded in the same capture.
 * Recording goes on in between (C allocations, without Python frames). The
 * hook's entry is the program's block from here on (freed by the next
 * finalisation): recorded as such. */
static void after_finalize(void)
{
    relay = false;
    struct pm_guard g = pm_guard_enter();
    pm_writer_checkpoint(PM_END_EXIT);
    pm_guard_leave(&g);
    if (pm_py.AddAuditHook(audit_hook, NULL) == 0)
        between = true;
    else
        end_with_interpreter();
}

/* A domain at the start of a later interpreter: still pymem's layers (3.8-3.11
 * keep the allocators across Py_Initialize), or allocators set afresh (3.12+
 * keeps them in the runtime state it resets; PYTHONMALLOC=debug sets them
 * again), in which case no layer of the first interpreter is in use. */
static void relayer(int i)
{
    PyMemAllocatorEx cur;
    pm_py.GetAllocator(api_domain[i], &cur);
    if (is_layer(i, cur.ctx))
        return;
    if (!reaches_pymem(&cur))
        layer_count[i] = 0;
    push_layer(i);
}

/* The first audit event of a later interpreter (see after_finalize): the
 * hooks its start reset go back in, and the capture marks where it begins
 * (snapshot "interpreter-N"). */
static void new_lifetime(void)
{
    between = false;
    struct pm_guard g = pm_guard_enter();
    pm_writer_checkpoint_passed();
    pm_guard_leave(&g);
    installing = true;
    lifetimes++;
    finishing = false;
    installed = false;
    if (frames_on)
        pm_stacks_enable(true);
    if (recycled_on)
        pm_recycled_init(python_minor);
    rare.s.tm_seen = (uint8_t)*tm_tracing;
    for (int i = 0; i < (objects_wanted ? 3 : 1); i++)
        relayer(i);
    installing = false;
    char label[32];
    snprintf(label, sizeof label, "interpreter-%d", lifetimes);
    snapshot(PM_SNAP_USER, label);
}

static int audit_hook(const char *event, PyObject *args, void *data)
{
    (void)args;
    (void)data;
    if (installing || !recording_wanted)
        return 0;
    if (between)
        new_lifetime();
    if (!allocators_in) {
        if (!pm_run_on())
            return 0;
        install_early();
    }
    if (!installed) {
        if (!pm_py.IsInitialized())
            return 0;
        installing = true;
        if (rare.s.startup_counting)
            count_blocks_before();
        register_callback("atexit", "register", &at_exit_def, NULL);
        if (!relay)
            relay = pm_py.AtExit(after_finalize) == 0;
        forks_watched = python_minor >= 12;
        register_callback("os", "register_at_fork", &after_fork_def, "after_in_parent");
        /* Only the first interpreter of the process: CPython 3.12+ keeps
         * the instrumentation version of its static code objects (the
         * frozen import machinery) across Py_Initialize, so a later
         * interpreter may run them unmonitored, their returns unseen. */
        if (watch_on && lifetimes == 1)
            pm_framewatch_interpreter_up();
        installed = true;
        installing = false;
    }
    check_layers();
    /* Start-up ends when the program's own code starts: at the first code
     * executed after the interpreter was told what to run (for a script,
     * once it is compiled), or at once for an interactive session. */
    if (!main_seen && main_next && !strcmp(event, "exec")) {
        main_seen = true;
        snapshot(PM_SNAP_MAIN, "main");
        return 0;
    }
    if (forks_watched && event[0] == 'o' && (!strcmp(event, "os.fork") || !strcmp(event, "os.forkpty"))) {
        if (!fork_paused) {
            fork_paused = true;
            pm_writer_pause();
        }
        rare.s.resume_countdown = 0;
        return 0;
    }
    if (rare.s.resume_countdown && fork_counted())
        resume_writer();
    if (event[0] != 'c' || strncmp(event, "cpython.", 8) != 0)
        return 0;
    if (!main_seen && !main_next && strncmp(event + 8, "run_", 4) == 0) {
        main_next = !strcmp(event + 8, "run_file") || !strcmp(event + 8, "run_command") ||
                    !strcmp(event + 8, "run_module");
        if (!main_next) {
            main_seen = true;
            snapshot(PM_SNAP_MAIN, "main");
        }
    } else if (!strcmp(event + 8, "_PySys_ClearAuditHooks")) {
        /* The interpreter is finalised: its thread states go now, and
         * Python frames are no longer walked. The capture is written whole
         * at the end of Py_FinalizeEx (after_finalize), or, without that
         * function, ends now: a program that dies of an unhandled
         * KeyboardInterrupt re-raises SIGINT after finalising and would
         * otherwise leave a capture without its end. */
        finishing = true;
        pm_recycled_stop();
        pm_framewatch_interpreter_down();
        pm_stacks_enable(false);
        if (!relay)
            end_with_interpreter();
    }
    return 0;
}

/* An allocation after the capture ended with the interpreter, while an
 * interpreter is up again: the program started another (an embedding
 * program running Py_Initialize and Py_FinalizeEx more than once) and pymem
 * could not hook it (Py_AtExit's table was full, or the audit hook could not
 * be added again): the capture says how much it missed. */
void pm_pyhooks_count_after_end(void)
{
    if (pm_py.IsInitialized && pm_py.IsInitialized())
        atomic_fetch_add_explicit(&after_end, 1, memory_order_relaxed);
}

uint64_t pm_pyhooks_after_end(void)
{
    return atomic_load(&after_end);
}

void pm_pyhooks_after_fork_child(void)
{
    /* The parent paused its writer for this fork; this process's writer is
     * its own, and must be paused again when it forks in turn. */
    fork_paused = false;
    rare.s.resume_countdown = 0;
    if (!allocators_in)
        return;
    pm_writer_meta(PM_META_PYTHON, python_version);
    if (recycled_on)
        pm_writer_meta(PM_META_RECYCLED, "reftracer");
}

bool pm_pyhooks_present(void)
{
    return dlsym(RTLD_DEFAULT, "PySys_AddAuditHook") != NULL && pm_pyapi_resolve();
}

void pm_pyhooks_register(bool record, bool python_allocators)
{
    if (!pm_py.IsInitialized || pm_py.IsInitialized())
        return; /* too late: libpython was loaded into a running program */
    recording_wanted = record;
    objects_wanted = python_allocators;
    pm_py.AppendInittab("pymem", module_init);
    if (record) {
        pm_thread.recording = PM_IN_BOOTSTRAP;
        pm_py.AddAuditHook(audit_hook, NULL);
        pm_thread.recording = 0;
    }
}
