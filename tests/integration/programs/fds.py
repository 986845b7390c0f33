"""A program that expects the lowest free descriptor from open(), then
changes directory and closes every descriptor above 2 (as daemons do)
before writing a file."""
import os
import sys

path = sys.argv[1]
fd = os.open(path + ".first", os.O_WRONLY | os.O_CREAT, 0o600)
print("first fd", fd)
os.close(fd)
early = [bytes(3000) for _ in range(1000)]  # MARK:BEFORE
os.chdir("/")
os.closerange(3, 65536)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
keep = [bytes(5000) for _ in range(2000)]  # MARK:AFTER
os.write(fd, b"program data\n" * 1000)
os.close(fd)
print("size", os.path.getsize(path))
