"""An extension replaces Python's RAW allocator without chaining to pymem's:
pymem says so (once, and in the capture), hooks the domain again at its next
check point (the snapshot), and records what comes after."""
import ctypes
import sys

import pymem

lib = ctypes.CDLL(sys.argv[1])
api = ctypes.pythonapi
lib.pmtest_replace_raw_allocator(ctypes.cast(api.PyMem_SetAllocator, ctypes.c_void_p))
pymem.snapshot("replaced")
lib.pmtest_raw_blocks(ctypes.cast(api.PyMem_RawMalloc, ctypes.c_void_p), 300, 4321)  # MARK:RAW
pymem.snapshot("after")
print("done")
