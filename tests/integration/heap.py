"""Integration tests of `pymem fragmentation`, `pymem compare` and `pymem
run --allocator`, on three programs with known truths: glibc fragmented on
purpose by four threads (the verdict names the thread arenas; the same
program on jemalloc ends with a far lower RSS), a real leak (the verdict
names a leak), and pymalloc arenas kept by one object in 5,000 (the verdict
names them and the line that made those objects). The gap between RSS and
the live heap must add up: what is left unexplained (the interpreter's
code and data, libraries, stacks) stays under RSS_MARGIN."""
import glob
import json
import os
import subprocess

from harness import PROGRAMS, check, marks

MiB = 1 << 20
RSS_MARGIN = 24 * MiB  # the rest: interpreter, libraries, stacks; measured 5-7 MiB
JEMALLOC_CONF = "dirty_decay_ms:0,muzzy_decay_ms:0"  # freed pages go back at once (default: after 10 s)


def record(c, program, name, *options):
    out = c.capture(name)
    r = subprocess.run([c.pymem, "run", "-q", "--python", c.python, "-o", out] + list(options)
                       + [os.path.join(PROGRAMS, program)], capture_output=True, text=True, cwd=c.tmp, timeout=300)
    return r, out


def adds_up(f):
    parts = (f["live"] + f["allocator_overhead"] + f["main_heap_free"] + f["thread_arenas_free"]
             + f["jemalloc_dirty"] + f["jemalloc_slabs_free"] + f["pymalloc_free"] + f["profiler"])
    return abs(f["rss"] - parts) <= RSS_MARGIN and f["rest"] == f["rss"] - parts


