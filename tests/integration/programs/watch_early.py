"""A program that keeps sys.monitoring's functions from its start (3.12+),
before pymem's frame watch takes a tool id (PYMEM_FRAME_WATCH=auto, once
deep stacks are measured), then takes that id for itself with them: it
must get it, as it would without pymem.

Prints who held id 4 before (sys.monitoring's own get_tool, found through
the garbage collector: pymem's wrappers show the id free) and after."""
import gc
import sys

use_tool_id = sys.monitoring.use_tool_id
get_tool = sys.monitoring.get_tool


def spin(n):
    return bytes(8) if n == 0 else spin(n - 1)


own_get_tool = next(o for o in gc.get_objects()
                    if getattr(o, "__name__", None) == "get_tool" and getattr(o, "__self__", None) is sys.monitoring)
for _ in range(40):  # deep allocations: what starts the watch, after a few thousand
    for _ in range(500):
        spin(100)
    before = own_get_tool(4)
    if before:
        break
use_tool_id(4, "watch_early.py")
print(before, get_tool(4))
sys.monitoring.free_tool_id(4)
