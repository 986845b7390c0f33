"""4 threads allocate at once: from C without the GIL (pmtest_alloc_blocks,
half of 3000 blocks of 54321 bytes kept per thread) and from Python (2500
bytes(3333) kept per thread). Counts must match exactly."""
import ctypes
import sys
import threading

import pymem

lib = ctypes.CDLL(sys.argv[1])
lib.pmtest_alloc_blocks.argtypes = [ctypes.c_int, ctypes.c_size_t]
lib.pmtest_alloc_blocks.restype = None
lib.pmtest_alloc_blocks(0, 0)  # ctypes' own first-call allocations happen here

keep = [[] for _ in range(4)]
start = threading.Barrier(4)


def worker(t):
    lib.pmtest_alloc_blocks(0, 0)  # per-thread first-call state (3.13 keeps some)
    start.wait()
    lib.pmtest_alloc_blocks(3000, 54321)  # MARK:NATIVE
    for i in range(2500):
        b = bytes(3333)  # MARK:PYTHON
        keep[t].append(b)


threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
pymem.snapshot("done")
print(sum(len(k) for k in keep))
