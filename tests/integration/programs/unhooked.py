"""Python objects and one large buffer, for --no-python-allocators: the
objects must show only as pymalloc's arenas (mmap domain) at their line, the
buffer as one malloc block of exactly its size at its line."""
import sys

objects = [str(i) * 3 for i in range(200000)]  # MARK:OBJECTS
buf = bytearray(3000000)  # MARK:BUFFER
sys.stdout.write("%d\n" % (len(objects) + len(buf)))
