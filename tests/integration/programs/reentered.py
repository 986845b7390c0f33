"""The hard case of an incremental stack walk: the same recursion, 150 frames
deep, entered again and again from two outer lines in turn. Each time its
frames are pushed at the same addresses with the same code and the same
instructions; only the outer frame, 150 frames below the allocation, tells
the two apart. Also: a generator resumed under two consumers, and a
recursion whose depth changes between allocations."""
import sys

sys.setrecursionlimit(10000)
keep = [None] * 200  # made whole now: a list growing later would add a block at some line
count = 0


def hold(obj):
    global count
    keep[count] = obj
    count += 1


def down(n):
    if n == 0:
        hold(bytes(1111))  # MARK:LEAF
        return
    down(n - 1)  # MARK:DOWN


def outer():
    for _ in range(40):
        down(150)  # MARK:OUTER_A
        down(150)  # MARK:OUTER_B


def values():
    while True:
        hold(bytes(2222))  # MARK:GEN
        yield


def consume():
    g = values()
    for _ in range(30):
        next(g)  # MARK:CONSUME_A
        next(g)  # MARK:CONSUME_B


def varying():
    for depth in (3, 150, 3, 149, 150, 3):
        down_other(depth)  # MARK:VARYING


def down_other(n):
    if n == 0:
        hold(bytes(3333))  # MARK:OTHER_LEAF
        return
    down_other(n - 1)  # MARK:OTHER_DOWN


hold(None)  # up to 3.10, the frame CPython keeps for hold's next call is made here
outer()  # MARK:OUTER_CALL
consume()  # MARK:CONSUME_CALL
varying()  # MARK:VARYING_CALL
print(count)
