/*
 * pyhooks: CPython entry points (contract in pyhooks.h). The few API types
 * used are declared here by their stable layouts, so the library builds
 * without Python headers and loads under any Python 3.8-3.13.
 */
#define _GNU_SOURCE
#include "pyhooks.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "pyframes.h"
#include "pymem/format.h"
#include "recorder.h"
#include "stacks.h"
#include "thread.h"
#include "writer.h"

typedef struct pyobject PyObject;
typedef ssize_t Py_ssize_t;

typedef struct {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr);
} PyMemAllocatorEx;

typedef struct {
    const char *ml_name;
    PyObject *(*ml_meth)(PyObject *, PyObject *);
    int ml_flags;
    const char *ml_doc;
} PyMethodDef;

typedef struct {
    Py_ssize_t ob_refcnt;
    void *ob_type;
    PyObject *(*m_init)(void);
    Py_ssize_t m_index;
    PyObject *m_copy;
} PyModuleDef_Base;

typedef struct {
    PyModuleDef_Base m_base;
    const char *m_name;
    const char *m_doc;
    Py_ssize_t m_size;
    PyMethodDef *m_methods;
    void *m_slots, *m_traverse, *m_clear, *m_free;
} PyModuleDef;

#define METH_VARARGS 0x0001
#define METH_NOARGS 0x0004
#define PYTHON_API_VERSION 1013
enum { PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ };

static struct {
    int (*IsInitialized)(void);
    const char *(*GetVersion)(void);
    void (*GetAllocator)(int, PyMemAllocatorEx *);
    void (*SetAllocator)(int, PyMemAllocatorEx *);
    int (*AddAuditHook)(int (*)(const char *, PyObject *, void *), void *);
    int (*AppendInittab)(const char *, PyObject *(*)(void));
    PyObject *(*ModuleCreate2)(PyModuleDef *, int);
    int (*ArgParseTuple)(PyObject *, const char *, ...);
    PyObject *(*BuildValue)(const char *, ...);
    PyObject *(*ImportModule)(const char *);
    PyObject *(*GetAttrString)(PyObject *, const char *);
    PyObject *(*CFunctionNewEx)(PyMethodDef *, PyObject *, PyObject *);
    PyObject *(*CallFunctionObjArgs)(PyObject *, ...);
    void (*DecRef)(PyObject *);
    void (*ErrClear)(void);
} api;

static bool installed, installing, main_seen, recording_wanted, objects_wanted;
static int user_snapshots;

/* `record` is false for the RAW wrapper when Python's allocators are left
 * alone: it then only hands the bootstrap blocks back to free(), and passes
 * everything else on unguarded, so that malloc records it (malloc domain). */
struct domain_ctx {
    PyMemAllocatorEx prev;
    int domain;
    bool record;
};
static struct domain_ctx domains[3];

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

static void *py_malloc(void *ctx, size_t size)
{
    struct domain_ctx *d = ctx;
    if (!d->record || !pm_should_record())
        return d->prev.malloc(d->prev.ctx, size);
    pm_thread.guard = 1;
    void *p = d->prev.malloc(d->prev.ctx, size);
    if (p)
        pm_on_alloc(p, size, d->domain);
    pm_thread.guard = 0;
    return p;
}

static void *py_calloc(void *ctx, size_t nelem, size_t elsize)
{
    struct domain_ctx *d = ctx;
    if (!d->record || !pm_should_record())
        return d->prev.calloc(d->prev.ctx, nelem, elsize);
    pm_thread.guard = 1;
    void *p = d->prev.calloc(d->prev.ctx, nelem, elsize);
    size_t total;
    if (p && !__builtin_mul_overflow(nelem, elsize, &total))
        pm_on_alloc(p, total, d->domain);
    pm_thread.guard = 0;
    return p;
}

/* Free first, allocation after (as in interpose.c). A failed realloc leaves
 * the old block live: it is recorded again with size 0, its requested size
 * being unknown here. */
static void *py_realloc(void *ctx, void *ptr, size_t size)
{
    struct domain_ctx *d = ctx;
    if (!d->record || !pm_should_record())
        return d->prev.realloc(d->prev.ctx, ptr, size);
    pm_thread.guard = 1;
    if (ptr)
        pm_on_free(ptr);
    void *p = d->prev.realloc(d->prev.ctx, ptr, size);
    if (p)
        pm_on_alloc(p, size, d->domain);
    else if (ptr)
        pm_on_alloc(ptr, 0, d->domain);
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
    if (!ptr || !d->record || !pm_should_record()) {
        d->prev.free(d->prev.ctx, ptr);
        return;
    }
    pm_thread.guard = 1;
    pm_on_free(ptr);
    d->prev.free(d->prev.ctx, ptr);
    pm_thread.guard = 0;
}

static void snapshot(int kind, const char *label)
{
    if (!pm_recorder_on() || pm_thread.guard)
        return;
    pm_thread.guard = 1;
    pm_record_snapshot(kind, label);
    pm_thread.guard = 0;
}

static PyObject *mod_snapshot(PyObject *self, PyObject *args)
{
    (void)self;
    const char *label = NULL;
    if (!api.ArgParseTuple(args, "|z:snapshot", &label))
        return NULL;
    char generated[32];
    user_snapshots++;
    if (!label || !*label) {
        snprintf(generated, sizeof generated, "snapshot-%d", user_snapshots);
        label = generated;
    }
    snapshot(PM_SNAP_USER, label);
    return api.BuildValue("");
}

static PyObject *mod_capture_path(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    if (pm_state == PM_STATE_DORMANT || !*pm_writer_path())
        return api.BuildValue("");
    return api.BuildValue("s", pm_writer_path());
}

static PyObject *mod_recording(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return api.BuildValue("i", pm_recorder_on());
}

