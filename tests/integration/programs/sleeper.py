"""Allocates 200 bytes(5000) at the HELD line, says ready, then waits to be
snapshotted or killed; on stdin EOF it allocates 300 more at the LATER line."""
import sys
import time

held = []
for _ in range(200):
    b = bytes(5000)  # MARK:HELD
    held.append(b)
print("ready", flush=True)
sys.stdin.readline()
for _ in range(300):
    c = bytes(6000)  # MARK:LATER
    held.append(c)
print("bye", flush=True)
sys.stdin.readline()
