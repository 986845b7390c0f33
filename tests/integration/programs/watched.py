"""The frame watch's hard cases (3.12+): with it, a walk does not read the
frames below the lowest one that can have run since the last allocation, so
every way a frame leaves must be counted. Each case re-enters the same frames
at the same addresses from two outer lines in turn; only an outer frame, far
below the allocation, tells the two apart:

- returns, exceptions unwinding, yield from, settrace (reentry.py),
- returns while another sys.monitoring tool's callback allocates after
  pymem's has run (CPython calls the tools before it pops the frame),
- returns after the program clears pymem's events without asking (through
  sys.monitoring's own set_events, reached past pymem's wrappers),
- after it unregisters pymem's callback the same way,
- after the program names pymem's id to set_events without taking it
  (CPython's ValueError, as if pymem had never held it),
- and after the program takes pymem's tool id for itself.

Prints the blocks held, set_events' error, and whether pymem's watch took a tool id by the end
of the first cases ("pymem", as sys.monitoring's own get_tool says: pymem's
wrappers in front of it show the id free). With the argument "warm",
first 1,500 allocations 100 frames deep: what switches the watch on by
itself (PYMEM_FRAME_WATCH=auto)."""
import gc
import sys

import reentry
from reentry import by_return, by_unwind, by_yield, hold, scratch, with_settrace

sys.setrecursionlimit(10000)


def on_return(code, offset, value):
    scratch.append(bytearray(16))  # a block inside another tool's callback


def with_other_tool():
    mon = sys.monitoring
    tool = next(t for t in (2, 1, 0) if mon.get_tool(t) is None)
    mon.use_tool_id(tool, "watched.py")
    mon.register_callback(tool, mon.events.PY_RETURN, on_return)
    mon.set_events(tool, mon.events.PY_RETURN)
    by_return(4444, 10)  # MARK:OTHER_TOOL
    mon.set_events(tool, 0)
    mon.free_tool_id(tool)
    scratch.clear()


def spin(n):
    return bytes(8) if n == 0 else spin(n - 1)


if sys.argv[1:] == ["warm"]:
    for _ in range(1500):
        spin(100)
def original(name):
    """sys.monitoring's own function, not pymem's wrapper in front of it."""
    return next(o for o in gc.get_objects()
                if getattr(o, "__name__", None) == name and getattr(o, "__self__", None) is sys.monitoring)


def watched():
    """pymem's watch holds tool id 4 (its wrappers, in front of sys.monitoring's
    functions from the start, show it free)."""
    return "pymem" in (sys.monitoring.get_tool.__doc__ or "") and original("get_tool")(4) == "pymem"


def muted():
    if watched():
        original("set_events")(4, 0)  # without asking for the id first
    by_return(9999, 10)  # MARK:MUTED


def hijacked():
    mon = sys.monitoring
    if watched():
        original("register_callback")(4, mon.events.PY_RETURN, None)  # without asking for the id first
    by_return(7777, 10)  # MARK:HIJACKED


def silenced():
    try:
        sys.monitoring.set_events(4, 0)  # an id the program never took
        error = "none"
    except ValueError as e:
        error = str(e)
    by_return(8888, 10)  # MARK:SILENCED
    return error


hold(None)
by_return(1111, 20)  # MARK:PLAIN
by_unwind()  # MARK:UNWIND_CALL
by_yield()  # MARK:YIELD_CALL
with_other_tool()  # MARK:OTHER_CALL
with_settrace()  # MARK:SETTRACE_CALL
holder = "pymem" if watched() else None
free = sys.monitoring.get_tool(4) is None and sys.monitoring.get_events(4) == 0
free = free and not any(t & (1 << 4) for t in sys.monitoring._all_events().values())
muted()  # MARK:MUTE_CALL
hijacked()  # MARK:HIJACK_CALL
error = silenced()  # MARK:SILENCE_CALL
sys.monitoring.use_tool_id(4, "watched.py")  # pymem gives its id back
by_return(6666, 10)  # MARK:TAKEN
sys.monitoring.free_tool_id(4)
print(reentry.count, holder, "free" if free else "taken", error)
