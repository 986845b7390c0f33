"""Growth between two snapshots: 400 bytes(7777) at the GROW line."""
import pymem

STORE = {}
for i in range(100):
    STORE[-i] = bytes(100)

pymem.snapshot("before")
for i in range(400):
    v = bytes(7777)  # MARK:GROW
    STORE[i] = v
pymem.snapshot("after")
print(len(STORE))
