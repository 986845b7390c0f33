/*
 * framewatch: counts the pops of Python frames through sys.monitoring
 * (3.12+), so that a stack walk checks only the frames that can have run
 * since the thread's last allocation instead of its whole chain
 * (pyframes.c, "frame watch"). A thread 150 frames deep otherwise checks 150
 * cached frames per allocation; with the watch, the few above the lowest
 * return since.
 *
 * Off until a thread's walks are measured to check many frames
 * (PYMEM_FRAME_WATCH: "auto", the default; "1" from the end of start-up; "0"
 * never), then started once, in the process's first interpreter, from a
 * pending call (the walk runs inside an allocator, where no Python code may
 * run). It takes a sys.monitoring tool id no convention assigns (4, else 3)
 * only if free, registers one C callback for PY_RETURN, PY_YIELD and
 * PY_UNWIND, shows the id free to the program, and gives it back when the
 * program asks sys.monitoring for it. The callback does a few loads and
 * stores, raises nothing and allocates nothing. Should the program
 * unregister it all the same (register_callback or clear_tool_id on pymem's
 * id), its reference count drops, and the walks check every frame.
 */
#define _GNU_SOURCE
#include "entry/framewatch.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "entry/pyapi.h"
#include "pymem/env.h"
#include "stacks/pyframes.h"
#include "stacks/stacks.h"

enum mode { WATCH_OFF, WATCH_AUTO, WATCH_ALWAYS };
static enum mode mode = WATCH_OFF;
static atomic_bool requested;
static bool ended;                    /* the first interpreter is finalising */
static int tool = -1;                 /* the tool id held, -1: none */
static PyObject *callback;            /* the callback, one reference of pymem's own */

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

/* Stops counting and gives the tool id back. */
static void release_tool(void)
{
    pm_pyframes_watch_stop();
    PyObject *mon = monitoring_module();
    if (tool < 0 || !mon)
        return;
    PyObject *set_events = pm_py.GetAttrString(mon, "set_events");
    PyObject *free_id = pm_py.GetAttrString(mon, "free_tool_id");
    if (set_events)
        call_ok(pm_py.CallFunction(set_events, "ii", tool, 0));
    if (free_id)
        call_ok(pm_py.CallFunction(free_id, "i", tool));
    drop(set_events);
    drop(free_id);
    pm_py.ErrClear();
    tool = -1;
}

/* sys.monitoring's functions that show tool ids, in front of which pymem
 * puts its own: its id looks free to the program (get_tool, get_events,
 * _all_events), and is free as soon as the program asks for it
 * (use_tool_id). A program that checks that no tool is in use (CPython's
 * own test_monitoring) sees none. */
enum { WRAP_USE_TOOL_ID, WRAP_GET_TOOL, WRAP_GET_EVENTS, WRAP_ALL_EVENTS, WRAPS };
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

static PyObject *use_tool_id(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (asks_for_ours(args, nargs))
        release_tool();
    return forward(WRAP_USE_TOOL_ID, args, nargs);
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

static PyMethodDef wrap_defs[WRAPS] = {
    {"use_tool_id", FASTCALL(use_tool_id),
     "sys.monitoring.use_tool_id (pymem's id given back first)"},
    {"get_tool", FASTCALL(get_tool),
     "sys.monitoring.get_tool (pymem's id shown free)"},
    {"get_events", FASTCALL(get_events),
     "sys.monitoring.get_events (pymem's id shown free)"},
    {"_all_events", FASTCALL(all_events),
     "sys.monitoring._all_events (without pymem's id)"},
};

/* Puts pymem's functions in front of sys.monitoring's, once. */
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
    PyObject *get_tool = pm_py.GetAttrString(mon, "get_tool");
    PyObject *use = pm_py.GetAttrString(mon, "use_tool_id");
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

static bool register_events(PyObject *mon)
{
    PyObject *events = pm_py.GetAttrString(mon, "events");
    PyObject *reg = pm_py.GetAttrString(mon, "register_callback");
    PyObject *set_events = pm_py.GetAttrString(mon, "set_events");
    PyObject *fn = pm_py.CFunctionNewEx(&leaving_def, NULL, NULL);
    static const char *const names[] = {"PY_RETURN", "PY_YIELD", "PY_UNWIND"};
    long mask = 0;
    bool ok = events && reg && set_events && fn;
    for (size_t i = 0; ok && i < sizeof names / sizeof names[0]; i++) {
        PyObject *bit = pm_py.GetAttrString(events, names[i]);
        Py_ssize_t v = bit ? pm_py.LongAsSsize(bit) : -1;
        drop(bit);
        ok = v > 0 && call_ok(pm_py.CallFunction(reg, "inO", tool, v, fn));
        mask |= v;
    }
    ok = ok && call_ok(pm_py.CallFunction(set_events, "il", tool, mask));
    if (ok && !callback) {
        callback = fn; /* its reference count tells whether it is still registered */
        fn = NULL;
    }
    drop(events);
    drop(reg);
    drop(set_events);
    drop(fn);
    pm_py.ErrClear();
    return ok;
}

/* A pending call: the main thread between two instructions, GIL held. */
static int start(void *unused)
{
    (void)unused;
    PyObject *mon = ended ? NULL : monitoring_module();
    if (!mon || tool >= 0)
        return 0;
    if (!take_tool(mon))
        return 0; /* every candidate is the program's: no watch */
    wrap_monitoring(mon);
    if (!register_events(mon)) {
        release_tool();
        return 0;
    }
    pm_pyframes_watch_start((const Py_ssize_t *)(const void *)callback);
    return 0;
}

static void wanted(void)
{
    if (!atomic_exchange(&requested, true) && pm_py.AddPendingCall(start, NULL) != 0)
        atomic_store(&requested, false);
}

bool pm_framewatch_init(int minor)
{
    const char *env = getenv(PM_ENV_FRAME_WATCH);
    mode = !env || !strcmp(env, "auto") ? WATCH_AUTO : strcmp(env, "0") ? WATCH_ALWAYS : WATCH_OFF;
    if (minor < 12 || mode == WATCH_OFF)
        return false;
    if (!pm_pyapi_resolve_watch()) {
        mode = WATCH_OFF;
        return false;
    }
    if (mode == WATCH_AUTO)
        pm_pyframes_watch_offer(wanted);
    return true;
}

void pm_framewatch_interpreter_up(void)
{
    if (mode == WATCH_ALWAYS)
        start(NULL);
}

void pm_framewatch_interpreter_down(void)
{
    ended = true;
    pm_pyframes_watch_offer(NULL);
    pm_pyframes_watch_stop();
}
