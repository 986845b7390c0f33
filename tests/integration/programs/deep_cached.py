"""A recursion of 1,500 frames under a raised recursion limit: deeper than
the frame cache's first 1,024 entries, within its 8,192. Its stacks are
cut by the cache's rule (steps of 16 from the outermost frame), not walked
without the cache (the innermost 128). Each round makes a short-lived list
at every level on the way down (so that each walk finds the last one's
frames under its own), and keeps one block at the bottom and one at every
100th level on the way back up.
"""
import sys

sys.setrecursionlimit(5000)
keep = [None] * 640  # made whole now: a list growing later would add a block at some line
count = 0  # blocks are kept inline: before 3.11 a function called to keep them would leave its frame


def down(n):
    global count
    passing = [n]  # freed on return: not among the blocks kept
    if n == 0:
        keep[count] = bytes(1111)  # MARK:LEAF
        count += 1
        return
    down(n - 1)  # MARK:DOWN
    if n % 100 == 0:
        keep[count] = bytes(2222)  # MARK:UP
        count += 1


for _ in range(40):
    down(1500)  # MARK:ROUND
print(count)
