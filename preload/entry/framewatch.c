/*
 * framewatch: counts the pops of Python frames through sys.monitoring
 * (3.12+; on 3.9 to 3.11, switches evalwatch.c's frame evaluator instead),
 * so that a stack walk checks only the frames that can have run since the
 * thread's last allocation instead of its whole chain
 * (pyframes.c, "frame watch"). A thread 150 frames deep otherwise checks 150
 * cached frames per allocation; with the watch, the few above the lowest
 * return since.
 *
 * Off until a thread's walks are measured to check many frames
 * (PYMEM_FRAME_WATCH: "auto", the default; "1" from the end of start-up, for
 * good; "0" never), then started in the process's first interpreter from a
 * pending call (the walk runs inside an allocator, where no Python code may
 * run); stopped again when a thread's callbacks are measured to cost more
 * than the frames they spare (a deep program that makes many calls between
 * two allocations), and started again only after twice as many requests as
 * the last time. It takes a sys.monitoring tool id no convention assigns
 * (4, else 3) only if free, registers one C callback for PY_RETURN, PY_YIELD
 * and PY_UNWIND, shows the id free to the program, and gives it back for
 * good as soon as the program names it to sys.monitoring (use_tool_id,
 * set_events...), which then behaves as if pymem had never held it: the
 * functions that name ids are pymem's wrappers from before the program's
 * first line, so that the program holds no other. The
 * callback does a few loads and stores, raises nothing and allocates
 * nothing. Should the program unregister it all the same (through one of
 * sys.monitoring's own functions, reached past the wrappers), its reference
 * count drops, and the walks check every frame.
 *
 * Order, so that no walk trusts counts that miss a pop: the events are set
 * before the counts are trusted (pm_pyframes_watch_start), and the counts
 * are no longer trusted (pm_pyframes_watch_stop) before the events are
 * cleared.
 */
#define _GNU_SOURCE
#include "entry/framewatch.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/sampler.h"
#include "entry/evalwatch.h"
#include "entry/pyapi.h"
#include "pymem/env.h"
#include "stacks/pyframes.h"
#include "stacks/stacks.h"

enum mode { WATCH_OFF, WATCH_AUTO, WATCH_ALWAYS };
static enum mode mode = WATCH_OFF;
static atomic_bool requested;
static bool ended;                    /* the first interpreter is finalising */
static bool given_back;               /* the program named pymem's id: never again */
static bool evaluator;                /* 3.9-3.11: evalwatch.c counts */
static int tool = -1;                 /* the tool id held, -1: none */
static PyObject *callback;            /* the callback, one reference of pymem's own */
/* Stops by measurement, and the requests to start ignored since the last:
 * after the n-th stop, 2^n - 1 are (up to 2^10 - 1: a program whose deep
 * phases never pay for the watch stops trying). */
static unsigned stops, ignored;

static PyObject *frame_leaving(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    (void)args;
    (void)nargs;
    pm_stacks_frame_leaving();
    return pm_py.none; /* immortal from 3.12 */
}

/* A METH_FASTCALL function: the two fields of its PyMethodDef. */
#define FASTCALL(fn) (PyCFunction)(void (*)(void))(fn), METH_FASTCALL

static PyMethodDef leaving_def = {"_pymem_frame_leaving", FASTCALL(frame_leaving), NULL};

static PyObject *monitoring_module(void)
{
    return pm_py.SysGetObject("monitoring"); /* borrowed */
}

/* Py_XDECREF. */
static void drop(PyObject *o)
{
    if (o)
        pm_py.DecRef(o);
}

/* The result of a call that only succeeds or fails: errors are cleared. */
static bool call_ok(PyObject *res)
{
    if (!res) {
        pm_py.ErrClear();
        return false;
    }
    pm_py.DecRef(res);
    return true;
}

static const char *const event_names[] = {"PY_RETURN", "PY_YIELD", "PY_UNWIND"};
#define EVENTS (int)(sizeof event_names / sizeof event_names[0])

/* sys.monitoring's own function `name` (not pymem's wrapper in front of it),
 * a new reference. */
static PyObject *monitoring_function(PyObject *mon, const char *name);

static bool set_events(PyObject *mon, long mask)
{
    PyObject *fn = monitoring_function(mon, "set_events");
    bool ok = fn && call_ok(pm_py.CallFunction(fn, "il", tool, mask));
    drop(fn);
    pm_py.ErrClear();
    return ok;
}

