"""Hostile captures: the inputs fuzzing ever found (tests/hostile) and
generated variants of each class of attack, read by every analysis command
under a time and memory limit. Each must end in at most 20 s, within 1 GiB
of address space, with exit 0, or 1 and a one-line error: never a crash, a
hang or a memory bomb.

Classes: table sizes taken from the file (stream numbers near 2^32, node,
string and module ids that jump ahead, a native frame naming any module),
decompression bombs (zstd chunks that inflate far more than their size),
deep chains of nodes, empty chunks, and module paths that name a FIFO."""
import glob
import json
import os
import resource
import struct
import subprocess

import zstd_frames
from harness import check

HERE = os.path.dirname(os.path.abspath(__file__))
KEPT = os.path.join(HERE, "..", "hostile")
LIMIT_AS = 1 << 30
COMMANDS = (["summary"], ["snapshots"], ["peak", "--native", "--top", "0"], ["leaks", "--by", "traceback"],
            ["leaks", "--since", "start", "--at", "end", "--python-only"], ["diff", "start", "end"], ["trend"],
            ["lines"], ["plot", "-o", "/dev/null"], ["flamegraph", "-o", "/dev/null"],
            ["export", "--format", "folded"], ["export", "--format", "pprof", "-o", "/dev/null"],
            ["temporaries"], ["temporaries", "--within", "5ms"], ["peak", "--top", "0"], ["fragmentation"],
            ["compare", "@self"])


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def zz(v):
    return (v << 1) ^ (v >> 63) if v >= 0 else ((-v) << 1) - 1


def string(s):
    s = s.encode() if isinstance(s, str) else s
    return varint(len(s)) + s


def chunk(kind, payload, stream=0, flags=0):
    return struct.pack("<IBBHIII", 0x4B434D50, kind, flags, 0, stream, len(payload), crc32c(payload)) + payload


def header(version=3):
    return b"PYMEMCAP" + struct.pack("<II", version, 0)


META, EVENTS, CONTROL = 1, 2, 3


def meta(**kv):
    return chunk(META, b"".join(string(k) + string(v) for k, v in kv.items()))


def thread(stream):
    return b"\x01" + varint(stream) + string("t")


def node(i, parent, file=1, func=1, line=1):
    return b"\x03" + varint(i) + varint(parent) + varint(file) + varint(func) + varint(line)


def alloc(dseq, daddr, size, dstack, domain=3):
    return bytes([0x10 | domain]) + varint(dseq) + varint(zz(daddr)) + varint(size) + varint(zz(dstack))


def model_alloc_near(dseq, dclass, size, dstack, domain=3):
    return bytes([0xD0 | domain]) + varint(dseq) + varint(zz(dclass)) + varint(size) + varint(zz(dstack))


def model_attacks():
    """(name, records) of damaged streams of the address and retag models."""
    made = model_alloc_near(1, 0x1000, 64, 0) + model_alloc_near(1, 0x40, 64, 0)
    retag_near = made + b"\x41" + varint(1) + varint(zz(0x1000)) + varint(0)
    free_recent_0 = b"\xC0" + varint(1)
    return [
        ("free-recent-beyond", made + b"\xC3" + varint(1)),
        ("free-recent-twice", made + free_recent_0 + b"\xC1" + varint(1) + free_recent_0 + free_recent_0),
        ("reuse-empty", bytes([0x80 | 3]) + varint(1) + varint(64) + varint(0)),
        ("reuse-escaped-huge", made + free_recent_0 + bytes([0x80 | 7 << 3 | 3]) + varint(1) + varint(1 << 62)
         + varint(64) + varint(0)),
        ("free-recent-escaped-huge", made + b"\xCF" + varint(1) + varint((1 << 64) - 1)),
        ("unknown-tag", made + b"\xE5" + varint(1)),
        ("domain-past-last", bytes([0xD0 | 7]) + varint(1) + varint(zz(0x1000)) + varint(8) + varint(0)),
        ("cut", made + b"\xD3"),
        # format 6's retag model
        ("retag-again-empty", b"\x48" + varint(1) + varint(0)),
        ("retag-again-beyond", retag_near + b"\x4F" + varint(1) + varint(2048 - 7) + varint(0)),
        ("retag-again-escaped-huge", retag_near + b"\x4F" + varint(1) + varint((1 << 64) - 1) + varint(0)),
        ("retag-unknown-tag", retag_near + b"\x42" + varint(1)),
        ("retag-cut", retag_near + b"\x41" + varint(1)),
    ]


def end(seq):
    return b"\x07" + varint(seq) + b"\x08" + varint(seq) + varint(1) + varint(0) * 4


def capture(*chunks):
    return header() + meta(pid="1", python="3.11.2") + b"".join(chunks)


