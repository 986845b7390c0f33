"""The line tracemalloc gives each object, in the same process: objects
recycled from CPython's free lists, and objects made as a call starts
(closure cells, generators, coroutines), which belong to the caller's line.
Prints tracemalloc's count per MARK line as JSON; pymem's snapshot 'marks'
is taken at the same instant."""
import gc
import json
import sys
import tracemalloc

import pymem


def drop():
    made = [(i, -i, None) for i in range(20000)]  # MARK:DROP
    del made


def keep():
    return [(i, -i, None) for i in range(20000)]  # MARK:KEEP


def make_closure(i):
    def inner():
        return i
    return inner


def generator(i):
    yield i


async def coroutine(i):
    return i


def run():
    closures = [make_closure(i) for i in range(2000)]  # MARK:CELLS
    generators = [generator(i) for i in range(2000)]  # MARK:GENS
    coroutines = [coroutine(i) for i in range(2000)]  # MARK:COROS
    return closures, generators, coroutines


tracemalloc.start(1)
# Free lists emptied: what is recycled from now on was allocated while
# tracemalloc traced (it cannot re-attribute a block it never saw).
gc.collect()
drop()
kept = keep()
made = run()
pymem.snapshot("marks")
snap = tracemalloc.take_snapshot()
for coros in made[2]:
    coros.close()
counts = {}
for stat in snap.statistics("lineno"):
    frame = stat.traceback[0]
    if frame.filename == __file__:
        counts[frame.lineno] = stat.count
json.dump(counts, sys.stdout)
