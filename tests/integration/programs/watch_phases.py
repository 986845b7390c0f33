"""The frame watch switched by measurement (PYMEM_FRAME_WATCH=auto, 3.9+):
on while deep allocations pay for it, off while many calls between two
allocations cost more than it spares, on again when deep allocations come
back. Each phase keeps blocks at a leaf 100 frames deep entered from two
outer lines in turn, across the switches.

Prints, after each phase, whether pymem's events were set (read through
sys.monitoring's own get_events, behind pymem's wrapper; on 3.11, whether
its frame evaluator was), then the blocks held."""
import gc
import sys

sys.setrecursionlimit(10000)
keep = [None] * 1000  # made whole now: a list growing later would add a block at some line
count = 0


def hold(obj):
    global count
    keep[count] = obj
    count += 1


def add(a, b):
    return (a + b) & 0xFF


def leaf(calls):
    """Many allocations at the leaf; `calls` calls between two of them."""
    s = 0
    for i in range(600):
        for _ in range(calls):
            s = add(s, 1)
        scratch = [i, s]  # freed at once
        del scratch
    hold(bytes(1111 + calls))  # MARK:LEAF
    return s


def down(n, calls):
    return leaf(calls) if n == 0 else down(n - 1, calls)  # MARK:DOWN


def phase(calls, rounds):
    for _ in range(rounds):
        down(100, calls)  # MARK:A
        down(100, calls)  # MARK:B


def events():
    if sys.version_info < (3, 12):
        return evaluator()
    for o in gc.get_objects():
        if getattr(o, "__name__", None) == "get_events" and getattr(o, "__self__", None) is sys.monitoring:
            return "on" if o(4) else "off"
    return "?"


def evaluator():
    """3.11: whether the interpreter runs frames through an evaluator other
    than CPython's own (PEP 523): pymem's, here."""
    import ctypes
    api = ctypes.pythonapi
    api.PyInterpreterState_Get.restype = ctypes.c_void_p
    api._PyInterpreterState_GetEvalFrameFunc.restype = ctypes.c_void_p
    api._PyInterpreterState_GetEvalFrameFunc.argtypes = [ctypes.c_void_p]
    now = api._PyInterpreterState_GetEvalFrameFunc(api.PyInterpreterState_Get())
    return "off" if now == ctypes.cast(api._PyEval_EvalFrameDefault, ctypes.c_void_p).value else "on"


states = []
phase(0, 20)  # MARK:DEEP1
states.append(events())
phase(60, 20)  # MARK:CALLS
states.append(events())
phase(0, 60)  # MARK:DEEP2
states.append(events())
print(count, " ".join(states))
