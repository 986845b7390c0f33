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


def keyfunc(x):
    kept.append(lib.hybrid_alloc(70000))  # MARK:KEY
    return -x


def main():
    return allocate(10)  # MARK:MAIN


def sort_with_c_in_between():
    # Python -> sorted (C) -> keyfunc (Python) -> ctypes (C): two runs of
    # the interpreter loop with C frames between them.
    return sorted(range(5), key=keyfunc)  # MARK:SORTED


kept = main()  # MARK:MODULE
sort_with_c_in_between()  # MARK:MODULE2
print(len(kept))