def variants(fifo):
    """(name, bytes) of each generated attack; `fifo` is a FIFO's path."""
    out = []
    for stream in (1 << 16, (1 << 31) + 5, 0xFFFFFFFF):
        out.append(("stream-%d" % stream, capture(chunk(EVENTS, thread(1), stream))))
    # Events naming stacks never defined, far out (the fuzzer's finding of
    # tables sized by a stack id: 16 GB asked for by `lines` and pprof).
    recs = thread(1) + alloc(1, 4096, 100, (1 << 31) - 7) + alloc(1, 4096, 100, 1 << 20)
    out.append(("alloc-undefined-stacks", capture(chunk(EVENTS, recs, 1))))
    # Ids that double the tables each time, for nodes, strings and modules.
    recs = b"".join(node((1 << 20) * (2 ** i) + 1, 0) for i in range(11))
    out.append(("node-ids-jump", capture(chunk(EVENTS, thread(1) + recs, 1))))
    recs = b"".join(b"\x04" + varint((1 << 18) * (3 ** i)) + string("s") for i in range(12))
    out.append(("string-ids-jump", capture(chunk(EVENTS, thread(1) + recs, 1))))
    recs = b"\x0a" + varint((1 << 20) - 1) + string("/lib/x") + string("") + varint(0) + varint(0)
    out.append(("module-id-high", capture(chunk(EVENTS, thread(1) + recs, 1))))
    # A native frame naming a module id of 2^31 and one of a module defined
    # at a FIFO: neither may hang the symboliser.
    recs = (b"\x0a" + varint(1) + string(os.path.abspath(fifo)) + string(b"\x01\x02") + varint(0) + varint(0)
            + b"\x09" + varint(1) + varint(0) + varint(1 << 31) + varint(0x10)
            + b"\x09" + varint(2) + varint(0) + varint(1) + varint(0x10)
            + alloc(1, 0x1000, 10, 1) + alloc(1, 0x100, 10, 1))
    out.append(("native-modules", header() + meta(pid="1", native_depth="8") + chunk(EVENTS, thread(1) + recs, 1)
                + chunk(CONTROL, end(5))))
    # A chain of 300,000 nodes, each the parent of the next.
    recs = b"".join(node(i, i - 1) for i in range(1, 300001)) + alloc(1, 0x1000, 8, 300000)
    out.append(("deep-chain", capture(chunk(EVENTS, thread(1) + recs, 1), chunk(CONTROL, end(3)))))
    # zstd chunks that inflate 4096 and 32768 times (64 MiB from 2 KiB).
    for ratio, size in ((4096, 1 << 16), (32768, 64 << 20)):
        plain = b"\x00" * size
        out.append(("zstd-ratio-%d" % ratio, capture(*[chunk(EVENTS, zstd_frames.rle(plain), 1, 1)] * 20)))
        del plain
    # Format 4: pymalloc arenas that overlap, wrap around and are freed in
    # part, objects in them, and heap statistics with extreme figures and a
    # count of pairs far beyond the record.
    recs = (b"\x50" + varint(1) + varint(zz(0x100000)) + varint(1 << 20)
            + b"\x50" + varint(1) + varint(zz(0x80000)) + varint(1 << 20)
            + b"\x50" + varint(1) + varint(zz(-0x180000 + (1 << 62))) + varint((1 << 64) - 1)
            + b"\x60" + varint(1) + varint(zz(0x40)) + varint(4096)
            + alloc(1, 0x1000, 64, 0) + alloc(1, 0x10, 512, 0, domain=2))
    stats = (b"\x70" + varint(2) + varint(10) + varint(1) + varint(3) + varint(1) + varint((1 << 64) - 1)
             + varint(4) + varint((1 << 64) - 1) + varint(99) + varint(5))
    out.append(("format4-arenas-heapstats", header(4) + meta(pid="1", python="3.11.2")
                + chunk(EVENTS, thread(1) + recs, 1) + chunk(CONTROL, stats) + chunk(CONTROL, end(9))))
    stats = b"\x70" + varint(3) + varint(11) + varint(2) + varint(1 << 40)
    out.append(("format4-heapstats-count", header(4) + meta(pid="1", python="3.11.2")
                + chunk(EVENTS, thread(1) + recs, 1) + chunk(CONTROL, stats) + chunk(CONTROL, end(9))))
    # The address and retag models (formats 5 and 6): ages past what the
    # rings hold, an entry named twice, an unknown tag, a domain past the
    # last, huge escaped ages, a record cut after its tag.
    for name, recs in model_attacks():
        out.append(("model-" + name, header(6) + meta(pid="1", python="3.11.2")
                    + chunk(EVENTS, thread(1) + recs, 1) + chunk(CONTROL, end(99))))
    out.append(("empty-chunks", capture(chunk(EVENTS, b"", 1), chunk(CONTROL, b""), chunk(EVENTS, thread(1), 1))))
    # A million events with no watermark, in a small file (held for ordering).
    recs = thread(1) + alloc(1, 0x1000, 8, 0) * 2000
    out.append(("no-watermark", capture(*[chunk(EVENTS, recs, 1)] * 50)))
    return out


