"""The frame at the edge of what a stack keeps changes its line while the
127 frames above it are resumed at the same addresses: the stack must show
each line. The 127 frames are a chain of generators (their frames stay in
the generator objects: no other allocation between two rounds makes a
walk). The chain is 288 frames: <module>, 159 of pad, vary, 126 of link and
the leaf. With the default depth limit (128) the cut falls at 160 from the
outermost frame: the stack keeps exactly vary and the 127 frames above it.
Without the frame watch a walk checks only the frames a stack can keep:
vary is the last of them.
"""
import sys

sys.setrecursionlimit(1000)
keep = [None] * 40  # made whole now: a list growing later would add a block at some line
count = 0


def leaf():
    global count
    while True:
        keep[count] = bytes(1111)  # MARK:LEAF
        count += 1
        yield


def link(inner):
    yield from inner  # MARK:CHAIN


top = leaf()
for _ in range(126):
    top = link(top)


def vary(a):
    if a:
        next(top)  # MARK:A
    else:
        next(top)  # MARK:B


def pad(n):
    if n > 1:
        pad(n - 1)  # MARK:PAD
        return
    for i in range(40):
        vary(i % 2 == 0)  # MARK:LOOP


pad(159)  # MARK:ROOT
print(count)
