"""glibc's own count of the blocks it serves with mmap, after enough
allocations for pymem's writer to compress several chunks: the same with and
without pymem. pymem's memory, zstd's workspace included, never comes from
malloc: a large block freed through malloc raises glibc's mmap and trim
thresholds for the whole process, and the program's heaps would then be
trimmed differently under the profiler."""
import ctypes
import threading
import time


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2


def churn():
    for _ in range(20):
        keep = [str(i) * 2 for i in range(20000)]
        del keep
        time.sleep(0.01)  # the writer's passes compress what was recorded


t = threading.Thread(target=churn)
t.start()
t.join()
m = libc.mallinfo2()
print(m.hblks, m.hblkhd)
