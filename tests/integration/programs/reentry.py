"""The frame watch's hard cases that every kind of watch shares (imported by
watched.py, sys.monitoring's, and evaluated.py, a frame evaluator's): each
re-enters the same frames at the same addresses from two lines in turn, so
that only a frame far below the allocation tells the two apart:

- returns (120 frames),
- exceptions unwinding 120 frames,
- a chain of 60 generators (yield from) resumed under two lines,
- returns under sys.settrace, whose callbacks allocate too.

The blocks are held in `keep`; `count` says how many."""
import sys

keep = [None] * 400  # made whole now: a list growing later would add a block at some line
count = 0
scratch = []


def hold(obj):
    global count
    keep[count] = obj
    count += 1


def down(n, size):
    if n == 0:
        hold(bytes(size))  # MARK:LEAF
        return
    down(n - 1, size)  # MARK:DOWN


def by_return(size, rounds):
    for _ in range(rounds):
        down(120, size)  # MARK:RETURN_A
        down(120, size)  # MARK:RETURN_B


def down_raise(n):
    if n == 0:
        hold(bytes(2222))  # MARK:RAISE_LEAF
        raise LookupError
    down_raise(n - 1)  # MARK:RAISE_DOWN


def by_unwind():
    for _ in range(20):
        try:
            down_raise(120)  # MARK:UNWIND_A
        except LookupError:
            pass
        try:
            down_raise(120)  # MARK:UNWIND_B
        except LookupError:
            pass


def chain(n):
    if n == 0:
        while True:
            hold(bytes(3333))  # MARK:GEN_LEAF
            yield
    yield from chain(n - 1)  # MARK:GEN_DOWN


def by_yield():
    g = chain(60)
    for _ in range(20):
        next(g)  # MARK:YIELD_A
        next(g)  # MARK:YIELD_B


def tracer(frame, event, arg):
    scratch.append(bytearray(24))
    return tracer


def with_settrace():
    sys.settrace(tracer)
    by_return(5555, 10)  # MARK:SETTRACE
    sys.settrace(None)
    scratch.clear()
