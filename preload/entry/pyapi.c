/*
 * pyapi: CPython's API found with dlsym (contract in pyapi.h). Runs at load
 * and at the interpreter's start: no Python call.
 */
#define _GNU_SOURCE
#include "entry/pyapi.h"

#include <dlfcn.h>

struct pm_pyapi pm_py;

#define LOOKUP(field, name)                                                                        \
    do {                                                                                           \
        *(void **)&pm_py.field = dlsym(RTLD_DEFAULT, name);                                        \
        if (!pm_py.field)                                                                          \
            return false;                                                                          \
    } while (0)

bool pm_pyapi_resolve(void)
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
    LOOKUP(Call, "PyObject_Call");
    LOOKUP(DictNew, "PyDict_New");
    LOOKUP(DictSetItemString, "PyDict_SetItemString");
    LOOKUP(TupleNew, "PyTuple_New");
    LOOKUP(AtExit, "Py_AtExit");
    LOOKUP(SysGetObject, "PySys_GetObject");
    LOOKUP(LongAsSsize, "PyLong_AsSsize_t");
    return true;
}

bool pm_pyapi_resolve_pending(void)
{
    LOOKUP(AddPendingCall, "Py_AddPendingCall");
    return true;
}

bool pm_pyapi_resolve_watch(void)
{
    if (!pm_pyapi_resolve_pending())
        return false;
    LOOKUP(SetAttrString, "PyObject_SetAttrString");
    LOOKUP(CallFunction, "PyObject_CallFunction");
    LOOKUP(Vectorcall, "PyObject_Vectorcall");
    LOOKUP(LongAsLong, "PyLong_AsLong");
    LOOKUP(LongFromLong, "PyLong_FromLong");
    LOOKUP(DictNext, "PyDict_Next");
    LOOKUP(DictSetItem, "PyDict_SetItem");
    LOOKUP(IncRef, "Py_IncRef");
    LOOKUP(none, "_Py_NoneStruct");
    LOOKUP(dict_type, "PyDict_Type");
    return true;
}