/* Registers `fn` (pymem's callback, or None) as the tool's callback for
 * each of the three events. Returns their mask, 0 if one failed. */
static long register_callbacks(PyObject *mon, PyObject *fn)
{
    PyObject *events = pm_py.GetAttrString(mon, "events");
    PyObject *reg = monitoring_function(mon, "register_callback");
    long mask = 0;
    bool ok = fn && events && reg;
    for (int i = 0; ok && i < EVENTS; i++) {
        PyObject *bit = pm_py.GetAttrString(events, event_names[i]);
        Py_ssize_t v = bit ? pm_py.LongAsSsize(bit) : -1;
        drop(bit);
        ok = v > 0 && call_ok(pm_py.CallFunction(reg, "inO", tool, v, fn));
        mask |= v;
    }
    drop(events);
    drop(reg);
    pm_py.ErrClear();
    return ok ? mask : 0;
}

/* Stops counting and gives the tool id back as the program would find it
 * had pymem never held it: no events, no callbacks, no name. */
static void release_tool(void)
{
    pm_pyframes_watch_stop();
    PyObject *mon = monitoring_module();
    if (tool < 0 || !mon)
        return;
    set_events(mon, 0);
    register_callbacks(mon, pm_py.none);
    PyObject *free_id = monitoring_function(mon, "free_tool_id");
    if (free_id)
        call_ok(pm_py.CallFunction(free_id, "i", tool));
    drop(free_id);
    pm_py.ErrClear();
    tool = -1;
}

/* sys.monitoring's functions that name tool ids, in front of which pymem
 * puts its own: its id looks free to those that show ids (get_tool,
 * get_events, _all_events), and is given back, for good, before any other
 * names it (use_tool_id, set_events, set_local_events, register_callback,
 * free_tool_id, clear_tool_id): what they do or raise is then what they
 * would without pymem. A program that checks that no tool is in use
 * (CPython's own test_monitoring) sees none. */
enum {
    WRAP_GET_TOOL,
    WRAP_GET_EVENTS,
    WRAP_ALL_EVENTS,
    WRAP_USE_TOOL_ID, /* from here on, the functions that take the id back */
    WRAP_SET_EVENTS,
    WRAP_SET_LOCAL_EVENTS,
    WRAP_REGISTER_CALLBACK,
    WRAP_FREE_TOOL_ID,
    WRAP_CLEAR_TOOL_ID, /* 3.14+ */
    WRAPS
};
static PyObject *original[WRAPS];

static bool asks_for_ours(PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || tool < 0)
        return false;
    Py_ssize_t asked = pm_py.LongAsSsize(args[0]);
    if (asked == -1)
        pm_py.ErrClear(); /* not a number: the original raises its own error */
    return asked == tool;
}

static PyObject *forward(int which, PyObject *const *args, Py_ssize_t nargs)
{
    return pm_py.Vectorcall(original[which], args, (size_t)nargs, NULL);
}

static PyObject *get_tool(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    return asks_for_ours(args, nargs) ? pm_py.none : forward(WRAP_GET_TOOL, args, nargs);
}

static PyObject *get_events(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    return asks_for_ours(args, nargs) ? pm_py.LongFromLong(0) : forward(WRAP_GET_EVENTS, args, nargs);
}

/* {event name: tools} without pymem's tool. */
static PyObject *all_events(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    PyObject *all = forward(WRAP_ALL_EVENTS, args, nargs);
    bool is_dict = all && ((void *const *)(const void *)all)[1] == pm_py.dict_type;
    PyObject *shown = is_dict && tool >= 0 ? pm_py.DictNew() : NULL;
    if (!shown)
        return all;
    Py_ssize_t pos = 0;
    PyObject *name, *tools;
    while (pm_py.DictNext(all, &pos, &name, &tools)) {
        long bits = pm_py.LongAsLong(tools) & ~(1L << tool);
        PyObject *v = bits ? pm_py.LongFromLong(bits) : NULL;
        if (bits && (!v || pm_py.DictSetItem(shown, name, v) != 0)) {
            drop(v);
            drop(shown);
            return all; /* out of memory: as it is */
        }
        drop(v);
    }
    pm_py.ErrClear();
    drop(all);
    return shown;
}

static PyObject *take_back(int which, PyObject *const *args, Py_ssize_t nargs)
{
    if (asks_for_ours(args, nargs)) {
        release_tool();
        given_back = true;
    }
    return forward(which, args, nargs);
}

