"""Three shapes of memory over time, for 'pymem trend': a true leak (LEAK,
500-byte objects at a steady pace), an LRU cache that fills up in the first
third and then stays full (CACHE), and a batch buffer rebuilt every 40
items (BATCH), paced by the clock. Prints the leak's own rate: iterations
per second."""
import collections
import os
import sys
import time

DURATION = float(sys.argv[1]) if len(sys.argv) > 1 else 2.4
LEAK = []
CACHE = collections.OrderedDict()
CACHE_SIZE = 120


def main():
    batch = []
    start = time.monotonic()
    first = last = None
    i = 0
    # One item every 4 ms of wall time: a process stalled by a busy machine
    # catches up, so that the leak stays a straight line in time.
    due = start
    while time.monotonic() < start + DURATION:
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
            continue
        due += 0.004
        LEAK.append(bytes(500))  # MARK:LEAK
        now = time.monotonic()
        first = now if first is None else first
        last = now
        if i < 3 * CACHE_SIZE:
            CACHE[i % (2 * CACHE_SIZE)] = bytes(2000)  # MARK:CACHE
            while len(CACHE) > CACHE_SIZE:
                CACHE.popitem(last=False)
        batch.append(bytes(300))  # MARK:BATCH
        if len(batch) == 40:
            batch = []
        i += 1
    # One write of the whole line: forked workers print at the same moment,
    # and print()'s separate write of the newline would interleave them.
    os.write(1, ("leak %.3f per s\n" % ((len(LEAK) - 1) / (last - first))).encode())


if __name__ == "__main__":
    main()
