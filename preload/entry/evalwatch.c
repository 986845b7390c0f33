/*
 * evalwatch: the frame watch on Python 3.9 to 3.11 (framewatch.c switches
 * it, and has 3.12+'s): a frame evaluator (PEP 523) in front of CPython's
 * own sees every Python frame return or yield, and reports it to the stack
 * walk (pyframes.c, "frame watch"), which then checks only the frames above
 * the lowest that can have run since the thread's last allocation.
 *
 * Its cost is CPython's: with an evaluator set, 3.11 calls each Python
 * function through it instead of inlining the call (about 15% on a program
 * made of calls, measured with one that only forwards; before 3.11 every
 * call already goes through the evaluator), which is why the watch runs
 * only while the walks it spares pay for it.
 *
 * It never borrows the slot: pymem's is set only while the interpreter has
 * CPython's own, and CPython's put back only while it still has pymem's. A
 * program that sets its own (a debugger, a JIT) replaces pymem's, whose
 * counts the walks no longer trust from then on, and pymem's is not set
 * again. C stack: on 3.11 every Python call it runs nests a C call (before
 * 3.11 each does already; pymem's adds a frame); once a thread uses more
 * than a quarter of its stack (a deep recursion, a small thread stack),
 * CPython's is put back for good, so that calls inline again and need no
 * more C stack than without pymem.
 *
 * All with the GIL held. The evaluator allocates nothing, takes no lock and
 * runs no Python code of its own.
 */
#define _GNU_SOURCE
#include "entry/evalwatch.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/thread.h"
#include "stacks/pyframes.h"
#include "stacks/stacks.h"

typedef struct pyobject PyObject;
typedef PyObject *(*evaluator_fn)(void *tstate, void *frame, int throwflag);

/* The share of a thread's stack the nested calls may reach: measured on
 * 3.11, each Python call it runs takes about 400 bytes of C stack, so a
 * quarter of 8 MiB holds 5,000 (the default recursion limit is 1,000) and
 * one of a 256 KiB thread stack 160. Where the stack is unknown, this much
 * below the thread's first evaluated frame. */
#define STACK_SHARE 4
#define STACK_UNKNOWN (64 << 10)

static evaluator_fn cpython_eval; /* _PyEval_EvalFrameDefault */
static evaluator_fn (*get_evaluator)(void *interp);
static void (*set_evaluator)(void *interp, evaluator_fn fn);
static void *(*thread_state)(void);
static void *interp;  /* the interpreter pymem's evaluator was set in */
static bool ours;     /* set there by pymem, not replaced by pymem since */
static bool retired;  /* never set again */

static PyObject *evaluate(void *tstate, void *frame, int throwflag);

/* pymem set its evaluator, and the program has set its own in its place
 * since. */
static bool replaced(void)
{
    return ours && get_evaluator(interp) != evaluate;
}

/* CPython's evaluator back, where pymem's still is the interpreter's;
 * where the program replaced it, pymem's is never set again. */
static void put_back(void)
{
    if (replaced())
        retired = true;
    else if (ours)
        set_evaluator(interp, cpython_eval);
    ours = false;
}

static void retire(void)
{
    retired = true;
    pm_pyframes_watch_stop();
    put_back();
}

/* The lowest address of the calling thread's stack its nested calls may
 * reach (its first call here: pthread_getattr_np allocates, unrecorded). */
static const char *stack_floor(void)
{
    const char *floor = NULL;
    pthread_attr_t attr;
    struct pm_guard g = pm_guard_enter();
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *lo;
        size_t size;
        if (pthread_attr_getstack(&attr, &lo, &size) == 0)
            floor = (const char *)lo + size - size / STACK_SHARE;
        pthread_attr_destroy(&attr);
    }
    pm_guard_leave(&g);
    return floor ? floor : (const char *)__builtin_frame_address(0) - STACK_UNKNOWN;
}

static PyObject *evaluate(void *tstate, void *frame, int throwflag)
{
    struct pm_framecache *c = pm_stacks_framecache();
    if (!c)
        return cpython_eval(tstate, frame, throwflag);
    if (__builtin_expect(!c->stack_floor, 0))
        c->stack_floor = stack_floor();
    if (__builtin_expect((const char *)__builtin_frame_address(0) < c->stack_floor, 0)) {
        retire();
        return cpython_eval(tstate, frame, throwflag);
    }
    const void *was = c->evaluated, *was_under = c->evaluated_under;
    c->evaluated = frame;
    c->evaluated_under = was;
    PyObject *result = cpython_eval(tstate, frame, throwflag);
    /* the thread's cache again: a fork in the frame gives the child its own */
    c = pm_stacks_framecache();
    if (c) {
        c->evaluated = was;
        c->evaluated_under = was_under;
        pm_pyframes_frame_left(c, tstate, frame, was);
    }
    return result;
}

bool pm_evalwatch_init(void)
{
    *(void **)&cpython_eval = dlsym(RTLD_DEFAULT, "_PyEval_EvalFrameDefault");
    *(void **)&get_evaluator = dlsym(RTLD_DEFAULT, "_PyInterpreterState_GetEvalFrameFunc");
    *(void **)&set_evaluator = dlsym(RTLD_DEFAULT, "_PyInterpreterState_SetEvalFrameFunc");
    *(void **)&thread_state = dlsym(RTLD_DEFAULT, "PyThreadState_Get");
    return cpython_eval && get_evaluator && set_evaluator && thread_state && !pm_stacks_native();
}

bool pm_evalwatch_start(void)
{
    if (replaced())
        put_back();
    if (retired)
        return false;
    void *here = pm_pyframes_interp_of(thread_state());
    evaluator_fn now = get_evaluator(here);
    if ((interp && here != interp) || (now != cpython_eval && now != evaluate))
        return false; /* another interpreter, or the program's own evaluator */
    interp = here;
    set_evaluator(here, evaluate);
    ours = true;
    return pm_pyframes_watch_start_evaluator((const void *)evaluate);
}

void pm_evalwatch_pause(void)
{
    if (!pm_pyframes_watch_on())
        put_back();
}

void pm_evalwatch_end(void)
{
    retire();
}