#define TAKE_BACK(fn, which)                                                                       \
    static PyObject *fn(PyObject *self, PyObject *const *args, Py_ssize_t nargs)                   \
    {                                                                                              \
        (void)self;                                                                                \
        return take_back(which, args, nargs);                                                      \
    }
TAKE_BACK(use_tool_id, WRAP_USE_TOOL_ID)
TAKE_BACK(set_events_wrapper, WRAP_SET_EVENTS)
TAKE_BACK(set_local_events, WRAP_SET_LOCAL_EVENTS)
TAKE_BACK(register_callback, WRAP_REGISTER_CALLBACK)
TAKE_BACK(free_tool_id, WRAP_FREE_TOOL_ID)
TAKE_BACK(clear_tool_id, WRAP_CLEAR_TOOL_ID)
#undef TAKE_BACK

/* Each with its original's signature (inspect.signature, help), and a
 * doc that names pymem. */
#define WRAP_DOC(name, params, what) name "(" params ")\n--\n\nsys.monitoring." name " (pymem's id " what ")"
static PyMethodDef wrap_defs[WRAPS] = {
    [WRAP_GET_TOOL] = {"get_tool", FASTCALL(get_tool), WRAP_DOC("get_tool", "tool_id, /", "shown free")},
    [WRAP_GET_EVENTS] = {"get_events", FASTCALL(get_events), WRAP_DOC("get_events", "tool_id, /", "shown free")},
    [WRAP_ALL_EVENTS] = {"_all_events", FASTCALL(all_events), WRAP_DOC("_all_events", "", "left out")},
    [WRAP_USE_TOOL_ID] = {"use_tool_id", FASTCALL(use_tool_id),
                          WRAP_DOC("use_tool_id", "tool_id, name, /", "given back first")},
    [WRAP_SET_EVENTS] = {"set_events", FASTCALL(set_events_wrapper),
                         WRAP_DOC("set_events", "tool_id, event_set, /", "given back first")},
    [WRAP_SET_LOCAL_EVENTS] = {"set_local_events", FASTCALL(set_local_events),
                               WRAP_DOC("set_local_events", "tool_id, code, event_set, /", "given back first")},
    [WRAP_REGISTER_CALLBACK] = {"register_callback", FASTCALL(register_callback),
                                WRAP_DOC("register_callback", "tool_id, event, func, /", "given back first")},
    [WRAP_FREE_TOOL_ID] = {"free_tool_id", FASTCALL(free_tool_id),
                           WRAP_DOC("free_tool_id", "tool_id, /", "given back first")},
    [WRAP_CLEAR_TOOL_ID] = {"clear_tool_id", FASTCALL(clear_tool_id),
                            WRAP_DOC("clear_tool_id", "tool_id, /", "given back first")},
};
#undef WRAP_DOC

static PyObject *monitoring_function(PyObject *mon, const char *name)
{
    for (int i = 0; i < WRAPS; i++) {
        if (original[i] && !strcmp(wrap_defs[i].ml_name, name)) {
            pm_py.IncRef(original[i]);
            return original[i];
        }
    }
    return pm_py.GetAttrString(mon, name);
}

/* Puts pymem's functions in front of sys.monitoring's, once (those it has:
 * clear_tool_id is 3.14's). */
static void wrap_monitoring(PyObject *mon)
{
    for (int i = 0; i < WRAPS; i++) {
        if (original[i])
            continue;
        PyObject *orig = pm_py.GetAttrString(mon, wrap_defs[i].ml_name);
        PyObject *wrapper = orig ? pm_py.CFunctionNewEx(&wrap_defs[i], NULL, NULL) : NULL;
        if (wrapper && pm_py.SetAttrString(mon, wrap_defs[i].ml_name, wrapper) == 0) {
            original[i] = orig; /* kept for the process's life */
            orig = NULL;
        }
        drop(wrapper);
        drop(orig);
    }
    pm_py.ErrClear();
}

static bool take_tool(PyObject *mon)
{
    static const int candidates[] = {4, 3};
    PyObject *get_tool = monitoring_function(mon, "get_tool");
    PyObject *use = monitoring_function(mon, "use_tool_id");
    bool taken = false;
    for (size_t i = 0; get_tool && use && !taken && i < sizeof candidates / sizeof candidates[0]; i++) {
        PyObject *holder = pm_py.CallFunction(get_tool, "i", candidates[i]);
        bool free_id = holder == pm_py.none;
        drop(holder);
        if (free_id && call_ok(pm_py.CallFunction(use, "is", candidates[i], "pymem"))) {
            tool = candidates[i];
            taken = true;
        }
    }
    drop(get_tool);
    drop(use);
    pm_py.ErrClear();
    return taken;
}

