#!/usr/bin/env python3
"""Distinct stacks for the flame graph's size and render time: a recursion
K levels deep that goes through one of two functions at each level, by the
bits of the leaf's number, so that each of the 2^K leaves allocates under a
stack of its own. Run under pymem; then `pymem flamegraph` on the capture.

    pymem run -o stacks.pmem bench/flame_stacks.py K
"""
import sys

KEEP = []


def left(i, depth):
    if depth == 0:
        KEEP.append(bytes(64))
    elif (i >> depth) & 1:
        right(i, depth - 1)
    else:
        left(i, depth - 1)


def right(i, depth):
    if depth == 0:
        KEEP.append(bytes(64))
    elif (i >> depth) & 1:
        right(i, depth - 1)
    else:
        left(i, depth - 1)


K = int(sys.argv[1]) if len(sys.argv) > 1 else 14
for n in range(1 << K):
    left(n << 1, K)
print(len(KEEP))