def with_checksums(data):
    """`data` with each chunk's CRC made right, as far as its chunk headers
    go: fuzzing runs with the checksum check off (PM_FUZZING), so a finding
    kept as it was found would stop at its first chunk's CRC here."""
    out = bytearray(data)
    at = 16
    while at + 20 <= len(out) and out[at:at + 4] == b"PMCK":
        length = struct.unpack_from("<I", out, at + 12)[0]
        if at + 20 + length > len(out):
            break
        struct.pack_into("<I", out, at + 16, crc32c(out[at + 20:at + 20 + length]))
        at += 20 + length
    return bytes(out)


def limited():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))


def test_hostile_captures(c, tag):
    fifo = os.path.join(c.tmp, "hostile.fifo")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    files = [(os.path.basename(p), with_checksums(open(p, "rb").read()))
             for p in sorted(glob.glob(os.path.join(KEPT, "*.pmem")))]
    files += variants(fifo)
    bad = []
    for name, data in files:
        path = os.path.join(c.tmp, "hostile-" + name + ".pmem")
        with open(path, "wb") as f:
            f.write(data)
        for args in COMMANDS:
            try:
                r = subprocess.run([c.pymem, args[0], path] + [path if a == "@self" else a for a in args[1:]],
                                   capture_output=True, text=True, timeout=20, preexec_fn=limited)
            except subprocess.TimeoutExpired:
                bad.append((name, args[0], "hang"))
                continue
            lines = [l for l in r.stderr.splitlines() if "warning:" not in l]
            if not (r.returncode == 0 or (r.returncode == 1 and len(lines) == 1)):
                bad.append((name, args[0], r.returncode, r.stderr[-200:]))
    check(tag + " %d hostile captures (kept findings and generated attacks) x %d commands: no crash, hang or "
          "memory bomb" % (len(files), len(COMMANDS)), not bad, str(bad[:4]))
    said = {}
    for name, _ in model_attacks():
        r = subprocess.run([c.pymem, "summary", os.path.join(c.tmp, "hostile-model-" + name + ".pmem")],
                           capture_output=True, text=True, timeout=20)
        said[name] = (r.returncode, r.stderr.strip().split(": ")[-1] if r.stderr else "")
    want = {"free-recent-beyond": "bad address reference", "free-recent-twice": "bad address reference",
            "reuse-empty": "bad address reference", "reuse-escaped-huge": "bad address reference",
            "free-recent-escaped-huge": "bad address reference", "unknown-tag": "unknown record tag",
            "domain-past-last": "unknown allocation domain", "cut": "cut event record",
            "retag-again-empty": "bad address reference", "retag-again-beyond": "bad address reference",
            "retag-again-escaped-huge": "bad address reference", "retag-unknown-tag": "unknown record tag",
            "retag-cut": "cut event record"}
    check(tag + " formats 5 and 6: each damaged address-model and retag-model record named in one line",
          all(said[k][0] == 1 and want[k] in said[k][1] for k in want), str(said))
    # The highest stream number a capture may use, in a 150-byte file: the
    # reader makes the state of the streams that appear only (each holds the
    # models' rings, 29 KB), not of every number below (1.9 GB).
    high = os.path.join(c.tmp, "stream-65535.pmem")
    with open(high, "wb") as f:
        f.write(capture(chunk(EVENTS, thread(1) + alloc(1, 0x1000, 64, 0), 65535), chunk(CONTROL, end(9))))
    r = subprocess.run([c.pymem, "summary", "--json", high], capture_output=True, text=True, timeout=20,
                       preexec_fn=limited)
    check(tag + " stream number 65535 read under a 1 GiB address-space limit",
          r.returncode == 0 and json.loads(r.stdout)["allocations"] == 1, r.stderr)


def test_max_memory(c, tag):
    """--max-memory turns a capture that needs more into a one-line error."""
    seed = os.path.join(HERE, "..", "golden", "small.pmem")
    r = subprocess.run([c.pymem, "peak", seed, "--max-memory", "256K"], capture_output=True, text=True, timeout=60)
    check(tag + " --max-memory 256K: out of memory, one line, status 1", r.returncode == 1
          and "memory" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr)
    r = subprocess.run([c.pymem, "peak", seed, "--max-memory", "256M"], capture_output=True, text=True, timeout=60)
    check(tag + " --max-memory 256M: enough for a small capture", r.returncode == 0, r.stderr)
    r = subprocess.run([c.pymem, "summary", seed, "--max-memory", "lots"], capture_output=True, text=True)
    check(tag + " --max-memory lots: refused as bad usage", r.returncode == 2 and "--max-memory" in r.stderr, r.stderr)


ONCE = [test_hostile_captures, test_max_memory]
