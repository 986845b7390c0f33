"""Temporary allocations at a known line: 4000 bytes(3000), each freed at
once, before anything else is allocated (TEMP); 200 bytearrays kept to the
end (KEPT), which the interpreter's teardown frees: not temporaries."""
KEEP = []


def hot():
    for _ in range(4000):
        bytes(3000)  # MARK:TEMP


def warm():
    for _ in range(200):
        KEEP.append(bytearray(3000))  # MARK:KEPT


hot()
warm()
print(len(KEEP))
