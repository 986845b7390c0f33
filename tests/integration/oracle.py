"""The tracemalloc oracle: real programs from the standard library run under
pymem with `-X tracemalloc=25` in the same process, both snapshots taken at
the same instant (programs/oracle_driver.py), and the live bytes of the
Python domains compared line by line. The figure is the share of live bytes
that sit at other lines than tracemalloc's: half the sum over lines of
|pymem - tracemalloc|, over tracemalloc's total.

Run alone to print the figures: python3 tests/integration/oracle.py [--python PY]...
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig

from harness import BYTES_HEADER, PROGRAMS, attribution_counts, check, marks, site

# Python 3.13 tells a profiler of every recycled object (its reference
# tracer); before, CPython tells only tracemalloc, and objects reused from a
# free list keep the line that first allocated their memory in pymem (see
# README, "Attribution"). The bound for those versions is what was measured
# with margin, so that a regression shows.
BOUND_313 = 0.01
BOUND_BEFORE = 0.05


def workloads(c):
    """(name, driver arguments) of the programs to compare; each is a real
    program nobody here wrote, run on inputs made here."""
    stdlib = subprocess.run([c.python, "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
                            capture_output=True, text=True).stdout.strip()
    src = os.path.join(c.tmp, "oracle-src-%d%d" % c.version)
    if not os.path.isdir(src):
        for pkg in ("email", "json", "http"):
            shutil.copytree(os.path.join(stdlib, pkg), os.path.join(src, pkg),
                            ignore=shutil.ignore_patterns("__pycache__"))
    data = os.path.join(c.tmp, "oracle-data.json")
    if not os.path.exists(data):
        rows = [{"id": i, "name": "row %d" % i, "tags": ["a", "b", str(i % 7)], "score": i / 3.0}
                for i in range(3000)]
        with open(data, "w") as f:
            json.dump({"rows": rows, "meta": {"count": len(rows)}}, f)
    return [
        ("compileall", ["-m", "compileall", "-q", "-f", src]),
        ("json.tool", ["-m", "json.tool", "--sort-keys", data, os.path.join(c.tmp, "oracle-out.json")]),
        ("pydoc", ["-m", "pydoc", "-w", "email.message"]),
    ]


def by_line_pymem(c, capture):
    report = c.json("leaks", capture, "--at", "oracle", "--since", "tracemalloc-start", "--top", "0", "--by", "lineno",
                    "--domain", "pyraw,pymem,pyobj")
    out = {}
    for s in report["sites"]:
        key = "<unknown>:0" if s["file"] == "<native>" else "%s:%d" % (s["file"], s["line"])
        out[key] = out.get(key, 0) + s["bytes"]
    return out


def mismatch(c, name, args):
    """The share of live bytes at other lines, both totals, and how many of
    tracemalloc's 10 biggest lines pymem gives more than 5% more or less."""
    out = c.capture("oracle-%s.pmem" % name)
    traced = os.path.join(c.tmp, "oracle-%s.json" % name)
    r = c.preload(["-X", "tracemalloc=25", os.path.join(PROGRAMS, "oracle_driver.py"), traced] + args, out,
                  timeout=600)
    if r.returncode != 0:
        raise AssertionError("%s under pymem and tracemalloc failed (%d): %s" % (name, r.returncode, r.stderr[-500:]))
    with open(traced) as f:
        tm = json.load(f)
    pm = by_line_pymem(c, out)
    total = sum(tm.values())
    diff = sum(abs(pm.get(k, 0) - tm.get(k, 0)) for k in set(pm) | set(tm))
    top = sorted(tm, key=tm.get, reverse=True)[:10]
    off = sum(1 for k in top if abs(pm.get(k, 0) - tm[k]) > 0.05 * tm[k])
    return diff / 2 / total, sum(pm.values()), total, off


def test_tracemalloc_oracle(c, tag):
    bound = BOUND_313 if c.version >= (3, 13) else BOUND_BEFORE
    for name, args in workloads(c):
        share, pm_total, tm_total, off = mismatch(c, name, args)
        check(tag + " oracle %s: %.2f%% of %d live bytes at other lines than tracemalloc's (pymem total %d, "
              "bound %.0f%%); %d of tracemalloc's top 10 lines differ by more than 5%%"
              % (name, 100 * share, tm_total, pm_total, 100 * bound, off), share <= bound)


def test_attribution_reproductions(c, tag):
    """The small reproductions: recycled tuples, and objects made as a call
    starts, against tracemalloc in the same process."""
    m = marks("attribution.py")
    ran = attribution_counts(c, tag, "attribution.pmem", "pyraw,pymem,pyobj")
    if not ran:
        return
    count, tm, sites = ran
    # Up to 3.10 a code object keeps one frame for reuse (its "zombie"
    # frame), which is recycled as free lists are: one block may differ.
    slack = 0 if c.version >= (3, 11) else 1
    for mark in ("CELLS", "GENS", "COROS"):
        check(tag + " objects made as a call starts belong to the caller's line (%s): %d blocks, tracemalloc %d"
              % (mark, count(mark), tm[mark]), abs(count(mark) - tm[mark]) <= slack)
    callee_lines = [s for s in sites if s["file"].endswith("attribution.py") and s["line"] in (0, m["CELLS"] - 14)]
    check(tag + " nothing at a callee's line 0", not [s for s in sites if s["file"].endswith("attribution.py")
                                                     and s["line"] == 0], json.dumps(callee_lines)[:300])
    keep, drop = count("KEEP"), count("DROP")
    if c.version >= (3, 13):
        check(tag + " recycled tuples at the line that reused them: KEEP %d blocks (tracemalloc %d), DROP %d"
              % (keep, tm["KEEP"], drop), keep == tm["KEEP"] and drop == tm["DROP"])
    else:
        # Before 3.13 only tracemalloc is told of a reuse: what comes back
        # from the free lists (at most 2000 tuples of a size and 80 lists)
        # stays at DROP.
        misplaced = tm["KEEP"] - keep
        check(tag + " recycled objects stay within the free lists' capacity: KEEP %d (tracemalloc %d), DROP %d"
              % (keep, tm["KEEP"], drop), 2000 <= misplaced <= 2080 and drop >= misplaced)


