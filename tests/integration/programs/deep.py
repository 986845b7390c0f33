"""Recursion 100 deep, then one bytes(123456) at the BOTTOM line."""
import sys

sys.setrecursionlimit(10000)
keep = []


def down(n):
    if n == 0:
        keep.append(bytes(123456))  # MARK:BOTTOM
        return
    down(n - 1)  # MARK:RECURSE


def gen():
    for i in range(3):
        yield bytes(22222)  # MARK:GEN


down(100)
items = [x for x in gen()]  # MARK:CONSUME
print(len(keep), len(items))
