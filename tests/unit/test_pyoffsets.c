/* Unit test: the frame and code object offsets pyframes.c tables for each
 * Python minor version equal the ones in that version's own headers. Built
 * once per Python whose headers are on the machine (see tests.mk). */
#define Py_BUILD_CORE 1
#include <Python.h>
#if PY_VERSION_HEX >= 0x030B0000
#include <internal/pycore_frame.h>
#include <internal/pycore_runtime.h>
#endif
#if PY_VERSION_HEX >= 0x03090000 && PY_VERSION_HEX < 0x030C0000
#include <internal/pycore_interp.h>
#endif
#if PY_VERSION_HEX < 0x030C0000
#include <internal/pycore_pymem.h>
#endif
#if PY_VERSION_HEX >= 0x030C0000
#include <opcode.h>
#endif
#if PY_VERSION_HEX < 0x030B0000
#include <frameobject.h>
#endif
#include <stddef.h>
#include <stdio.h>

#include "../../preload/stacks/pyframes.c"

static int failures;

#define CHECK(field, expected)                                                                     \
    do {                                                                                           \
        if ((long)l->field != (long)(expected)) {                                                  \
            printf("3.%d: %s is %ld in pyframes.c, %ld in the headers\n", PY_MINOR_VERSION, #field,  \
                   (long)l->field, (long)(expected));                                              \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(what, ours, theirs)                                                               \
    do {                                                                                           \
        if ((long)(ours) != (long)(theirs)) {                                                      \
            printf("3.%d: %s is %ld in pyframes, %ld in the headers\n", PY_MINOR_VERSION, what,     \
                   (long)(ours), (long)(theirs));                                                  \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

int main(void)
{
    const struct layout *l = NULL;
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        if (layouts[i].minor == PY_MINOR_VERSION)
            l = &layouts[i];
    if (!l) {
        printf("3.%d: no layout in pyframes.c\n", PY_MINOR_VERSION);
        return 1;
    }
    CHECK(tstate_thread_id, offsetof(PyThreadState, thread_id));
#if PY_VERSION_HEX >= 0x030D0000
    CHECK(tstate_frame, offsetof(PyThreadState, current_frame));
    CHECK(frame_code, offsetof(_PyInterpreterFrame, f_executable));
    CHECK(frame_back, offsetof(_PyInterpreterFrame, previous));
    CHECK(frame_instr, offsetof(_PyInterpreterFrame, instr_ptr));
    CHECK(frame_owner, offsetof(_PyInterpreterFrame, owner));
#elif PY_VERSION_HEX >= 0x030B0000
    CHECK(tstate_frame, offsetof(PyThreadState, cframe));
    CHECK(cframe_current, offsetof(_PyCFrame, current_frame));
    CHECK(frame_code, offsetof(_PyInterpreterFrame, f_code));
    CHECK(frame_back, offsetof(_PyInterpreterFrame, previous));
    CHECK(frame_instr, offsetof(_PyInterpreterFrame, prev_instr));
#if PY_VERSION_HEX < 0x030C0000
    CHECK(frame_is_entry, offsetof(_PyInterpreterFrame, is_entry));
    CHECK(tstate_tracing, offsetof(PyThreadState, tracing));
    CHECK(interp_eval_frame, offsetof(PyInterpreterState, eval_frame));
    _Static_assert(offsetof(PyThreadState, interp) == TSTATE_INTERP, "thread state's interpreter");
#endif
    CHECK(frame_owner, offsetof(_PyInterpreterFrame, owner));
#else
    CHECK(tstate_frame, offsetof(PyThreadState, frame));
    CHECK(frame_back, offsetof(PyFrameObject, f_back));
    CHECK(frame_code, offsetof(PyFrameObject, f_code));
    CHECK(frame_instr, offsetof(PyFrameObject, f_lasti));
#if PY_VERSION_HEX >= 0x03090000
    CHECK(tstate_tracing, offsetof(PyThreadState, tracing));
    CHECK(interp_eval_frame, offsetof(PyInterpreterState, eval_frame));
    _Static_assert(offsetof(PyThreadState, interp) == TSTATE_INTERP, "thread state's interpreter");
#endif
#endif
#if PY_VERSION_HEX >= 0x030C0000
    CHECK(tracemalloc_tracing, offsetof(_PyRuntimeState, tracemalloc.config.tracing));
    CHECK(tstate_tracing, offsetof(PyThreadState, tracing));
    CHECK(tstate_context_ver, offsetof(PyThreadState, context_ver));
    CHECK(interp_monitors, offsetof(PyInterpreterState, monitors));
#if PY_VERSION_HEX >= 0x030D0000
    CHECK(long_one_digit, sizeof(PyLongObject)); /* PyLong_FromLong: _PyLong_FromMedium */
#else
    CHECK(long_one_digit, offsetof(PyLongObject, long_value.ob_digit) + sizeof(digit)); /* PyLong_FromSsize_t */
#endif
    CHECK(op_return_value, INSTRUMENTED_RETURN_VALUE);
    CHECK(op_return_const, INSTRUMENTED_RETURN_CONST);
    CHECK(op_yield_value, INSTRUMENTED_YIELD_VALUE);
    _Static_assert(PY_MONITORING_EVENT_PY_RETURN == EVENT_PY_RETURN && PY_MONITORING_EVENT_PY_YIELD == EVENT_PY_YIELD &&
                       PY_MONITORING_EVENT_PY_UNWIND == EVENT_PY_UNWIND && EVENT_PY_UNWIND < _PY_MONITORING_UNGROUPED_EVENTS,
                   "sys.monitoring's event numbers");
    _Static_assert(sizeof(((PyInterpreterState *)0)->monitors.tools[0]) == 1, "one byte of tools per event");
    _Static_assert(sizeof(((PyThreadState *)0)->context_ver) == 8, "context_ver is 64 bits");
    _Static_assert(offsetof(PyThreadState, interp) == TSTATE_INTERP, "thread state's interpreter");
#else
    CHECK(tracemalloc_tracing, offsetof(struct _PyTraceMalloc_Config, tracing));
#endif
    CHECK(co_filename, offsetof(PyCodeObject, co_filename));
#if PY_VERSION_HEX >= 0x030B0000
    CHECK(co_name, offsetof(PyCodeObject, co_qualname));
    CHECK(co_code_adaptive, offsetof(PyCodeObject, co_code_adaptive));
    CHECK(co_firsttraceable, offsetof(PyCodeObject, _co_firsttraceable));
    _Static_assert(PM_OWNER_GENERATOR == FRAME_OWNED_BY_GENERATOR, "generator-owned frames");
#if PY_VERSION_HEX >= 0x030C0000
    _Static_assert(PM_OWNER_CSTACK == FRAME_OWNED_BY_CSTACK, "frames owned by the C stack");
#endif
#else
    CHECK(co_name, offsetof(PyCodeObject, co_name));
#endif
    CHECK(co_firstlineno, offsetof(PyCodeObject, co_firstlineno));
#if PY_VERSION_HEX >= 0x030A0000
    CHECK(co_linetable, offsetof(PyCodeObject, co_linetable));
    /* pm_linecursor's range goes to _PyCode_CheckLineNumber as a PyCodeAddressRange */
#define RANGE_AT(field) (offsetof(struct pm_linecursor, at.range.field) - offsetof(struct pm_linecursor, at.range))
    CHECK_EQ("sizeof range", sizeof(((struct pm_linecursor *)0)->at.range), sizeof(PyCodeAddressRange));
    CHECK_EQ("range.ar_end", RANGE_AT(ar_end), offsetof(PyCodeAddressRange, ar_end));
    CHECK_EQ("range.ar_line", RANGE_AT(ar_line), offsetof(PyCodeAddressRange, ar_line));
    CHECK_EQ("range.computed_line", RANGE_AT(opaque.computed_line), offsetof(PyCodeAddressRange, opaque.computed_line));
    CHECK_EQ("range.lo_next", RANGE_AT(opaque.lo_next), offsetof(PyCodeAddressRange, opaque.lo_next));
    CHECK_EQ("range.limit", RANGE_AT(opaque.limit), offsetof(PyCodeAddressRange, opaque.limit));
#else
    CHECK(co_linetable, offsetof(PyCodeObject, co_lnotab));
#endif
    CHECK_EQ("BYTES_SIZE", BYTES_SIZE, offsetof(PyVarObject, ob_size));
    CHECK_EQ("BYTES_DATA", BYTES_DATA, offsetof(PyBytesObject, ob_sval));
    CHECK(str_ascii_size, sizeof(PyASCIIObject));
    CHECK(str_compact_size, sizeof(PyCompactUnicodeObject));
    printf("%d passed, %d failed: Python 3.%d frame layout\n", failures ? 0 : 1, failures ? 1 : 0, PY_MINOR_VERSION);
    return failures != 0;
}