def test_tracemalloc_start_stop(c, tag):
    """pymem's hooks survive tracemalloc.start()/stop() in any order, and
    tracemalloc keeps its own numbers."""
    m = marks("tracemalloc_startstop.py")
    out = c.capture("startstop.pmem")
    r = c.preload(["-X", "tracemalloc", os.path.join(PROGRAMS, "tracemalloc_startstop.py")], out)
    got = json.loads(r.stdout) if r.returncode == 0 else {}
    # tracemalloc's 1001: the 1000 bytes objects, and the list's array last
    # grown at that line.
    check(tag + " tracemalloc started at start-up, stopped, restarted: the program runs, tracemalloc counts its "
          "1000 blocks", got == {"was_tracing": True, "traced": 1001} and not r.stderr, r.stderr[-300:] + r.stdout)
    sites = c.json("leaks", out, "--top", "0")["sites"]
    for mark, size, n in (("AFTERSTOP", 1000, 1000), ("RESTART", 2000, 1000), ("END", 3000, 500)):
        s = site(sites, m[mark], "tracemalloc_startstop.py")
        objects = s["domains"].get("pyobj") if s else None
        check(tag + " pymem records through tracemalloc's stop and start (%s: %d blocks)" % (mark, n),
              objects == {"bytes": n * (size + BYTES_HEADER), "count": n}, json.dumps(s)[:300])
    summ = c.json("summary", out)
    check(tag + " no domain lost, objects recorded", summ["python_lost"] == "" and summ["python_allocators_recorded"]
          and summ["domains"]["pyobj"]["allocations"] > 10000, json.dumps(summ)[:300])
    labels = [s["label"] for s in summ["snapshots"]]
    # A start and a stop with no allocation between them pass unseen.
    check(tag + " tracemalloc's starts and stops are marked", labels == [
        "tracemalloc-start", "main", "tracemalloc-stop", "tracemalloc-start", "tracemalloc-stop", "exit"], str(labels))


def test_tracemalloc_own_blocks(c, tag):
    """tracemalloc's own blocks are not the program's: the traceback copies it
    makes outside any allocator hook (3.8-3.12) reach a lower layer of
    pymem's unguarded, and the C library's malloc under it must not record
    them either. What remains at the program's lines is the entry its table
    takes for each, from the C library's malloc directly: one per new
    traceback (the build before this test recorded two)."""
    out = c.capture("tmown.pmem")
    r = c.preload(["-X", "tracemalloc=5", os.path.join(PROGRAMS, "tracemalloc_own.py")], out)
    sites = c.json("leaks", out, "--domain", "malloc", "--by", "lineno", "--top", "0")["sites"]
    mine = [s for s in sites if s["file"].startswith("<gen")]
    blocks = sum(s["count"] for s in mine)
    check(tag + " -X tracemalloc: at most one block of tracemalloc's per new traceback at the program's lines "
          "(the table's entry), none of its traceback copies", r.returncode == 0 and r.stdout == "2000\n"
          and blocks <= 2000 + 16, "%d blocks, %d bytes; %s" % (blocks, sum(s["bytes"] for s in mine), r.stderr[-300:]))


def test_lost_domain_is_reported(c, tag):
    m = marks("lost_domain.py")
    out = c.capture("lost.pmem")
    r = c.preload([os.path.join(PROGRAMS, "lost_domain.py"), os.path.join(c.build, "tests", "libpmtest.so")], out)
    warnings = [l for l in r.stderr.splitlines() if l.startswith("pymem:")]
    check(tag + " a replaced allocator domain: one warning", r.returncode == 0 and r.stdout == "done\n"
          and len(warnings) == 1 and "pyraw" in warnings[0], r.stderr[-300:])
    summ = c.json("summary", out)
    check(tag + " the capture says which domain was lost", summ["python_lost"] == "pyraw", summ["python_lost"])
    s = site(c.json("leaks", out, "--at", "after", "--top", "0", "--domain", "pyraw")["sites"], m["RAW"],
             "lost_domain.py")
    check(tag + " the domain is hooked again: 300 raw blocks at their line", s is not None and s["count"] == 300
          and s["bytes"] == 300 * 4321, json.dumps(s)[:200])


EVERY = [test_tracemalloc_oracle, test_attribution_reproductions, test_tracemalloc_start_stop,
         test_tracemalloc_own_blocks, test_lost_domain_is_reported]

if __name__ == "__main__":
    import argparse
    import tempfile
    import harness
    import run
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--python", action="append")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pymem-oracle-")
    try:
        for py in args.python or run.pythons():
            c = harness.Ctx(args.build, py, tmp)
            c.version = run.version_of(py)
            for t in EVERY:
                t(c, "[%s %d.%d]" % (py, *c.version))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if harness.failed else 0)