static PyObject *at_exit(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    snapshot(PM_SNAP_EXIT, "exit");
    pm_stacks_enable(false);
    return api.BuildValue("");
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
    return api.ModuleCreate2(&module_def, PYTHON_API_VERSION);
}

static PyMethodDef at_exit_def = {"_pymem_at_exit", at_exit, METH_NOARGS, NULL};

static void register_at_exit(void)
{
    PyObject *mod = api.ImportModule("atexit");
    if (!mod) {
        api.ErrClear();
        return;
    }
    PyObject *reg = api.GetAttrString(mod, "register");
    PyObject *fn = api.CFunctionNewEx(&at_exit_def, NULL, NULL);
    PyObject *res = reg && fn ? api.CallFunctionObjArgs(reg, fn, NULL) : NULL;
    if (!res)
        api.ErrClear();
    if (res)
        api.DecRef(res);
    if (fn)
        api.DecRef(fn);
    if (reg)
        api.DecRef(reg);
    api.DecRef(mod);
}

static void install_allocators(void)
{
    static const int which[3] = {PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};
    static const int pm_domain[3] = {PM_DOMAIN_PYRAW, PM_DOMAIN_PYMEM, PM_DOMAIN_PYOBJ};
    /* With Python's allocators left alone only RAW is wrapped, for the bootstrap
     * blocks. */
    int count = objects_wanted ? 3 : 1;
    for (int i = 0; i < count; i++) {
        domains[i].domain = pm_domain[i];
        domains[i].record = objects_wanted;
        api.GetAllocator(which[i], &domains[i].prev);
        PyMemAllocatorEx mine = {&domains[i], py_malloc, py_calloc, py_realloc, py_free};
        api.SetAllocator(which[i], &mine);
    }
}

static void install(void)
{
    installing = true;
    const char *version = api.GetVersion();
    char short_version[32];
    size_t n = strcspn(version, " ");
    snprintf(short_version, sizeof short_version, "%.*s", (int)n, version);
    int major = 0, minor = 0;
    sscanf(short_version, "%d.%d", &major, &minor);
    pm_writer_meta("python", short_version);
    if (major == 3 && pm_pyframes_init(minor)) {
        pm_stacks_enable(true);
    } else {
        fprintf(stderr, "pymem: Python %s is not supported for call stacks; recording without them\n",
                short_version);
    }
    install_allocators();
    atomic_store(&pm_mmap_recording, 1);
    register_at_exit();
    installed = true;
    installing = false;
}

/* Installs everything at the first event after initialisation. Returns
 * non-zero while it cannot yet. */
static int audit_install(const char *event)
{
    (void)event;
    if (installed || installing || !recording_wanted)
        return 0;
    if (!api.IsInitialized() || !pm_recorder_on())
        return 1;
    install();
    return 0;
}

static int audit_hook(const char *event, PyObject *args, void *data)
{
    (void)args;
    (void)data;
    if (installing || !recording_wanted || event[0] != 'c' || strncmp(event, "cpython.", 8) != 0)
        return installed ? 0 : audit_install(event);
    if (!installed && audit_install(event))
        return 0;
    if (!main_seen && strncmp(event + 8, "run_", 4) == 0) {
        main_seen = true;
        snapshot(PM_SNAP_MAIN, "main");
    } else if (!strcmp(event + 8, "_PySys_ClearAuditHooks")) {
        /* The interpreter is finalised: end the capture now. A program that
         * dies of an unhandled KeyboardInterrupt re-raises SIGINT after this
         * point and would otherwise leave a capture without its end. */
        pm_thread.guard = 1;
        pm_writer_finish(PM_END_EXIT, 0);
        pm_thread.guard = 0;
    }
    return 0;
}

#define LOOKUP(field, name)                                                                        \
    do {                                                                                           \
        *(void **)&api.field = dlsym(RTLD_DEFAULT, name);                                          \
        if (!api.field)                                                                            \
            return false;                                                                          \
    } while (0)

static bool resolve_api(void)
{
    LOOKUP(IsInitialized, "Py_IsInitialized");
    LOOKUP(GetVersion, "Py_GetVersion");
    LOOKUP(GetAllocator, "PyMem_GetAllocator");
    LOOKUP(SetAllocator, "PyMem_SetAllocator");
    LOOKUP(AddAuditHook, "PySys_AddAuditHook");
    LOOKUP(AppendInittab, "PyImport_AppendInittab");
    LOOKUP(ModuleCreate2, "PyModule_Create2");
    LOOKUP(ArgParseTuple, "PyArg_ParseTuple");
    LOOKUP(BuildValue, "Py_BuildValue");
    LOOKUP(ImportModule, "PyImport_ImportModule");
    LOOKUP(GetAttrString, "PyObject_GetAttrString");
    LOOKUP(CFunctionNewEx, "PyCFunction_NewEx");
    LOOKUP(CallFunctionObjArgs, "PyObject_CallFunctionObjArgs");
    LOOKUP(DecRef, "Py_DecRef");
    LOOKUP(ErrClear, "PyErr_Clear");
    return true;
}

bool pm_pyhooks_present(void)
{
    return dlsym(RTLD_DEFAULT, "PySys_AddAuditHook") != NULL && resolve_api();
}

void pm_pyhooks_register(bool record, bool python_allocators)
{
    if (!api.IsInitialized || api.IsInitialized())
        return; /* too late: libpython was loaded into a running program */
    recording_wanted = record;
    objects_wanted = python_allocators;
    api.AppendInittab("pymem", module_init);
    if (record) {
        pm_thread.recording = PM_IN_BOOTSTRAP;
        api.AddAuditHook(audit_hook, NULL);
        pm_thread.recording = 0;
    }
}
