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

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "pymem/env.h"
#include "stacks/pyframes.h"
#include "stacks/stacks.h"

typedef struct pyobject PyObject;
typedef ssize_t Py_ssize_t;

typedef struct {
    const char *ml_name;
    void *ml_meth;
    int ml_flags;
    const char *ml_doc;
} PyMethodDef;

#define METH_FASTCALL 0x0080

static struct {
    int (*AddPendingCall)(int (*)(void *), void *);
    PyObject *(*SysGetObject)(const char *);
    PyObject *(*GetAttrString)(PyObject *, const char *);
    int (*SetAttrString)(PyObject *, const char *, PyObject *);
    PyObject *(*CallFunction)(PyObject *, const char *, ...);
    PyObject *(*CFunctionNewEx)(PyMethodDef *, PyObject *, PyObject *);
    PyObject *(*Vectorcall)(PyObject *, PyObject *const *, size_t, PyObject *);
    Py_ssize_t (*LongAsSsize)(PyObject *);
    long (*LongAsLong)(PyObject *);
    PyObject *(*LongFromLong)(long);
    PyObject *(*DictNew)(void);
    int (*DictNext)(PyObject *, Py_ssize_t *, PyObject **, PyObject **);
    int (*DictSetItem)(PyObject *, PyObject *, PyObject *);
    void (*DecRef)(PyObject *);
    void (*ErrClear)(void);
    PyObject *none;
    void *dict_type;
} api;

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
    return api.none; /* immortal from 3.12 */
}

static PyMethodDef leaving_def = {"_pymem_frame_leaving", (void *)frame_leaving, METH_FASTCALL, NULL};

static PyObject *monitoring_module(void)
{
    return api.SysGetObject("monitoring"); /* borrowed */
}

/* Py_XDECREF. */
static void drop(PyObject *o)
{
    if (o)
        api.DecRef(o);
}

/* The result of a call that only succeeds or fails: errors are cleared. */
static bool call_ok(PyObject *res)
{
    if (!res) {
        api.ErrClear();
        return false;
    }
    api.DecRef(res);
    return true;
}

/* Stops counting and gives the tool id back. */
static void release_tool(void)
{
    pm_pyframes_watch_stop();
    PyObject *mon = monitoring_module();
    if (tool < 0 || !mon)
        return;
    PyObject *set_events = api.GetAttrString(mon, "set_events");
    PyObject *free_id = api.GetAttrString(mon, "free_tool_id");
    if (set_events)
        call_ok(api.CallFunction(set_events, "ii", tool, 0));
    if (free_id)
        call_ok(api.CallFunction(free_id, "i", tool));
    drop(set_events);
    drop(free_id);
    api.ErrClear();
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
    Py_ssize_t asked = api.LongAsSsize(args[0]);
    if (asked == -1)
        api.ErrClear(); /* not a number: the original raises its own error */
    return asked == tool;
}

static PyObject *forward(int which, PyObject *const *args, Py_ssize_t nargs)
{
    return api.Vectorcall(original[which], args, (size_t)nargs, NULL);
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
    return asks_for_ours(args, nargs) ? api.none : forward(WRAP_GET_TOOL, args, nargs);
}

static PyObject *get_events(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    return asks_for_ours(args, nargs) ? api.LongFromLong(0) : forward(WRAP_GET_EVENTS, args, nargs);
}

/* {event name: tools} without pymem's tool. */
static PyObject *all_events(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    PyObject *all = forward(WRAP_ALL_EVENTS, args, nargs);
    bool is_dict = all && ((void *const *)(const void *)all)[1] == api.dict_type;
    PyObject *shown = is_dict && tool >= 0 ? api.DictNew() : NULL;
    if (!shown)
        return all;
    Py_ssize_t pos = 0;
    PyObject *name, *tools;
    while (api.DictNext(all, &pos, &name, &tools)) {
        long bits = api.LongAsLong(tools) & ~(1L << tool);
        PyObject *v = bits ? api.LongFromLong(bits) : NULL;
        if (bits && (!v || api.DictSetItem(shown, name, v) != 0)) {
            drop(v);
            drop(shown);
            return all; /* out of memory: as it is */
        }
        drop(v);
    }
    api.ErrClear();
    drop(all);
    return shown;
}

static PyMethodDef wrap_defs[WRAPS] = {
    {"use_tool_id", (void *)use_tool_id, METH_FASTCALL, "sys.monitoring.use_tool_id (pymem's id given back first)"},
    {"get_tool", (void *)get_tool, METH_FASTCALL, "sys.monitoring.get_tool (pymem's id shown free)"},
    {"get_events", (void *)get_events, METH_FASTCALL, "sys.monitoring.get_events (pymem's id shown free)"},
    {"_all_events", (void *)all_events, METH_FASTCALL, "sys.monitoring._all_events (without pymem's id)"},
};

