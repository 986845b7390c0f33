"""deep_recursion: a recursion 1,500 frames deep under a raised recursion
limit (a tree walk or a recursive parser on deep input), allocating a small
list at every level and 50 dicts at the bottom. Deeper than the first
1,024 entries of pymem's frame cache, within its 8,192: each allocation
checks only what changed since the last one. Before 3.11 every Python call
takes C stack too: 1,500 frames take about half a MiB of the main thread's.
"""
import sys

DEPTH = 1500
ROUNDS = 3000

sys.setrecursionlimit(DEPTH + 500)


def down(n, acc):
    if n == 0:
        for i in range(50):
            acc.append({"k": i})
        return
    x = [n]
    down(n - 1, acc)
    return x


def main():
    total = 0
    for _ in range(ROUNDS):
        acc = []
        down(DEPTH, acc)
        total += len(acc)
    return total


if __name__ == "__main__":
    main()