/* Registers the callback (made once: its reference count tells whether it
 * is still registered) for the three events, and sets them. */
static bool register_events(PyObject *mon)
{
    if (!callback)
        callback = pm_py.CFunctionNewEx(&leaving_def, NULL, NULL);
    long mask = register_callbacks(mon, callback);
    return mask && set_events(mon, mask);
}

/* A pending call (the main thread between two instructions, GIL held):
 * takes a tool id the first time, then sets the events and trusts the
 * counts. */
static int start(void *unused)
{
    (void)unused;
    atomic_store(&requested, false);
    if (evaluator) {
        if (!ended && !pm_pyframes_watch_on())
            pm_evalwatch_start();
        return 0;
    }
    PyObject *mon = ended || given_back ? NULL : monitoring_module();
    if (!mon || pm_pyframes_watch_on())
        return 0;
    if (tool < 0) {
        if (!take_tool(mon))
            return 0; /* every candidate is the program's: no watch */
        wrap_monitoring(mon); /* what start-up could not wrap (memory short): before the id is relied on */
    }
    if (!register_events(mon)) {
        release_tool();
        return 0;
    }
    pm_pyframes_watch_start(tool, (const Py_ssize_t *)(const void *)callback);
    return 0;
}

/* A pending call: clears the events of a watch stopped by measurement,
 * unless it was started again since. */
static int pause_events(void *unused)
{
    (void)unused;
    if (evaluator) {
        if (!ended)
            pm_evalwatch_pause();
        return 0;
    }
    PyObject *mon = ended ? NULL : monitoring_module();
    if (tool >= 0 && mon && !pm_pyframes_watch_on())
        set_events(mon, 0);
    return 0;
}

/* From a walk, GIL held: a thread's walks check many frames. */
static void wanted(void)
{
    unsigned wait = (1u << (stops < 10 ? stops : 10)) - 1;
    if (ignored < wait) {
        ignored++;
        return;
    }
    if (!atomic_exchange(&requested, true)) {
        ignored = 0;
        if (pm_py.AddPendingCall(start, NULL) != 0)
            atomic_store(&requested, false);
    }
}

/* From a walk, GIL held: a thread's callbacks cost more than they spare.
 * The counts are no longer trusted from here on; the events are cleared at
 * the next pending call (should none be free, they stay set, at a cost). */
static void unwanted(void)
{
    pm_pyframes_watch_stop();
    stops++;
    pm_py.AddPendingCall(pause_events, NULL);
}

bool pm_framewatch_init(int minor)
{
    const char *env = getenv(PM_ENV_FRAME_WATCH);
    mode = !env || !strcmp(env, "auto") ? WATCH_AUTO : strcmp(env, "0") ? WATCH_ALWAYS : WATCH_OFF;
    /* Sampled, a walk comes once per so many bytes, thousands of calls
     * apart: what the watch costs a call (a callback, or on 3.11 a call no
     * longer inlined) could never pay for the frames it spares those few
     * walks. It starts only when asked for ("1"). */
    if (mode == WATCH_AUTO && pm_sample_mean)
        mode = WATCH_OFF;
    if (minor < 9 || mode == WATCH_OFF)
        return false;
    evaluator = minor <= 11;
    if (evaluator ? !pm_pyapi_resolve_pending() || !pm_evalwatch_init() : !pm_pyapi_resolve_watch()) {
        mode = WATCH_OFF;
        return false;
    }
    if (mode == WATCH_AUTO)
        pm_pyframes_watch_offer(wanted, unwanted);
    return true;
}

/* sys.monitoring's functions are wrapped now, before the program's first
 * line: a program that kept one of its own from before the watch started
 * would be refused pymem's id by it (ValueError, "already in use"). */
void pm_framewatch_interpreter_up(void)
{
    PyObject *mon = evaluator ? NULL : monitoring_module();
    if (mon)
        wrap_monitoring(mon);
    if (mode == WATCH_ALWAYS)
        start(NULL);
}

void pm_framewatch_interpreter_down(void)
{
    ended = true;
    pm_pyframes_watch_offer(NULL, NULL);
    pm_pyframes_watch_stop();
    if (evaluator)
        pm_evalwatch_end();
}
