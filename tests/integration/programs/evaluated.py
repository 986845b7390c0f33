"""The frame watch's hard cases on 3.9 to 3.11, where pymem's frame
evaluator (PEP 523) counts the pops: a walk does not read the frames below
the lowest one that can have run since the last allocation, so every way a
frame leaves must be seen. Each case re-enters the same frames at the same
addresses from two outer lines in turn; only an outer frame, far below the
allocation, tells the two apart:

- returns, exceptions unwinding, yield from, settrace (reentry.py),
- returns while the program's own evaluator replaces pymem's (3.11:
  _testinternalcapi's, which records the names of the frames it runs;
  before, CPython's own, set back through ctypes),
- returns after the program puts CPython's own back,
- with the argument "deep", a thread with a 256 KiB stack 1,000 frames
  deep and a recursion 20,000 frames deep (the recursion limit raised),
  which pymem's evaluator must not take to the end of the C stack.

With the argument "warm", first 1,500 allocations 100 frames deep: what
switches the watch on by itself (PYMEM_FRAME_WATCH=auto), from inside
frames that began before it, whose returns it cannot see; one of them
returns unseen, and its caller calls it again from another line; then the
caller returns unseen, and the module calls another function at its
address from another line.

Prints the blocks held, whether the program's evaluator ran its frames
("cpython's" before 3.11, where the program sets CPython's own), and
whether an evaluator other than CPython's was the interpreter's before the
program's ("on": pymem's; "off" after the deep cases, which make pymem put
CPython's back for good) and after it ("off": pymem does not set its own
again once the program set its own)."""
import ctypes
import sys
import threading

import reentry
from reentry import by_return, by_unwind, by_yield, down, hold, with_settrace

try:
    from _testinternalcapi import set_eval_frame_default, set_eval_frame_record
except ImportError:  # before 3.11
    set_eval_frame_record = None

sys.setrecursionlimit(30000)
api = ctypes.pythonapi
api.PyInterpreterState_Get.restype = ctypes.c_void_p
api._PyInterpreterState_GetEvalFrameFunc.restype = ctypes.c_void_p
api._PyInterpreterState_GetEvalFrameFunc.argtypes = [ctypes.c_void_p]
api._PyInterpreterState_SetEvalFrameFunc.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
cpython_evaluator = ctypes.cast(api._PyEval_EvalFrameDefault, ctypes.c_void_p).value


def evaluator():
    """Whether the interpreter's frame evaluator is one other than CPython's."""
    now = api._PyInterpreterState_GetEvalFrameFunc(api.PyInterpreterState_Get())
    return "off" if now == cpython_evaluator else "on"


def with_own_evaluator():
    names = []
    if set_eval_frame_record:
        set_eval_frame_record(names)
    else:
        api._PyInterpreterState_SetEvalFrameFunc(api.PyInterpreterState_Get(), cpython_evaluator)
    by_return(4444, 10)  # MARK:OWN
    if set_eval_frame_record:
        set_eval_frame_default()
    return names.count("down") >= 10 * 2 * 121


def very_deep(n):
    if n == 0:
        hold(bytes(6666))  # MARK:DEEP_LEAF
        return
    very_deep(n - 1)  # MARK:DEEP_DOWN


def spin(n):
    return bytes(8) if n == 0 else spin(n - 1)


def in_small_thread():
    threading.stack_size(256 << 10)
    t = threading.Thread(target=down, args=(1000, 7777))  # MARK:THREAD
    t.start()
    t.join()
    threading.stack_size(0)


def unit(i, size):
    if i == 0:
        for _ in range(1500):
            spin(100)
    hold(bytes(size))  # MARK:WARM_LEAF


def warmed(size):
    for i in range(10):
        unit(i, size)  # MARK:WARM_A
        unit(i, size)  # MARK:WARM_B


def after_warm(size):
    hold(bytes(size))  # MARK:AFTER_LEAF


hold(None)
if "warm" in sys.argv[1:]:
    warmed(8888)  # MARK:WARM_CALL
    after_warm(5151)  # MARK:AFTER_CALL
by_return(1111, 20)  # MARK:PLAIN
if "deep" in sys.argv[1:]:  # 3.11+: before, Python calls recurse in C, with or without pymem
    in_small_thread()  # MARK:THREAD_CALL
    very_deep(20000)  # MARK:DEEP_CALL
    very_deep(20000)  # MARK:DEEP_CALL2
by_unwind()  # MARK:UNWIND_CALL
by_yield()  # MARK:YIELD_CALL
with_settrace()  # MARK:SETTRACE_CALL
before = evaluator()
ran = with_own_evaluator()  # MARK:OWN_CALL
by_return(9999, 10)  # MARK:RESTORED
after = evaluator()
print(reentry.count, "own ran" if ran else "cpython's", before, after)
