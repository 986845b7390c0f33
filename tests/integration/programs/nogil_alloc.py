"""PyMem_Malloc called without the GIL (ctypes.CDLL releases it around the
call), as a faulty extension would, while another thread holds the GIL. Run
with PYTHONMALLOC=malloc, whose MEM domain is thread-safe. Each block must be
attributed to this thread's line, never to the thread holding the GIL."""
import ctypes
import threading

pymem_malloc = ctypes.CDLL(None).PyMem_Malloc
pymem_malloc.restype = ctypes.c_void_p
pymem_malloc.argtypes = [ctypes.c_size_t]
stop = False
started = threading.Event()


def spin():
    started.set()
    x = 0
    while not stop:
        x += 1


t = threading.Thread(target=spin)
t.start()
started.wait()
blocks = [None] * 200
for i in range(200):
    blocks[i] = pymem_malloc(1000 + i)  # MARK:NOGIL
stop = True
t.join()
print(len([b for b in blocks if b]))