def test_arena_pinning(c, tag):
    m = marks("arena_pin.py")
    r, out = record(c, "arena_pin.py", "pin.pmem")
    check(tag + " arena_pin.py runs unchanged", r.returncode == 0 and r.stdout == "400\n", r.stderr[-300:])
    f = c.json("fragmentation", out)
    at = f["at"]
    arena = 1 * MiB if c.version >= (3, 10) else 256 << 10
    floats = 2000000 * 24  # float objects of 24 bytes
    check(tag + " fragmentation: pymalloc's arenas kept by few objects, named",
          f["verdict"] == "fragmentation" and f["cause"] == "pymalloc_arenas", f["message"])
    check(tag + " fragmentation: the arenas holding two million floats are recorded, and nearly all kept mostly empty",
          at["pymalloc_arena_bytes"] >= floats and f["sparse_arenas"] * arena >= floats * 9 // 10
          and f["cause_bytes"] >= floats * 9 // 10, json.dumps(at))
    top = f["pinning_sites"][0] if f["pinning_sites"] else {}
    check(tag + " fragmentation: the line that made the objects keeping the arenas comes first",
          top.get("file", "").endswith("arena_pin.py") and top.get("line") == m["PIN"]
          and top.get("held_bytes", 0) >= floats * 9 // 10, json.dumps(f["pinning_sites"][:2]))
    check(tag + " fragmentation: RSS, the live heap and the causes add up within %d MiB" % (RSS_MARGIN // MiB),
          adds_up(at), json.dumps(at))
    heap = c.json("summary", out)["heap"]
    check(tag + " summary: the heap at exit, with pymalloc's arenas and the live heap as fragmentation has them",
          heap["point"] == "exit" and heap["pymalloc_arena_bytes"] == at["pymalloc_arena_bytes"]
          and heap["live"] == at["live"] and heap["rss"] == at["rss"], json.dumps(heap))


def test_leak_verdict(c, tag):
    r, out = record(c, "heap_leak.py", "heapleak.pmem")
    check(tag + " heap_leak.py runs", r.returncode == 0 and r.stdout == "50000\n", r.stderr[-300:])
    f = c.json("fragmentation", out)
    grew = f["at"]["live"] - f["baseline"]["live"]
    check(tag + " fragmentation: a real leak is called a leak, with the live heap's growth",
          f["verdict"] == "leak" and 50000 * 1033 <= grew < 50000 * 1033 + 4 * MiB, f["message"])
    check(tag + " fragmentation: the leak's figures add up", adds_up(f["at"]), json.dumps(f["at"]))


def test_thread_arenas_and_jemalloc(c, tag):
    r, glibc = record(c, "frag_threads.py", "frag-glibc.pmem")
    check(tag + " frag_threads.py runs", r.returncode == 0 and r.stdout == "24000\n", r.stderr[-300:])
    f = c.json("fragmentation", glibc)
    at = f["at"]
    freed = 4 * 6000 * (4000 + 33)
    check(tag + " fragmentation: glibc's thread arenas hold what four threads freed",
          f["verdict"] == "fragmentation" and f["cause"] == "thread_arenas" and at["thread_heaps"] >= 4
          and at["thread_arenas_free"] >= freed * 3 // 4, f["message"] + " " + json.dumps(at))
    check(tag + " fragmentation: the live heap at exit is what the threads kept",
          4 * 6000 * 633 <= at["live"] - f["baseline"]["live"] < 4 * 6000 * 633 + 4 * MiB, json.dumps(at))
    check(tag + " fragmentation: the figures add up", adds_up(at), json.dumps(at))
    text = c.analyze("fragmentation", glibc).stdout
    check(tag + " fragmentation: the verdict in one line, the figures behind it",
          "held free by glibc's thread arenas" in text.splitlines()[1] and "free in glibc's thread arenas" in text,
          text[:600])

    r, je = record(c, "frag_threads.py", "frag-jemalloc.pmem", "--allocator", "jemalloc:" + JEMALLOC_CONF)
    check(tag + " --allocator jemalloc: the program runs on jemalloc", r.returncode == 0 and r.stdout == "24000\n",
          r.stderr[-300:])
    fj = c.json("fragmentation", je)
    check(tag + " --allocator jemalloc: the capture says jemalloc, and everything is still recorded",
          fj["allocator"] == "jemalloc" and abs(fj["at"]["live"] - at["live"]) < MiB, json.dumps(fj["at"]))
    cmp = c.json("compare", glibc, je)
    check(tag + " compare: the jemalloc run ends with far less RSS, the live heaps agree",
          cmp["exit_rss_change"] <= -0.5 and abs(cmp["peak_live_change"]) <= 0.05
          and cmp["b"]["allocator"] == "jemalloc" and cmp["a"]["allocator"] == "glibc", json.dumps(cmp)[:600])
    text = c.analyze("compare", glibc, je).stdout
    check(tag + " compare: the verdict in one line", "RSS at exit is" in text and "lower" in text.splitlines()[2],
          text[:400])

    r, tuned = record(c, "frag_threads.py", "frag-arena1.pmem", "--allocator", "glibc:arena_max=1")
    ft = c.json("fragmentation", tuned)
    check(tag + " --allocator glibc:arena_max=1: no thread arenas, the free space is the main heap's",
          r.returncode == 0 and ft["at"]["thread_heaps"] == 0 and ft["cause"] == "main_heap", ft["message"])
    r = subprocess.run([c.pymem, "run", "--allocator", "glibc:arenas=2", "x.py"], capture_output=True, text=True)
    check(tag + " --allocator with an unknown tunable: one line, exit 2", r.returncode == 2
          and len(r.stderr.strip().splitlines()) == 1 and "arenas=2" in r.stderr, r.stderr)
    r = subprocess.run([c.pymem, "run", "--allocator", "tcmalloc", "x.py"], capture_output=True, text=True)
    check(tag + " --allocator with an unknown allocator: one line, exit 2", r.returncode == 2
          and "tcmalloc" in r.stderr, r.stderr)


def bindings(c, preload, name):
    """What malloc bound to, by LD_DEBUG=bindings, for `preload` in this order."""
    log = os.path.join(c.tmp, name)
    for p in glob.glob(log + ".*"):
        os.unlink(p)
    out = c.capture(name + ".pmem")
    r = c.run([c.python, "-c", "x = [bytes(5000) for _ in range(10)]"], out, LD_PRELOAD=preload,
              LD_DEBUG="bindings", LD_DEBUG_OUTPUT=log)
    lines = []
    for p in glob.glob(log + ".*"):
        lines += [l for l in open(p, errors="replace") if "normal symbol `malloc'" in l]
        os.unlink(p)
    return r, lines


def test_malloc_bindings(c, tag):
    lib = os.path.join(c.build, "libpymem.so")
    je = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
    path = next((l.split("=> ")[1].strip() for l in je.splitlines() if "libjemalloc.so.2 " in l), None)
    if not path:
        check(tag + " libjemalloc.so.2 installed (libjemalloc2)", False)
        return
    r, lines = bindings(c, lib + ":" + path, "bind-pymem-first")
    to_pymem = [l for l in lines if l.rstrip().split(" to ")[-1].startswith(lib)]
    pymem_next = [l for l in lines if ("file " + lib) in l and path in l.split(" to ")[-1]]
    check(tag + " LD_DEBUG=bindings, pymem then jemalloc: the program's malloc is pymem's, pymem's next is jemalloc's",
          r.returncode == 0 and to_pymem and pymem_next and "served ahead" not in r.stderr, "".join(lines)[:1500])
    r, lines = bindings(c, path + ":" + lib, "bind-jemalloc-first")
    to_pymem = [l for l in lines if l.rstrip().split(" to ")[-1].startswith(lib)]
    check(tag + " LD_DEBUG=bindings, jemalloc then pymem: malloc is jemalloc's, and pymem says so once",
          r.returncode == 0 and not to_pymem and r.stderr.count("served ahead of pymem") == 1,
          r.stderr[-400:] + "".join(lines)[:800])


EVERY = [test_arena_pinning, test_leak_verdict]
ONCE = [test_thread_arenas_and_jemalloc, test_malloc_bindings]
