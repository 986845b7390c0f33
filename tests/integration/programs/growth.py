"""Growth between two snapshots: 400 bytes(7777) at the GROW line; then,
from 'after' to 'shrunk', those 400 freed and 50 bytes(3000) made at the
REGROW line (a diff lists the bigger change, the shrinkage, first)."""
import pymem

STORE = {}
REGROWN = [None] * 50
for i in range(100):
    STORE[-i] = bytes(100)

pymem.snapshot("before")
for i in range(400):
    v = bytes(7777)  # MARK:GROW
    STORE[i] = v
pymem.snapshot("after")
del v
for i in range(400):
    STORE[i] = None
for i in range(50):
    REGROWN[i] = bytes(3000)  # MARK:REGROW
pymem.snapshot("shrunk")
print(len(STORE))
