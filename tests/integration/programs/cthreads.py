"""Threads created in C (no Python frames, exit before the snapshot) allocate
6 x 2000 blocks of 4099 bytes, keeping half; a daemon Python thread is still
allocating when the interpreter exits."""
import ctypes
import sys
import threading

import pymem

lib = ctypes.CDLL(sys.argv[1])
lib.pmtest_spawn_threads.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t]
lib.pmtest_spawn_threads.restype = None
lib.pmtest_alloc_blocks.argtypes = [ctypes.c_int, ctypes.c_size_t]
lib.pmtest_alloc_blocks.restype = None
lib.pmtest_spawn_threads(6, 2000, 4099)
pymem.snapshot("joined")


def churn():
    junk = []
    while True:
        junk.append(bytes(1000))
        lib.pmtest_alloc_blocks(4, 128)
        if len(junk) > 1000:
            junk.clear()


threading.Thread(target=churn, daemon=True).start()
print("bye")
