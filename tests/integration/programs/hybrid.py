"""Python -> C (ctypes) -> malloc: the hybrid stack must read
hybrid_inner <- hybrid_alloc <- (ctypes) <- allocate <- main <- <module>."""
import ctypes
import sys

lib = ctypes.CDLL(sys.argv[1])
lib.hybrid_alloc.restype = ctypes.c_void_p
lib.hybrid_alloc.argtypes = [ctypes.c_size_t]


def allocate(n):
    keep = []
    for _ in range(n):
        keep.append(lib.hybrid_alloc(50000))  # MARK:CALL
    return keep


def main():
    return allocate(10)  # MARK:MAIN


kept = main()  # MARK:MODULE
print(len(kept))
