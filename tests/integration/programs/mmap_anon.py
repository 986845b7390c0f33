"""An anonymous mmap at a known line, among many objects (pymalloc arenas,
which are mmaps too but must not be counted twice)."""
import mmap

objects = [str(i) * 3 for i in range(200000)]
m = mmap.mmap(-1, 1 << 20)  # MARK:MMAP
m.write(b"x" * 10)
del objects
print("ok")
