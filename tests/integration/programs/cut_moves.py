"""Recursions 150 to 450 frames deep through two functions, each level
calling down from one of two lines by a rule that differs with every round:
stacks cut to their innermost frames, whose cut moves with the depth, over
frames at other lines. Each kept block records the lines of its whole
stack (innermost first, as sys._getframe sees them). Its size tells its
innermost KEEP lines (the fewest a cut stack keeps, the first argument):
bytes of 64 + their index, so that blocks one stack of pymem's holds are
all of one size. Prints, as JSON, for each index the whole stacks seen and
how many blocks have it.
"""
import json
import sys

sys.setrecursionlimit(5000)
KEEP = int(sys.argv[1])
keys = {}
whole = []
kept = []
counts = []


def make(frame):
    lines = [MAKE_LINE]
    while frame is not None:
        lines.append(frame.f_lineno)
        frame = frame.f_back
    i = keys.setdefault(tuple(lines[:KEEP]), len(keys))
    if i == len(counts):
        counts.append(0)
        whole.append(set())
    counts[i] += 1
    whole[i].add(tuple(lines))
    return bytes(64 + i)  # MARK:MAKE


with open(__file__) as source:
    MAKE_LINE = next(n for n, text in enumerate(source, 1) if text.rstrip().endswith("# MARK:" + "MAKE"))


def a(n, r):
    passing = [n] if r % 2 else None  # freed on return: every other round allocates on the way down
    if n == 0:
        kept.append(make(sys._getframe()))  # MARK:LEAF_A
        return
    if (n * 7 + r) % 3 == 0:
        b(n - 1, r)  # MARK:AB
    else:
        a(n - 1, r)  # MARK:AA
    if n % 37 == r % 5:
        kept.append(make(sys._getframe()))  # MARK:UP_A


def b(n, r):
    passing = [n] if r % 2 else None
    if n == 0:
        kept.append(make(sys._getframe()))  # MARK:LEAF_B
        return
    if (n * 5 + r) % 4 == 0:
        a(n - 1, r)  # MARK:BA
    else:
        b(n - 1, r)  # MARK:BB
    if n % 41 == r % 7:
        kept.append(make(sys._getframe()))  # MARK:UP_B


def walk(n, mode):
    if n == 0:
        kept.append(make(sys._getframe()))  # MARK:WALK_LEAF
        return
    if mode and n % 2:
        walk(n - 1, mode)  # MARK:WALK_Y
    else:
        walk(n - 1, mode)  # MARK:WALK_X


def turn(n):
    """From one frame, a descent through two lines in turn, then a deeper
    one through one: the frames above it are new from the first that
    differs, and the cut moves up over frames that the first descent had
    at other lines."""
    if n > 0:
        turn(n - 1)  # MARK:TURN_DOWN
        return
    for mode, length in ((1, 40), (0, 80)):
        walk(length, mode)  # MARK:TURN


for r in range(40):
    a(150 + (r * 53) % 300, r)  # MARK:ROUND
for d in (150, 170, 200):
    turn(d)  # MARK:TURNS
print(json.dumps({"base": sys.getsizeof(b""), "stacks": [sorted(w) for w in whole], "counts": counts}))
