/*
 * pyapi: the CPython API functions pymem calls, found with dlsym once, and
 * the few API types they take, declared by their stable layouts, so that
 * the library builds without Python headers and loads under any Python
 * 3.8-3.13. Call them only with the GIL held (pyhooks.c, framewatch.c).
 */
#ifndef PM_PYAPI_H
#define PM_PYAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct pyobject PyObject;
typedef ssize_t Py_ssize_t;
typedef PyObject *(*PyCFunction)(PyObject *, PyObject *);

typedef struct {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr);
} PyMemAllocatorEx;

typedef struct {
    const char *ml_name;
    PyCFunction ml_meth;
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
#define METH_FASTCALL 0x0080
#define PYTHON_API_VERSION 1013

struct pm_pyapi {
    /* Every Python 3.8+ has these (pm_pyapi_resolve). */
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
    PyObject *(*Call)(PyObject *, PyObject *, PyObject *);
    PyObject *(*DictNew)(void);
    int (*DictSetItemString)(PyObject *, const char *, PyObject *);
    PyObject *(*TupleNew)(Py_ssize_t);
    void (*DecRef)(PyObject *);
    void (*ErrClear)(void);
    int (*AtExit)(void (*)(void));
    PyObject *(*SysGetObject)(const char *);
    Py_ssize_t (*LongAsSsize)(PyObject *);
    /* The frame watch's (pm_pyapi_resolve_watch, AddPendingCall also
     * pm_pyapi_resolve_pending): NULL where missing. */
    int (*AddPendingCall)(int (*)(void *), void *);
    int (*SetAttrString)(PyObject *, const char *, PyObject *);
    PyObject *(*CallFunction)(PyObject *, const char *, ...);
    PyObject *(*Vectorcall)(PyObject *, PyObject *const *, size_t, PyObject *);
    long (*LongAsLong)(PyObject *);
    PyObject *(*LongFromLong)(long);
    int (*DictNext)(PyObject *, Py_ssize_t *, PyObject **, PyObject **);
    int (*DictSetItem)(PyObject *, PyObject *, PyObject *);
    void (*IncRef)(PyObject *);
    PyObject *none;
    void *dict_type;
};

extern struct pm_pyapi pm_py;

/* Finds the functions every Python has: false if one is missing (no
 * libpython in the process, or not one pymem knows). */
bool pm_pyapi_resolve(void);
/* Finds the frame watch's: false if one is missing (sys.monitoring's
 * watch needs them all; the frame evaluator's, only the pending call). */
bool pm_pyapi_resolve_watch(void);
bool pm_pyapi_resolve_pending(void);

#endif
