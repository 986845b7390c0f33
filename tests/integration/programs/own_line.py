"""The program's own line first: 300 objects made inside the standard
library's json decoder, called from the OWN line; 40 copies of a bytearray
made 14 frames down in copy.deepcopy, called from the DEEP line; a numpy
array from the NUMPY line when numpy is installed for this interpreter."""
import copy
import json

KEEP = []


def load():
    for i in range(300):
        KEEP.append(json.loads('{"k": "%s"}' % ("x" * (1000 + i % 2))))  # MARK:OWN


load()

NESTED = [[[[[[bytearray(30000)]]]]]]


def copies():
    for i in range(40):
        KEEP.append(copy.deepcopy(NESTED))  # MARK:DEEP


copies()
try:
    import numpy
except ImportError:
    numpy = None
if numpy is not None:
    KEEP.append(numpy.ones((500, 1000)))  # MARK:NUMPY
print("numpy" if numpy is not None else "no numpy")
