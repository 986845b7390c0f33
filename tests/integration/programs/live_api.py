"""The live C API (include/pymem/live.h) through ctypes, with known truths:
prints one JSON line of what the window said, for live.py to check."""
import ctypes
import gc
import json
import sys
import threading

N, SIZE = 500, 2000
BIG = 4000000


class Live(ctypes.Structure):
    _fields_ = [("window", ctypes.c_uint32), ("open", ctypes.c_uint16), ("sites_complete", ctypes.c_uint16),
                ("begin_seq", ctypes.c_uint64), ("seq", ctypes.c_uint64),
                ("bytes", ctypes.c_int64), ("blocks", ctypes.c_int64),
                ("peak_bytes", ctypes.c_int64), ("peak_blocks", ctypes.c_int64),
                ("heap_bytes", ctypes.c_int64), ("heap_blocks", ctypes.c_int64)]


class Site(ctypes.Structure):
    _fields_ = [("stack", ctypes.c_uint32), ("domain", ctypes.c_uint32),
                ("bytes", ctypes.c_int64), ("blocks", ctypes.c_int64)]


lib = ctypes.CDLL(None)
if not hasattr(lib, "pymem_live_state"):
    print(json.dumps({"state": None}))
    sys.exit(0)
lib.pymem_live_read.argtypes = [ctypes.POINTER(Live)]
lib.pymem_live_sites.argtypes = [ctypes.c_int, ctypes.POINTER(Site), ctypes.c_int]
lib.pymem_stack_text.argtypes = [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]
kept = []
before = [bytes(SIZE) for _ in range(N)]  # made before the window: their frees count nowhere


def sites(at_peak):
    raw = (Site * 64)()
    n = lib.pymem_live_sites(at_peak, raw, 64)
    out = []
    buf = ctypes.create_string_buffer(8192)
    for s in raw[:n]:
        lib.pymem_stack_text(s.stack, buf, len(buf))
        first = buf.value.decode().split("\n")[0].split("\t")
        out.append({"bytes": s.bytes, "blocks": s.blocks, "domain": s.domain,
                    "line": int(first[2]) if len(first) == 3 else 0, "function": first[1] if len(first) == 3 else ""})
    return out


def read():
    live = Live()
    rc = lib.pymem_live_read(ctypes.byref(live))
    return rc, {f: getattr(live, f) for f, _ in Live._fields_}


def work(big_size, n):
    big = bytes(big_size)  # MARK:BIG
    del big
    kept.extend(bytes(SIZE) for _ in range(n))  # MARK:KEPT
    t = threading.Thread(target=lambda: kept.append(bytes(big_size // 2)))  # MARK:THREAD
    t.start()
    t.join()


# Once before the window: up to 3.10 a code object keeps its last frame
# (and a generator's) for the next call, made at the first.
work(0, 0)
kept.clear()
state = lib.pymem_live_state()
begin = lib.pymem_live_begin()
before.clear()
work(BIG, N)
gc.collect()
lib.pymem_live_end.argtypes = [ctypes.POINTER(Live)]
at_end = Live()
end = lib.pymem_live_end(ctypes.byref(at_end))
after_end = [bytes(SIZE) for _ in range(N)]  # made after the end: not in the window
kept.clear()  # freed after the end: the window keeps them
rc, live = read()
print(json.dumps({"state": state, "at_end_bytes": at_end.bytes, "begin": begin, "end": end, "read": rc, "live": live,
                  "now": sites(0), "peak": sites(1), "bad_stack": lib.pymem_stack_text(0xfffffff0, ctypes.create_string_buffer(8), 8)}))
