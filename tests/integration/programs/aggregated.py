"""Known sites for the aggregated mode, recorded also as events to compare:
a leak, a transient peak, anonymous mappings partly unmapped (a hole splits
one in two), threads, snapshots, and churn that nets to nothing."""
import ctypes
import mmap
import threading

import pymem

KEEP = []


def leak(n):
    for _ in range(n):
        KEEP.append(bytes(3000))  # MARK:LEAK


def phase():
    big = [bytearray(20000) for _ in range(400)]  # MARK:PEAK
    return len(big)


def churn():
    for _ in range(20000):
        x = [0] * 10  # MARK:CHURN
    return x


def worker(k):
    for _ in range(500):
        KEEP.append(bytes(100 + k))  # MARK:THREAD


pymem.snapshot("before")
leak(300)
phase()
churn()
threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
m = mmap.mmap(-1, 64 * 4096)  # MARK:MMAP
m.write(b"x")
base = ctypes.addressof(ctypes.c_char.from_buffer(m))
ctypes.CDLL(None).munmap(ctypes.c_void_p(base + 16 * 4096), ctypes.c_size_t(8 * 4096))
pymem.snapshot("after")
print("done", len(KEEP))
