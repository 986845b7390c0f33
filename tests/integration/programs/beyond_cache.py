"""Chains deeper than pymem's frame cache (8,192 frames): after such a
chain, walks do without the cache for a while, and a stack must stay exact
through the change, deep or shallow. Each round: 9,000 frames down, a block
at the bottom; back at the top, a block at once; 200 frames down, a block.
Before 3.11 each Python call takes C stack too: 9,000 take about 3 MiB
of the main thread's 8.
"""
import sys

sys.setrecursionlimit(20000)
keep = [None] * 1000  # made whole now: a list growing later would add a block at some line
count = 0  # blocks are kept inline: before 3.11 a function called to keep them would leave its frame


def down(n, size):
    global count
    if n == 0:
        if size:
            keep[count] = bytes(size)  # MARK:LEAF
            count += 1
        return
    down(n - 1, size)  # MARK:DOWN


for _ in range(2000):
    down(1, 0)  # MARK:WARM (what 3.8 makes once a function has run often, made here)
for _ in range(60):
    down(9000, 1111)  # MARK:DEEP
    keep[count] = bytes(2222)  # MARK:SHALLOW
    count += 1
    down(200, 3333)  # MARK:MIDDLE
print(count)