/* Puts pymem's functions in front of sys.monitoring's, once. */
static void wrap_monitoring(PyObject *mon)
{
    for (int i = 0; i < WRAPS; i++) {
        if (original[i])
            continue;
        PyObject *orig = api.GetAttrString(mon, wrap_defs[i].ml_name);
        PyObject *wrapper = orig ? api.CFunctionNewEx(&wrap_defs[i], NULL, NULL) : NULL;
        if (wrapper && api.SetAttrString(mon, wrap_defs[i].ml_name, wrapper) == 0) {
            original[i] = orig; /* kept for the process's life */
            orig = NULL;
        }
        drop(wrapper);
        drop(orig);
    }
    api.ErrClear();
}

static bool take_tool(PyObject *mon)
{
    static const int candidates[] = {4, 3};
    PyObject *get_tool = api.GetAttrString(mon, "get_tool");
    PyObject *use = api.GetAttrString(mon, "use_tool_id");
    bool taken = false;
    for (size_t i = 0; get_tool && use && !taken && i < sizeof candidates / sizeof candidates[0]; i++) {
        PyObject *holder = api.CallFunction(get_tool, "i", candidates[i]);
        bool free_id = holder == api.none;
        drop(holder);
        if (free_id && call_ok(api.CallFunction(use, "is", candidates[i], "pymem"))) {
            tool = candidates[i];
            taken = true;
        }
    }
    drop(get_tool);
    drop(use);
    api.ErrClear();
    return taken;
}

static bool register_events(PyObject *mon)
{
    PyObject *events = api.GetAttrString(mon, "events");
    PyObject *reg = api.GetAttrString(mon, "register_callback");
    PyObject *set_events = api.GetAttrString(mon, "set_events");
    PyObject *fn = api.CFunctionNewEx(&leaving_def, NULL, NULL);
    static const char *const names[] = {"PY_RETURN", "PY_YIELD", "PY_UNWIND"};
    long mask = 0;
    bool ok = events && reg && set_events && fn;
    for (size_t i = 0; ok && i < sizeof names / sizeof names[0]; i++) {
        PyObject *bit = api.GetAttrString(events, names[i]);
        Py_ssize_t v = bit ? api.LongAsSsize(bit) : -1;
        drop(bit);
        ok = v > 0 && call_ok(api.CallFunction(reg, "inO", tool, v, fn));
        mask |= v;
    }
    ok = ok && call_ok(api.CallFunction(set_events, "il", tool, mask));
    if (ok && !callback) {
        callback = fn; /* its reference count tells whether it is still registered */
        fn = NULL;
    }
    drop(events);
    drop(reg);
    drop(set_events);
    drop(fn);
    api.ErrClear();
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
    if (!atomic_exchange(&requested, true) && api.AddPendingCall(start, NULL) != 0)
        atomic_store(&requested, false);
}

bool pm_framewatch_init(int minor)
{
    const char *env = getenv(PM_ENV_FRAME_WATCH);
    mode = !env || !strcmp(env, "auto") ? WATCH_AUTO : strcmp(env, "0") ? WATCH_ALWAYS : WATCH_OFF;
    if (minor < 12 || mode == WATCH_OFF)
        return false;
#define LOOKUP(field, name) *(void **)&api.field = dlsym(RTLD_DEFAULT, name)
    LOOKUP(AddPendingCall, "Py_AddPendingCall");
    LOOKUP(SysGetObject, "PySys_GetObject");
    LOOKUP(GetAttrString, "PyObject_GetAttrString");
    LOOKUP(SetAttrString, "PyObject_SetAttrString");
    LOOKUP(CallFunction, "PyObject_CallFunction");
    LOOKUP(CFunctionNewEx, "PyCFunction_NewEx");
    LOOKUP(Vectorcall, "PyObject_Vectorcall");
    LOOKUP(LongAsSsize, "PyLong_AsSsize_t");
    LOOKUP(LongAsLong, "PyLong_AsLong");
    LOOKUP(LongFromLong, "PyLong_FromLong");
    LOOKUP(DictNew, "PyDict_New");
    LOOKUP(DictNext, "PyDict_Next");
    LOOKUP(DictSetItem, "PyDict_SetItem");
    LOOKUP(DecRef, "Py_DecRef");
    LOOKUP(ErrClear, "PyErr_Clear");
    LOOKUP(none, "_Py_NoneStruct");
    LOOKUP(dict_type, "PyDict_Type");
#undef LOOKUP
    void **fields = (void **)&api;
    for (size_t i = 0; i < sizeof api / sizeof(void *); i++)
        if (!fields[i]) {
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
