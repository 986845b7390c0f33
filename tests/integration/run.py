#!/usr/bin/env python3
"""Integration tests: real Python programs under pymem, checked against
known truths (bytes and counts at known lines), on /usr/bin/python3 and every
pyenv Python 3.8-3.13 on this machine. Prints one line per check and ends
with "N passed, N failed"; exits non-zero on any failure."""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import harness
import heap
import hostile
import live
HERE_NATIVE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "native")
from harness import BYTES_HEADER, PROGRAMS, Ctx, blocks_at, check, marks, site
import native
import oracle
import sampling

# --- tests run on every Python ---------------------------------------------

def test_leak_at_known_line(c, tag):
    m = marks("leak.py")
    out = c.capture("leak.pmem")
    r = c.preload([os.path.join(PROGRAMS, "leak.py")], out)
    check(tag + " leak.py runs unchanged", r.returncode == 0 and r.stdout == "done 1000\n", r.stderr)
    leaks = c.json("leaks", out, "--top", "5")
    top = leaks["sites"][0]
    want = 1000 * (10000 + BYTES_HEADER)
    check(tag + " top leak is the LEAK line", top["file"].endswith("leak.py") and top["line"] == m["LEAK"]
          and top["function"].endswith("remember"), json.dumps(top)[:300])
    check(tag + " leak bytes and count exact", top["bytes"] == want and top["count"] == 1000,
          "%s/%s want %d/1000" % (top["bytes"], top["count"], want))
    check(tag + " leak phase is runtime, stack has main and <module>",
          top["phase"] == "runtime" and [f["function"] for f in top["stack"]][-2:] == ["main", "<module>"],
          json.dumps(top["stack"])[:300])
    check(tag + " freed churn is not a leak", site(leaks["sites"], m["CHURN"], "leak.py") is None)
    summ = c.json("summary", out)
    check(tag + " summary complete", summ["truncated"] is False and summ["end"] == "exit"
          and [s["label"] for s in summ["snapshots"]][-1] == "exit" and summ["python"].startswith(
              ".".join(map(str, c.version))), json.dumps(summ)[:400])
    check(tag + " churn allocations all counted", summ["allocations"] >= 4000 and summ["frees"] >= 3000)


def test_own_line_first(c, tag):
    """Sites are named by the program's own line by default (--by own), by
    the innermost frame with --by lineno (tracemalloc's rule); JSON gives
    both."""
    m = marks("own_line.py")
    out = c.capture("own.pmem")
    r = c.preload([os.path.join(PROGRAMS, "own_line.py")], out)
    check(tag + " own_line.py runs", r.returncode == 0, r.stderr[-300:])
    own = c.json("leaks", out, "--top", "0", "--domain", "pyobj")
    s = site(own["sites"], m["OWN"], "own_line.py")
    inner = (s or {}).get("innermost", {})
    check(tag + " --by own (default): json's objects at the program's line, innermost frame in json",
          own["by"] == "own" and s is not None and s["count"] >= 300 and "/json/" in inner.get("file", "")
          and s["function"] == "load", json.dumps(s)[:400])
    lineno = c.json("leaks", out, "--top", "0", "--domain", "pyobj", "--by", "lineno")
    check(tag + " --by lineno: none at the program's line, the json decoder's line holds them",
          site(lineno["sites"], m["OWN"], "own_line.py") is None
          and any("/json/" in x["file"] and x["count"] >= 300 for x in lineno["sites"]))
    text = c.analyze("leaks", out, "--top", "3").stdout
    entry = re.search(r"^ +\d+\. .* \S*own_line\.py:%d copies\n((?: {9}.*\n)+)" % m["DEEP"], text, re.M)
    frames = entry.group(1).splitlines() if entry else []
    check(tag + " --by own, text: a site named after a line 14 frames down shows that frame, the middle elided",
          len(frames) == 7 and "copy.py" in frames[0] and re.fullmatch(r" +\.\.\. \d+ frames \.\.\.", frames[4])
          and frames[5].strip().endswith("own_line.py:%d copies" % m["DEEP"]) and "<module>" in frames[6], text)
    if r.stdout == "numpy\n":
        big = site(c.json("leaks", out, "--top", "0")["sites"], m["NUMPY"], "own_line.py")
        check(tag + " --by own: numpy.ones's 4 MB at the program's line",
              big is not None and big["domains"].get("malloc", {}).get("bytes") == 4000000, json.dumps(big)[:300])


def test_peak_at_known_line(c, tag):
    m = marks("peak.py")
    out = c.capture("peak.pmem")
    r = c.preload([os.path.join(PROGRAMS, "peak.py")], out)
    check(tag + " peak.py runs", r.returncode == 0 and r.stdout == "300 100\n", r.stderr)
    peak = c.json("peak", out)
    top = peak["sites"][0]
    want = 300 * (100000 + BYTES_HEADER)
    check(tag + " top peak site is the PEAK line", top["line"] == m["PEAK"] and top["function"].endswith("phase_one"),
          json.dumps(top)[:300])
    check(tag + " peak site bytes exact", blocks_at(c, top, 300, 100000 + BYTES_HEADER),
          "%s/%s want %d/300" % (top["bytes"], top["count"], want))
    check(tag + " peak total covers the phase", want <= peak["peak_bytes"] < want + 8 * 2**20, str(peak["peak_bytes"]))
    fn = c.json("peak", out, "--by", "filename")
    check(tag + " --by filename groups the file", fn["sites"][0]["file"].endswith("peak.py")
          and fn["sites"][0]["bytes"] >= want)


def test_growth_between_snapshots(c, tag):
    m = marks("growth.py")
    out = c.capture("growth.pmem")
    r = c.preload([os.path.join(PROGRAMS, "growth.py")], out)
    check(tag + " growth.py runs", r.returncode == 0, r.stderr)
    d = c.json("diff", out, "before", "after")
    top = d["sites"][0]
    check(tag + " growth attributed to GROW line", top["line"] == m["GROW"] and top["file"].endswith("growth.py"),
          json.dumps(top)[:300])
    check(tag + " growth exact", top["bytes_diff"] == 400 * (7777 + BYTES_HEADER) and top["count_diff"] == 400,
          "%s/%s" % (top["bytes_diff"], top["count_diff"]))
    idx = c.json("diff", out, "1", "2")
    check(tag + " snapshots by index", idx["from"] == "before" and idx["sites"][0]["line"] == m["GROW"])
    # tracemalloc's compare_to order: the biggest change first, shrinkage too;
    # the header's totals are over every site that changed, shown or not
    s = c.json("diff", out, "after", "shrunk", "--top", "0")
    lines = [(x["line"], x["bytes_diff"], x["count_diff"]) for x in s["sites"][:2]]
    check(tag + " diff lists the biggest change first: the GROW line's 400 freed, then REGROW's 50",
          lines == [(m["GROW"], -400 * (7777 + BYTES_HEADER), -400), (m["REGROW"], 50 * (3000 + BYTES_HEADER), 50)],
          str(lines))
    check(tag + " diff totals: net, grown and shrunk are the sums over the sites",
          s["net_bytes"] == sum(x["bytes_diff"] for x in s["sites"])
          and s["net_count"] == sum(x["count_diff"] for x in s["sites"])
          and s["grown_bytes"] == sum(x["bytes_diff"] for x in s["sites"] if x["bytes_diff"] > 0)
          and s["shrunk_bytes"] == sum(x["bytes_diff"] for x in s["sites"] if x["bytes_diff"] < 0)
          and s["shrunk_bytes"] <= -400 * (7777 + BYTES_HEADER),
          json.dumps({k: s[k] for k in ("net_bytes", "net_count", "grown_bytes", "shrunk_bytes")}))
    text = c.analyze("diff", out, "after", "shrunk", "--top", "1").stdout.splitlines()
    check(tag + " diff text gives the net change and the order", len(text) > 1 and "net -" in text[0]
          and "biggest change first" in text[1], "\n".join(text[:2]))


def test_threads_lose_nothing(c, tag):
    m = marks("threads.py")
    out = c.capture("threads.pmem")
    r = c.preload([os.path.join(PROGRAMS, "threads.py"), os.path.join(c.build, "tests", "libpmtest.so")], out)
    check(tag + " threads.py runs", r.returncode == 0 and r.stdout == "10000\n", r.stderr)
    # --by lineno: the line that made the object, as tracemalloc says. By the
    # program's own line (the default), what the garbage collector runs in
    # library code while a thread is at that line would join it.
    leaks = c.json("leaks", out, "--at", "done", "--top", "0", "--by", "lineno")
    nat = site(leaks["sites"], m["NATIVE"], "threads.py")
    py = site(leaks["sites"], m["PYTHON"], "threads.py")
    # Python may allocate a few objects of its own while a thread runs that
    # line (3.13 does, at random): the C allocations are the malloc domain.
    native = nat["domains"].get("malloc") if nat else None
    check(tag + " native blocks from 4 threads exact", native == {"bytes": 6000 * 54321, "count": 6000},
          json.dumps(nat)[:300])
    # 3.13: each thread's line may reuse a few small objects from the free
    # lists (seen: 5 over the 4 threads, one run in three)
    check(tag + " python blocks from 4 threads exact", blocks_at(c, py, 10000, 3333 + BYTES_HEADER, recycled=8),
          json.dumps({k: py.get(k) for k in ("bytes", "count", "domains")} if py else None))
    summ = c.json("summary", out)
    check(tag + " 4 worker threads seen, nothing unrecorded", summ["threads"] >= 5 and summ["unrecorded_events"] == 0,
          "threads=%s unrecorded=%s" % (summ["threads"], summ["unrecorded_events"]))


def test_c_threads_and_daemon_at_exit(c, tag):
    out = c.capture("cthreads.pmem")
    r = c.preload([os.path.join(PROGRAMS, "cthreads.py"), os.path.join(c.build, "tests", "libpmtest.so")], out)
    check(tag + " C threads and an allocating daemon thread at exit", r.returncode == 0 and r.stdout == "bye\n",
          r.stderr[-300:])
    native = None
    for s in c.json("leaks", out, "--at", "joined", "--since", "main", "--top", "0")["sites"]:
        if s["file"] == "<native>" and s["phase"] == "runtime":
            native = s["domains"].get("malloc")
    check(tag + " C threads' blocks exact, under <native>", native == {"bytes": 6000 * 4099, "count": 6000},
          str(native))
    summ = c.json("summary", out)
    check(tag + " capture complete despite the daemon thread", summ["end"] == "exit" and not summ["truncated"])


def test_exit_paths(c, tag):
    m = marks("leak.py")
    cases = [("normal", 0, "exit"), ("sys_exit", 3, "exit"), ("os_exit", 5, "_exit"),
             ("exception", 1, "exit"), ("keyboard_interrupt", -signal.SIGINT, "exit"),
             ("sigterm", -signal.SIGTERM, "signal"), ("sigterm_restored", -signal.SIGTERM, "signal")]
    for mode, rc, end in cases:
        plain = subprocess.run([c.python, os.path.join(PROGRAMS, "leak.py"), mode], capture_output=True,
                               text=True, cwd=c.tmp)
        out = c.capture("exit-%s.pmem" % mode)
        r = c.preload([os.path.join(PROGRAMS, "leak.py"), mode], out)
        check(tag + " exit %s: same status and output" % mode,
              r.returncode == plain.returncode == rc and r.stdout == plain.stdout,
              "rc %s vs plain %s, stderr %s" % (r.returncode, plain.returncode, r.stderr[-300:]))
        summ = c.json("summary", out)
        leaks = c.json("leaks", out, "--top", "3")
        s = site(leaks["sites"], m["LEAK"], "leak.py")
        check(tag + " exit %s: capture complete (%s) with the leak" % (mode, end),
              summ["end"] == end and not summ["truncated"] and s is not None and s["count"] == 1000,
              "end=%s truncated=%s" % (summ["end"], summ["truncated"]))
        # no way out leaves <pid>.capture behind, Ctrl-C's included (Python
        # finalises, then kills itself with SIGINT: no exit pymem sees)
        announced = control_file(summ["pid"])
        check(tag + " exit %s: no control file left behind" % mode, not os.path.exists(announced), announced)


def test_phases_and_exit_status(c, tag):
    m = marks("phases.py")
    out = c.capture("phases.pmem")
    r = c.preload([os.path.join(PROGRAMS, "phases.py")], out)
    check(tag + " phases.py exits with its status", r.returncode == 3, r.stderr[-300:])
    sites = c.json("leaks", out, "--top", "0", "--by", "lineno")["sites"]
    email = [s for s in sites if "/email/" in s["file"] and s["phase"] == "import"]
    ours = [s for s in email if s.get("import", {}).get("module", "").startswith("email")
            and s["import"]["file"].endswith("phases.py") and s["import"]["line"] == m["IMPORT"]]
    check(tag + " import phase names the module and the line that imported it (%d of %d sites)"
          % (len(ours), len(email)), email and len(ours) == len(email),
          json.dumps([s for s in email if s not in ours][:1])[:1500])
    by_stack = c.json("leaks", out, "--top", "0", "--by", "traceback")["sites"]
    loader = [s for s in by_stack if any(f["file"].endswith("phases.py") and f["line"] == m["LOADER"]
                                         for f in s["stack"])]
    check(tag + " the import system's code called at run time is the program's own",
          loader and all(s["phase"] == "runtime" for s in loader)
          and sum(s["bytes"] for s in loader) > 10000, json.dumps(loader[:1])[:400])
    lines = [(s["file"], s["line"]) for s in sites]
    check(tag + " one line is one site", len(lines) == len(set(lines)))
    summ = c.json("summary", out)
    check(tag + " the summary gives the exit status", summ["exit_status"] == 3 and summ["end"] == "exit"
          and summ["end_detail"] == 3 and not summ["truncated"], json.dumps(summ)[:300])


def test_fork_and_children(c, tag):
    m = marks("forks.py")
    out = c.capture("forks.pmem")
    r = c.preload([os.path.join(PROGRAMS, "forks.py")], out)
    check(tag + " forks.py runs (no follow)", r.returncode == 0 and "results [100000, 100001, 100002, 100003] 10" in r.stdout,
          r.stderr[-500:])
    files = sorted(glob.glob(out[:-5] + "*.pmem"))
    check(tag + " only the parent writes a capture", files == [out], str(files))
    leaks = c.json("leaks", out, "--top", "0")
    check(tag + " parent capture has the parent's blocks, not the child's",
          site(leaks["sites"], m["PARENT"], "forks.py") is not None
          and site(leaks["sites"], m["CHILD"], "forks.py") is None)
    # os.fork once, and the pool's two workers; subprocess's children are not os.fork's
    summ = c.json("summary", out)
    check(tag + " the capture counts the 3 children forked unrecorded", summ["forks_unrecorded"] == 3,
          str(summ.get("forks_unrecorded")))
    text = c.analyze("summary", out).stdout
    check(tag + " the summary says the forked children were not recorded",
          "forked 3 processes with os.fork that were not recorded" in text and "--follow-fork" in text, text[-600:])

    out = c.capture("forkf.pmem")
    r = c.preload([os.path.join(PROGRAMS, "forks.py")], out, PYMEM_FOLLOW_FORK=1)
    check(tag + " forks.py runs (follow)", r.returncode == 0 and "results" in r.stdout, r.stderr[-500:])
    children = sorted(set(glob.glob(out[:-5] + ".*.pmem")))
    # os.fork child, python -c subprocess, and 2 pool workers; ls writes none
    check(tag + " every Python child writes its own capture", len(children) == 4, str(children))
    check(tag + " followed children are not counted as unrecorded",
          c.json("summary", out)["forks_unrecorded"] == 0 and "os.fork" not in c.analyze("summary", out).stdout)
    with_child_line = 0
    for f in children:
        pid = int(f.rsplit(".", 2)[-2])
        summ = c.json("summary", f)
        if summ["pid"] != pid:
            check(tag + " child capture named by its pid", False, "%s has pid %s" % (f, summ["pid"]))
        for s in c.json("peak", f, "--top", "0")["sites"]:
            if s["line"] == m["CHILD"] and s["file"].endswith("forks.py") and s["bytes"] >= 100000 + BYTES_HEADER:
                with_child_line += 1
                break
    # the fork child, and at least one pool worker (one may take every task)
    check(tag + " fork and pool children attribute to CHILD line", with_child_line >= 2, str(with_child_line))


def test_exec_keeps_what_was_recorded(c, tag):
    m = marks("execs.py")
    out = c.capture("execs.pmem")
    r = c.preload([os.path.join(PROGRAMS, "execs.py")], out)
    check(tag + " exec into a program that is not Python: same output", r.returncode == 0
          and r.stdout == "exec failed 2\n", r.stderr[-300:])
    summ = c.json("summary", out)
    check(tag + " the capture ends complete, by exec", summ["end"] == "exec" and not summ["truncated"],
          json.dumps(summ)[:300])
    sites = c.json("leaks", out, "--top", "0")["sites"]
    for mark, n, size in (("BEFORE", 1000, 2000), ("AFTER", 500, 3000)):
        s = site(sites, m[mark], "execs.py")
        check(tag + " exec: blocks recorded %s the failed exec, exact" % mark.lower(),
              blocks_at(c, s, n, size + BYTES_HEADER, recycled=2, domain="pyobj"), json.dumps(s)[:300])
    out = c.capture("execpy.pmem")
    r = c.preload([os.path.join(PROGRAMS, "execs.py"), "python"], out)
    second = out[:-5] + "-2.pmem"
    check(tag + " exec into Python: each image keeps its capture", r.returncode == 0
          and r.stdout.endswith("second image\n") and os.path.exists(second)
          and c.json("summary", out)["end"] == "exec", r.stderr[-300:])
    s = site(c.json("leaks", second, "--top", "0")["sites"], m["SECOND"], "execs.py") \
        if os.path.exists(second) else None
    check(tag + " the second image's blocks in its own capture",
          blocks_at(c, s, 50, 4000 + BYTES_HEADER, domain="pyobj"), json.dumps(s)[:300])


def control_file(pid):
    """Where a recording process announces its capture (include/pymem/control.h)."""
    return os.path.join(os.environ.get("TMPDIR") or "/tmp", "pymem-%d" % os.getuid(), "%d.capture" % pid)


def test_embedding_twice(c, tag):
    """An embedding program that runs the interpreter twice: both lifetimes
    are recorded in one capture, each with its own blocks."""
    cfg = subprocess.run([c.python, "-c", "import sysconfig as s; print(s.get_config_var('Py_ENABLE_SHARED'), "
                          "s.get_paths()['include'], s.get_config_var('LIBDIR'), s.get_config_var('LDVERSION'))"],
                         capture_output=True, text=True).stdout.split()
    if len(cfg) != 4 or cfg[0] != "1":
        print("skip  %s embedding: this Python has no shared libpython" % tag)
        return
    exe = os.path.join(c.tmp, "embed%d%d" % c.version)
    cc = subprocess.run(["cc", "-I" + cfg[1], os.path.join(HERE_NATIVE, "embed.c"), "-L" + cfg[2],
                         "-lpython" + cfg[3], "-Wl,-rpath," + cfg[2], "-o", exe], capture_output=True, text=True)
    if cc.returncode != 0:
        check(tag + " embedding program builds", False, cc.stderr[-300:])
        return
    out = c.capture("embed.pmem")
    r = c.run([exe], out)
    check(tag + " embedding twice runs unchanged, announced for snapshots in both lifetimes", r.returncode == 0
          and r.stdout == "round 500 announced True\n" * 2, r.stdout + r.stderr[-300:])
    summ = c.json("summary", out)
    check(tag + " embedding: no control file left at exit", not os.path.exists(control_file(summ["pid"])))
    labels = [(x["label"], x["kind"]) for x in summ["snapshots"]]
    check(tag + " one capture, both lifetimes: exit, interpreter-2, exit",
          labels == [("exit", "exit"), ("interpreter-2", "user"), ("exit", "exit")]
          and summ["end"] == "exit" and summ["after_end"] == 0, json.dumps(summ)[:400])

    def objects_at(point):
        # The line also made the code's own objects (a dozen, by version).
        s = [x for x in c.json("leaks", out, "--at", point, "--top", "0")["sites"]
             if x["file"] == "<string>" and x["line"] == 1]
        return s[0]["domains"].get("pyobj", {}) if s else {}
    for point, size in (("0", 1000), ("exit", 2000)):
        o = objects_at(point)
        check(tag + " lifetime %d's 500 blocks of %d bytes at its exit" % (size // 1000, size),
              500 <= o.get("count", 0) < 540 and 500 * (size + BYTES_HEADER) <= o.get("bytes", 0)
              < 500 * (size + BYTES_HEADER) + 20000, json.dumps(o))


def test_run_of_many_processes(c, tag):
    """A pre-fork run: the end-of-run report covers every process, and
    --merge sums the sites over them with each one's share."""
    m = marks("run_workers.py")
    folder = os.path.join(c.tmp, "runmany")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    root = os.path.join(folder, "srv.pmem")
    r = subprocess.run([c.pymem, "run", "--python", c.python, "--follow-fork", "-o", root,
                        os.path.join(PROGRAMS, "run_workers.py")], capture_output=True, text=True, timeout=120)
    check(tag + " a pre-fork run under pymem run", r.returncode == 0 and r.stdout == "served\n", r.stderr[-400:])
    roles = [l.split()[1] for l in r.stderr.splitlines() if re.match(r"pymem:   (root|fork|spawn|exec) +pid", l)]
    check(tag + " the end-of-run report has one line per process",
          "pymem: run of 4 processes:" in r.stderr and sorted(roles) == ["fork", "fork", "root", "spawn"],
          r.stderr[-800:])
    check(tag + " ... and the leak summed over the run",
          re.search(r"in 10\d\d blocks at \S*run_workers.py:%d serve \(3 processes\)" % m["LEAK"], r.stderr)
          is not None, r.stderr[-800:])
    summ = c.json("summary", root, "--merge")
    procs = summ["processes"]
    check(tag + " summary --merge: root first, then its children",
          [p["role"] for p in procs][0] == "root" and sorted(p["role"] for p in procs) == ["fork", "fork", "root", "spawn"]
          and all(p["ppid"] == procs[0]["pid"] for p in procs[1:]) and all(p["python"] for p in procs),
          json.dumps(procs)[:600])
    leaks = c.json("leaks", root, "--merge", "--top", "0")
    s = site(leaks["sites"], m["LEAK"], "run_workers.py")
    shares = sorted(p["count"] for p in s["processes"]) if s else []
    objects = s["domains"].get("pyobj", {}) if s else {}
    check(tag + " leaks --merge: 1000 blocks at the line, 100 + 300 + 600 by process",
          objects.get("count") == 1000 and 1000 * (1000 + BYTES_HEADER) <= objects.get("bytes", 0)
          < 1000 * (1000 + BYTES_HEADER) + 4096 and len(shares) == 3 and shares[0] >= 100 and shares[1] >= 300
          and shares[2] >= 600 and sum(shares) < 1000 + 3 * 40, json.dumps(s)[:600])
    spawned = [x for x in leaks["sites"] if x["file"] == "<string>" and x["line"] == 1]
    check(tag + " ... and the subprocess's 50 blocks", bool(spawned) and
          spawned[0]["domains"].get("pyobj", {}).get("count", 0) >= 50, json.dumps(spawned)[:300])
    d = c.analyze("diff", root, "main", "exit", "--merge", "--json")
    dj = json.loads(d.stdout)
    check(tag + " diff --merge skips, with a note, the forked workers (no 'main' in them)",
          d.returncode == 0 and d.stderr.count("skipped") == 2 and len(dj["processes"]) == 2 and dj["skipped"] == 2,
          d.stderr + d.stdout[:300])
    d = c.analyze("diff", folder, "nosuch", "exit", check=False)
    check(tag + " diff over a directory where no capture has the point: one error, status 1",
          d.returncode == 1 and d.stderr.strip().splitlines()[-1].endswith("no capture has the points asked for"),
          d.stderr)


def by_line(sites, name):
    return {s["line"]: (s["bytes"], s["count"]) for s in sites if s["file"].endswith(name)}


def test_aggregated(c, tag):
    """--aggregate: the same program recorded as events and aggregated gives
    the same sites to the byte at the peak, at exit and between snapshots;
    the capture is a fraction of the size; a SIGKILL leaves the state of the
    last second; trend works on its snapshots; sampled too."""
    m = marks("aggregated.py")
    prog = os.path.join(PROGRAMS, "aggregated.py")
    ev, ag = c.capture("agg-events.pmem"), c.capture("agg.pmem")
    r1 = c.preload([prog], ev, PYTHONHASHSEED=0)
    r2 = c.preload([prog], ag, PYTHONHASHSEED=0, PYMEM_AGGREGATE=1)
    check(tag + " aggregated: the program runs unchanged", r1.stdout == r2.stdout == "done 2300\n"
          and r2.returncode == 0, r2.stderr[-300:])
    s1, s2 = c.json("summary", ev), c.json("summary", ag)
    check(tag + " aggregated: complete, same allocation and free counts (%d/%d)" % (s2["allocations"],
                                                                                   s1["allocations"]),
          s2["aggregated"] is True and s2["truncated"] is False and s2["end"] == "exit"
          and abs(s2["allocations"] - s1["allocations"]) <= 50 and abs(s2["frees"] - s1["frees"]) <= 50,
          json.dumps(s2)[:300])
    want = {"LEAK": (300 * (3000 + BYTES_HEADER), 300)}
    for what, args in (("peak", ["peak"]), ("exit", ["leaks"]), ("after-before", ["diff"])):
        points = ["before", "after"] if args == ["diff"] else []
        a = by_line(c.json(*(args + [ev] + points + ["--top", "0", "--by", "lineno"]))["sites"], "aggregated.py")
        b = by_line(c.json(*(args + [ag] + points + ["--top", "0", "--by", "lineno"]))["sites"], "aggregated.py")
        check(tag + " aggregated: %s: every site of the program equal to the event capture's (%d sites)"
              % (what, len(b)), a == b and len(b) >= 3, "events %s aggregated %s" % (a, b))
    leaks = by_line(c.json("leaks", ag, "--top", "0")["sites"], "aggregated.py")
    check(tag + " aggregated: the leak to the byte", leaks.get(m["LEAK"]) == want["LEAK"], str(leaks))
    mm = by_line(c.json("leaks", ag, "--top", "0", "--domain", "mmap")["sites"], "aggregated.py")
    check(tag + " aggregated: the mapping with a hole: 2 mappings of 56 pages in all",
          mm.get(m["MMAP"]) == (56 * 4096, 2), str(mm))
    pk1, pk2 = c.json("peak", ev), c.json("peak", ag)
    check(tag + " aggregated: peak %d B, events %d B" % (pk2["peak_bytes"], pk1["peak_bytes"]),
          abs(pk2["peak_bytes"] - pk1["peak_bytes"]) <= 0.001 * pk1["peak_bytes"]
          and by_line(pk2["sites"], "aggregated.py").get(m["PEAK"], (0,))[0] >= 400 * 20000)
    size1, size2 = os.path.getsize(ev), os.path.getsize(ag)
    check(tag + " aggregated: capture %d B, events %d B" % (size2, size1), size2 * 3 < size1)
    r = c.analyze("lines", ag, check=False)
    check(tag + " aggregated: lines refused in one line", r.returncode == 1 and "aggregated" in r.stderr
          and r.stderr.count("\n") == 1, r.stderr)

    # a SIGKILL leaves the state of the last second
    killed = c.capture("agg-killed.pmem")
    p = subprocess.Popen([c.python, os.path.join(PROGRAMS, "sleeper.py")], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=c.env(PYMEM_OUTPUT=killed, PYMEM_AGGREGATE=1), cwd=c.tmp)
    p.stdout.readline()
    time.sleep(2.5)
    p.kill()
    p.wait()
    held = by_line(c.json("leaks", killed, "--top", "0")["sites"], "sleeper.py")
    check(tag + " aggregated: SIGKILLed, the state of its last second is read",
          held.get(marks("sleeper.py")["HELD"]) == (200 * (5000 + BYTES_HEADER), 200), str(held))

    # trend over aggregated periodic snapshots
    t_out = c.capture("agg-trend.pmem")
    r = subprocess.run([c.pymem, "run", "--python", c.python, "-q", "--aggregate", "--snapshot-every", "0.05",
                        "-o", t_out, os.path.join(PROGRAMS, "trend.py")], capture_output=True, text=True,
                       timeout=120)
    per_s = float(r.stdout.split()[1]) if r.returncode == 0 and r.stdout.startswith("leak ") else 0
    t = c.json("trend", t_out, "--domain", "pyobj", "--top", "0")
    steady = [s for s in t["sites"] if s["class"] == "steady"]
    expected = per_s * (500 + BYTES_HEADER) * 60
    rate = steady[0]["rate_bytes_per_min"] if len(steady) == 1 else 0
    check(tag + " aggregated: trend finds the one leak, %.0f B/min (program: %.0f)" % (rate, expected),
          len(steady) == 1 and steady[0]["line"] == marks("trend.py")["LEAK"]
          and abs(rate - expected) <= 0.05 * expected, json.dumps(steady)[:300])

    # sampled and aggregated
    sa = c.capture("agg-sampled.pmem")
    c.preload([prog], sa, PYMEM_AGGREGATE=1, PYMEM_SAMPLE=16384, PYMEM_SAMPLE_SEED=7, PYTHONHASHSEED=0)
    top = [s for s in c.json("leaks", sa, "--top", "0", "--by", "lineno")["sites"]
           if s["file"].endswith("aggregated.py") and s["line"] == m["LEAK"]]
    truth = want["LEAK"][0]
    # One seed: a 95% interval misses 1 time in 20, so the bound is twice its
    # half-width (about 4 standard deviations); the intervals' coverage over
    # many seeds is tested on event captures (sampling.py).
    half = (top[0]["bytes_high"] - top[0]["bytes_low"]) / 2 if top else 0
    check(tag + " aggregated and sampled: the leak's estimate within twice its interval of the truth (%d B)" % truth,
          len(top) == 1 and abs(top[0]["bytes"] - truth) <= 2 * half and top[0]["samples"] > 10,
          json.dumps(top)[:400])


def test_temporaries(c, tag):
    """pymem temporaries: the line whose objects are freed at once, under
    both definitions; kept objects freed by the teardown are
    not temporaries."""
    m = marks("temporaries.py")
    out = c.capture("temps.pmem")
    r = c.preload([os.path.join(PROGRAMS, "temporaries.py")], out)
    check(tag + " temporaries.py runs", r.returncode == 0 and r.stdout == "200\n", r.stderr[-300:])
    want = (4000 * (3000 + BYTES_HEADER), 4000)
    for within in ("1", "50ms"):
        t = c.json("temporaries", out, "--within", within, "--top", "0")
        sites = {s["line"]: s for s in t["sites"] if s["file"].endswith("temporaries.py")}
        hot = sites.get(m["TEMP"], {})
        kept = sites.get(m["KEPT"], {})
        check(tag + " temporaries --within %s: 4000 of 4000 at the TEMP line, first; the kept ones not" % within,
              # up to 3.10, one small object more at the line (the loop's constant)
              hot.get("count") in (4000, 4001) and 0 <= hot.get("bytes", 0) - want[0] < 128
              and hot.get("allocations") == hot.get("count")
              and t["sites"][0] is hot and kept.get("count", 0) < 200 and t["temporaries"] >= 4000
              and t["allocations"] > t["temporaries"], json.dumps(hot)[:300] + json.dumps(kept)[:200])
    r = c.analyze("temporaries", out, "--within", "0", check=False)
    check(tag + " temporaries --within 0: one error line, status 2", r.returncode == 2 and
          r.stderr.count("\n") == 1, r.stderr)
    sampled = c.capture("temps-sampled.pmem")
    c.preload([os.path.join(PROGRAMS, "temporaries.py")], sampled, PYMEM_SAMPLE=4096)
    r = c.analyze("temporaries", sampled, check=False)
    check(tag + " temporaries of a sampled capture: refused in one line", r.returncode == 1
          and "sampled" in r.stderr and r.stderr.count("\n") == 1, r.stderr)


def test_trend(c, tag):
    """pymem trend over periodic snapshots: the true leak is the one steady
    site, at the rate the program measured itself; the cache plateaus and
    the batch buffer fluctuates."""
    m = marks("trend.py")
    out = c.capture("trend.pmem")
    r = subprocess.run([c.pymem, "run", "--python", c.python, "-q", "--snapshot-every", "0.05", "-o", out,
                        os.path.join(PROGRAMS, "trend.py")], capture_output=True, text=True, timeout=120)
    per_s = float(r.stdout.split()[1]) if r.returncode == 0 and r.stdout.startswith("leak ") else 0
    check(tag + " trend program runs", per_s > 0, r.stderr[-300:])
    t = c.json("trend", out, "--domain", "pyobj", "--top", "0")
    by_line = {s["line"]: s for s in t["sites"] if s["file"].endswith("trend.py")}
    steady = [s for s in t["sites"] if s["class"] == "steady"]
    leak = by_line.get(m["LEAK"], {})
    expected = per_s * (500 + BYTES_HEADER) * 60
    rate = leak.get("rate_bytes_per_min", 0)
    check(tag + " the leak is the only steady site, at %.0f B/min (program: %.0f)" % (rate, expected),
          len(steady) == 1 and steady[0] is leak and abs(rate - expected) <= 0.05 * expected,
          json.dumps([(s["file"], s["line"], s["class"]) for s in steady])[:300])
    check(tag + " the cache plateaus, the batch buffer fluctuates",
          by_line.get(m["CACHE"], {}).get("class") == "plateau"
          and by_line.get(m["BATCH"], {}).get("class") == "fluctuating",
          json.dumps({k: v["class"] for k, v in by_line.items()}))
    if c.version == (3, 12):
        folder = os.path.join(c.tmp, "trendrun")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        root = os.path.join(folder, "w.pmem")
        r = subprocess.run([c.pymem, "run", "--python", c.python, "-q", "--follow-fork", "--snapshot-every", "0.05",
                            "-o", root, os.path.join(PROGRAMS, "trend_workers.py")],
                           capture_output=True, text=True, timeout=120)
        rates = [float(l.split()[1]) for l in r.stdout.splitlines() if l.startswith("leak ")]
        t = c.json("trend", root, "--merge", "--domain", "pyobj", "--top", "0")
        steady = [s for s in t["sites"] if s["class"] == "steady"]
        expected = sum(rates) * (500 + BYTES_HEADER) * 60
        rate = steady[0]["rate_bytes_per_min"] if len(steady) == 1 else 0
        check(tag + " trend --merge over a master and 2 workers: %.0f B/min (programs: %.0f)" % (rate, expected),
              len(rates) == 3 and len(t["files"]) == 3 and len(steady) == 1 and steady[0]["line"] == m["LEAK"]
              and abs(rate - expected) <= 0.05 * expected, r.stderr[-300:] + json.dumps(steady)[:300])
    few = c.capture("trend-few.pmem")
    c.preload(["-c", "import pymem\nx = [bytes(100)]\npymem.snapshot('a')\npymem.snapshot('b')"], few)
    r = c.analyze("trend", few, check=False)
    check(tag + " trend with 2 snapshots: one error line, status 1",
          r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "at least 3 snapshots" in r.stderr,
          r.stderr)


def memory_cgroup():
    """A new memory cgroup under this process's own, as (directory, name of
    its limit file), or None where none can be made (no cgroup write access)."""
    try:
        lines = open("/proc/self/cgroup").read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        rel = rel.strip("/")
        if controllers == "" and line.startswith("0:"):
            base, limit = os.path.join("/sys/fs/cgroup", rel), "memory.max"
        elif "memory" in controllers.split(","):
            base, limit = os.path.join("/sys/fs/cgroup/memory", rel), "memory.limit_in_bytes"
        else:
            continue
        d = os.path.join(base, "pymem-test-%d" % os.getpid())
        try:
            os.mkdir(d)
            if not os.path.exists(os.path.join(d, limit)):
                os.rmdir(d)
                continue
            return d, limit
        except OSError:
            continue
    return None


def test_oom_snapshot(c, tag):
    """Near its memory limit the process gets an 'oom' snapshot, on disk
    before the SIGKILL: what filled memory is found at it."""
    m = marks("oom.py")
    out = c.capture("oom.pmem")
    r = c.preload([os.path.join(PROGRAMS, "oom.py"), "230"], out, PYMEM_MEMORY_LIMIT=200 * 1024 * 1024)
    kinds = [x["kind"] for x in c.json("snapshots", out)]
    check(tag + " killed near a given limit: an 'oom' snapshot", r.returncode == -9 and kinds.count("oom") == 1,
          "%s %s" % (r.returncode, kinds))
    s = site(c.json("leaks", out, "--at", "oom", "--top", "0")["sites"], m["FILL"], "oom.py")
    check(tag + " what filled memory is at the 'oom' snapshot: 1 MiB blocks past 90% of 200 MiB",
          s is not None and s["count"] >= 150 and s["bytes"] >= 150 * 1024 * 1024, json.dumps(s)[:300])
    agg = c.capture("oom-agg.pmem")
    r = c.preload([os.path.join(PROGRAMS, "oom.py"), "230"], agg, PYMEM_MEMORY_LIMIT=200 * 1024 * 1024,
                  PYMEM_AGGREGATE=1)
    s = site(c.json("leaks", agg, "--at", "oom", "--top", "0")["sites"], m["FILL"], "oom.py")
    check(tag + " aggregated: the 'oom' snapshot's state is on disk before the kill",
          r.returncode == -9 and s is not None and s["count"] >= 150 and s["bytes"] >= 150 * 1024 * 1024,
          json.dumps(s)[:300])
    out2 = c.capture("oom-off.pmem")
    c.preload([os.path.join(PROGRAMS, "oom.py"), "100"], out2, PYMEM_MEMORY_LIMIT=50 * 1024 * 1024,
              PYMEM_OOM_SNAPSHOT=0)
    snaps = c.json("snapshots", out2)
    check(tag + " PYMEM_OOM_SNAPSHOT=0: none", all(x["kind"] != "oom" for x in snaps), json.dumps(snaps)[:300])
    cg = memory_cgroup()
    if not cg:
        print("skip  %s oom snapshot in a real cgroup: cannot create one here" % tag)
        return
    d, limit = cg
    try:
        with open(os.path.join(d, limit), "w") as f:
            f.write(str(256 * 1024 * 1024))
        for extra, value in (("memory.memsw.limit_in_bytes", 256 * 1024 * 1024), ("memory.swap.max", 0)):
            if os.path.exists(os.path.join(d, extra)):
                with open(os.path.join(d, extra), "w") as f:
                    f.write(str(value))
        procs = os.path.join(d, "cgroup.procs")
        out3 = c.capture("oom-cgroup.pmem")

        def enter():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        r = subprocess.run([c.python, os.path.join(PROGRAMS, "oom.py"), "2000"], env=c.env(PYMEM_OUTPUT=out3),
                           capture_output=True, text=True, timeout=120, cwd=c.tmp, preexec_fn=enter)
        s = site(c.json("leaks", out3, "--at", "oom", "--top", "0")["sites"], m["FILL"], "oom.py")
        check(tag + " OOM-killed in a cgroup of 256 MiB: the 'oom' snapshot holds the fill (%s blocks)"
              % (s["count"] if s else 0), r.returncode == -9 and s is not None and s["count"] >= 150,
              "%s %s" % (r.returncode, json.dumps(s)[:200]))
    finally:
        try:
            os.rmdir(d)
        except OSError:
            pass


def test_export(c, tag):
    """pymem export: folded stacks, speedscope and CSV carry the same totals
    as the reports for the same point, and names that would break a format
    (';' in folded, quotes in CSV) come through as text."""
    import csv
    import io
    m = marks("leak.py")
    out = c.capture("export.pmem")
    c.preload([os.path.join(PROGRAMS, "leak.py")], out)
    folded = c.analyze("export", out, "--format", "folded", "--leaks").stdout.splitlines()
    leaks = c.json("leaks", out, "--by", "traceback", "--top", "0")
    total = sum(x["bytes"] for x in leaks["sites"])
    leak_lines = [l for l in folded if l.rsplit(" ", 1)[0].endswith("remember (%s:%d)"
                                                                    % (os.path.join(PROGRAMS, "leak.py"), m["LEAK"]))]
    check(tag + " export folded: the leaks' total, and the leak's stack with its bytes",
          sum(int(l.rsplit(" ", 1)[1]) for l in folded) == total and len(leak_lines) == 1
          and int(leak_lines[0].rsplit(" ", 1)[1]) == 1000 * (10000 + BYTES_HEADER), "\n".join(folded[:5]))
    ss = json.loads(c.analyze("export", out, "--format", "speedscope").stdout)
    peak = c.json("peak", out, "--by", "traceback", "--top", "0")
    names = [f["name"] for f in ss["shared"]["frames"]]
    check(tag + " export speedscope: bytes and blocks profiles, the peak's totals, frames by name",
          ss["$schema"].startswith("https://www.speedscope.app/") and [p["unit"] for p in ss["profiles"]] == ["bytes", "none"]
          and sum(ss["profiles"][0]["weights"]) == sum(x["bytes"] for x in peak["sites"]) == ss["profiles"][0]["endValue"]
          and "remember" in names and all(len(ss["profiles"][0]["samples"]) == len(ss["profiles"][0]["weights"]) for _ in [0]),
          json.dumps(ss)[:300])
    rows = list(csv.DictReader(io.StringIO(c.analyze("export", out, "--format", "csv", "--leaks").stdout)))
    row = [r for r in rows if r["file"].endswith("leak.py") and int(r["line"]) == m["LEAK"]]
    check(tag + " export csv: the leak's row", len(row) == 1 and int(row[0]["bytes"]) == 1000 * (10000 + BYTES_HEADER)
          and int(row[0]["count"]) == 1000, str(rows[:3]))
    odd = c.capture("export-odd.pmem")
    name = 'we;ird,"name\nx.py'
    c.preload(["-c", "exec(compile('def f():\\n    return [bytes(5000) for _ in range(20)]\\nkeep = f()\\n', %r, 'exec'))"
               % name], odd)
    rows = list(csv.DictReader(io.StringIO(c.analyze("export", odd, "--format", "csv", "--leaks").stdout)))
    folded = c.analyze("export", odd, "--format", "folded", "--leaks").stdout.splitlines()
    mine = [l for l in folded if "we:ird" in l]
    check(tag + " export: a file named with ; , \" and a newline stays one field and one frame",
          any(r["file"] == name.replace("\n", " ") and int(r["count"]) >= 20 for r in rows)
          and mine and all(any(re.fullmatch(r'\S+ \(we:ird,"name x\.py:\d+\)', f)
                               for f in l.rsplit(" ", 1)[0].split(";")) for l in mine), str(rows[:3]) + str(mine[:2]))
    r = c.analyze("export", out, "--format", "nonsense", check=False)
    check(tag + " export: an unknown format is bad usage", r.returncode == 2 and "--format" in r.stderr, r.stderr)
    # pprof, read by a real reader: go tool pprof (Debian golang-go)
    pb = os.path.join(c.tmp, "export.pb.gz")
    c.analyze("export", out, "--format", "pprof", "-o", pb)
    raw = subprocess.run(["go", "tool", "pprof", "-raw", pb], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, HOME=c.tmp, GOCACHE=os.path.join(c.tmp, "gocache")))
    totals, on = [0, 0, 0, 0], False
    for line in raw.stdout.splitlines():
        if line.startswith("Samples:"):
            on = True
        elif line.startswith("Locations"):
            break
        v = re.match(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+):", line)
        if on and v:
            totals = [a + int(b) for a, b in zip(totals, v.groups())]
    summ = c.json("summary", out)
    check(tag + " export pprof, read by go tool pprof: allocated and in use at the peak equal pymem's (%s)" % totals,
          raw.returncode == 0 and totals == [summ["allocations"], summ["total_allocated_bytes"],
                                             sum(x["count"] for x in peak["sites"]),
                                             sum(x["bytes"] for x in peak["sites"])] and totals[3] == summ["peak_bytes"],
          raw.stderr[-300:] + str(totals))
    top = subprocess.run(["go", "tool", "pprof", "-top", "-sample_index=inuse_space", pb], capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, HOME=c.tmp, GOCACHE=os.path.join(c.tmp, "gocache")))
    check(tag + " export pprof: -top names the leak's function", "remember" in top.stdout and "<unknown>" not in top.stdout,
          top.stdout[:600])


def test_plot(c, tag):
    """pymem plot: a standalone SVG (valid XML, no script) whose peak marker
    is the summary's peak, with every snapshot, its label as text."""
    import xml.etree.ElementTree as ET
    out = c.capture("plot.pmem")
    label = '</text><script>alert(1)</script>&'
    c.preload(["-c", "import pymem\nkeep = [bytes(1000) for _ in range(3000)]\npymem.snapshot(%r)\n"
               "del keep\nx = [bytes(100) for _ in range(100)]" % label], out)
    svg_path = os.path.join(c.tmp, "plot.svg")
    r = c.analyze("plot", out, "-o", svg_path, check=False)
    summ = c.json("summary", out)
    try:
        root = ET.parse(svg_path).getroot()
    except (ET.ParseError, OSError) as e:
        check(tag + " plot: the SVG is well-formed XML", False, "%s %s" % (e, r.stderr))
        return
    ns = "{http://www.w3.org/2000/svg}"
    peaks = [e for e in root.iter(ns + "circle") if e.get("class") == "peak"]
    titles = [t.text for g in root.iter(ns + "g") if g.get("class") == "snapshot" for t in g.iter(ns + "title")]
    check(tag + " plot: the peak marker is the summary's peak, every snapshot is there, no script",
          r.returncode == 0 and len(peaks) == 1 and int(peaks[0].get("data-bytes")) == summ["peak_bytes"]
          and int(peaks[0].get("data-time-ns")) == round(summ["peak_time_s"] * 1e9)
          and titles == [x["label"] for x in summ["snapshots"]] and label in titles
          and not list(root.iter(ns + "script")), "%s %s %s" % (r.stderr, titles, [p.attrib for p in peaks]))
    r = c.analyze("plot", out, "--domains", "-o", svg_path, check=False)
    lines = {e.get("class"): int(e.get("data-max-bytes")) for e in ET.parse(svg_path).getroot().iter(ns + "polyline")
             if (e.get("class") or "").startswith("domain-")}
    check(tag + " plot --domains: a line per domain; pyobj's highest holds the 3000 objects kept at once",
          r.returncode == 0 and sorted(lines) == ["domain-malloc", "domain-mmap", "domain-pymem", "domain-pyobj",
                                                  "domain-pyraw"]
          and 3000 * (1000 + BYTES_HEADER) <= lines["domain-pyobj"] <= summ["peak_bytes"], str(lines))


def test_lines(c, tag):
    """pymem lines: per line of the program's own file, bytes and blocks
    allocated, live at the peak and at exit, with the source text."""
    m = marks("leak.py")
    out = c.capture("lines.pmem")
    c.preload([os.path.join(PROGRAMS, "leak.py")], out)
    report = c.json("lines", out)
    files = [f for f in report["files"] if f["file"].endswith("leak.py")]
    lines = {l["line"]: l for l in files[0]["lines"]} if files else {}
    src = open(os.path.join(PROGRAMS, "leak.py")).read().splitlines()
    leak, churn = lines.get(m["LEAK"], {}), lines.get(m["CHURN"], {})
    size = 10000 + BYTES_HEADER

    def allocated(line, n):
        # Before 3.11 the first bytes() call makes the str "__bytes__" for
        # its special-method lookup (_PyUnicode_FromId, 58 bytes, freed at
        # once: CPython's own, at that line, as --native shows).
        extra = line.get("blocks", 0) - n
        return 0 <= extra <= (1 if c.version < (3, 11) else 0) and 0 <= line.get("bytes", 0) - n * size <= 64 * extra
    check(tag + " lines: the leak's line allocated 1000 blocks, all live at exit; the churn's 3000, none",
          allocated(leak, 1000) and leak.get("exit_bytes") == 1000 * size
          and allocated(churn, 3000) and churn.get("exit_bytes", 1) <= (
              64 if c.version >= (3, 13) else 0)  # 3.13: a recycled object re-attributed, as tracemalloc does
          and leak.get("source") == src[m["LEAK"] - 1] and files[0]["note"] is None, json.dumps(files)[:500])
    check(tag + " lines: only the program's files (no standard library, no frozen modules)",
          all(not f["file"].startswith("<") and "/lib/python3" not in f["file"] for f in report["files"]),
          str([f["file"] for f in report["files"]]))
    text = c.analyze("lines", out, "leak.py").stdout
    none = c.analyze("lines", out, "elsewhere.py", check=False)
    both = c.analyze("lines", out, "leak.py", "elsewhere.py", check=False)
    check(tag + " lines FILE: the file named, with its source; a file no allocation was made at: one line on "
          "stderr, status 1 when it is the only one named",
          text.split("\n", 1)[0].split(":")[0].endswith("/leak.py") and src[m["LEAK"] - 1].strip() in text
          and none.returncode == 1 and none.stdout == "" and len(none.stderr.splitlines()) == 1
          and "no allocation was made at elsewhere.py" in none.stderr
          and both.returncode == 0 and both.stdout == text and "at elsewhere.py" in both.stderr,
          text[:300] + none.stderr + both.stderr)


def chromium_dom(c, page, fragment="", screenshot=None):
    """The page's DOM after its scripts ran, in Debian's chromium, headless,
    offline (no network namespace needed: the page's CSP forbids requests)."""
    args = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + os.path.join(c.tmp, "chromium")]
    if screenshot:
        subprocess.run(args + ["--window-size=1300,900", "--screenshot=" + screenshot, "file://" + page],
                       capture_output=True, timeout=120)
    r = subprocess.run(args + ["--dump-dom", "file://" + page + fragment], capture_output=True, text=True,
                       timeout=120)
    return r.stdout


def test_flamegraph(c, tag):
    """pymem flamegraph in a real browser: the root is the peak, clicking a
    frame zooms to it, search finds a function, nothing leaves the page, and
    a name made of markup stays text."""
    if not shutil.which("chromium"):
        check(tag + " flamegraph: chromium is installed (scripts/install-deps.sh)", False)
        return
    m = marks("leak.py")
    out = c.capture("flame.pmem")
    c.preload([os.path.join(PROGRAMS, "leak.py")], out)
    page = os.path.join(c.tmp, "flame.html")
    r = c.analyze("flamegraph", out, "-o", page, check=False)
    html = open(page).read() if os.path.exists(page) else ""
    urls = set(re.findall(r"https?://[^\"' )]+", html)) - {"http://www.w3.org/2000/svg"}
    check(tag + " flamegraph: one self-contained page, no address of anything to fetch",
          r.returncode == 0 and "Content-Security-Policy" in html and not urls and "<script src" not in html,
          r.stderr + str(urls))
    shot = os.path.join(c.build, "tests", "flamegraph.png")
    dom = chromium_dom(c, page, "#selftest=remember", screenshot=shot)
    found = re.search(r'<pre id="selftest">([^<]*)</pre>', dom)
    st = json.loads(found.group(1).replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")) if found else {}
    peak = c.json("peak", out, "--by", "traceback", "--top", "0")
    total = sum(x["bytes"] for x in peak["sites"])
    check(tag + " flamegraph in chromium: the root is the peak (%s bytes)" % st.get("rootBytes"),
          st.get("rootBytes") == st.get("dataTotal") == total == peak["peak_bytes"], dom[-500:])
    check(tag + " flamegraph in chromium: a click zooms to the frame, the breadcrumb follows",
          st.get("zoomedTo") == "remember" and st.get("crumbs", "").endswith("remember (%s:%d)"
                                                                            % (os.path.join(PROGRAMS, "leak.py"), m["LEAK"]))
          and st.get("zoomBytes", 0) >= 1000 * (10000 + BYTES_HEADER), json.dumps(st))
    check(tag + " flamegraph in chromium: search finds the function and its share",
          st.get("searchBytes", 0) >= 1000 * (10000 + BYTES_HEADER) and "matches:" in st.get("searchText", ""),
          json.dumps(st))
    check(tag + " flamegraph: a screenshot is kept (%s)" % shot, os.path.exists(shot) and os.path.getsize(shot) > 10000)
    odd = c.capture("flame-odd.pmem")
    evil = "</script><img src=x onerror=alert(1)>"
    c.preload(["-c", "exec(compile('def f():\\n    return [bytes(5000) for _ in range(200)]\\nkeep = f()\\n', %r, 'exec'))"
               % evil], odd)
    page2 = os.path.join(c.tmp, "flame-odd.html")
    c.analyze("flamegraph", odd, "-o", page2, check=False)
    dom = chromium_dom(c, page2, "#selftest=f")
    found = re.search(r'<pre id="selftest">([^<]*)</pre>', dom)
    st = json.loads(found.group(1).replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")) if found else {}
    check(tag + " flamegraph: a file named like markup renders as text (no element made, the page still runs)",
          '<img src="x"' not in dom and st.get("zoomedTo") == "f"
          and evil in st.get("crumbs", ""), dom[:300] + json.dumps(st)[:300])
    grow = c.capture("flame-diff.pmem")
    c.preload([os.path.join(PROGRAMS, "growth.py")], grow)
    page3 = os.path.join(c.tmp, "flame-diff.html")
    c.analyze("flamegraph", grow, "--diff", "before", "after", "-o", page3, check=False)
    dom = chromium_dom(c, page3, "#selftest=<module>")
    found = re.search(r'<pre id="selftest">([^<]*)</pre>', dom)
    st = json.loads(found.group(1).replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")) if found else {}
    d = c.json("diff", grow, "before", "after", "--by", "traceback", "--top", "0")
    grew, at_b = sum(x["bytes_diff"] for x in d["sites"]), sum(x["bytes"] for x in d["sites"])
    dom = chromium_dom(c, page3, "#selftest=window:before:after")
    found = re.search(r'<pre id="selftest">([^<]*)</pre>', dom)
    win = json.loads(found.group(1).replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")) if found else {}
    at_end = sum(x["bytes"] for x in c.json("leaks", grow, "--at", "end", "--by", "traceback", "--top", "0")["sites"])
    live_b = sum(x["bytes"] for x in c.json("leaks", grow, "--at", "after", "--by", "traceback", "--top", "0")["sites"])
    check(tag + " flamegraph time window in chromium: before..after is live at 'after' (%s B) and grew by the "
          "diff's %s B; a drag across the chart is the end" % (win.get("windowBytes"), win.get("windowGrowth")),
          win.get("windowBytes") == live_b and win.get("windowGrowth") == grew and win.get("dragBytes") == at_end
          and win.get("dragGrowth") == at_end and "'after'" in win.get("banner", ""), json.dumps(win)[:400])
    thr = c.capture("flame-threads.pmem")
    c.preload(["-c", "import threading\nKEEP = []\ndef work(n):\n    for _ in range(n):\n        KEEP.append(bytes(1000))\n"
               "ts = [threading.Thread(target=work, args=(1000 * (k + 1),)) for k in range(3)]\n"
               "[t.start() for t in ts]\n[t.join() for t in ts]\n"], thr)
    page4 = os.path.join(c.tmp, "flame-threads.html")
    c.analyze("flamegraph", thr, "--leaks", "--split-threads", "-o", page4, check=False)
    dom = chromium_dom(c, page4, "#selftest=work")
    found = re.search(r'<pre id="selftest">([^<]*)</pre>', dom)
    th = json.loads(found.group(1).replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")) if found else {}
    sizes = sorted(t["bytes"] for t in th.get("threads", []))
    workers = sorted(t["bytes"] for t in th.get("threads", []) if not t["name"].startswith("thread 1:"))
    check(tag + " flamegraph --split-threads in chromium: a root per thread (%s), each worker's 1000, 2000 and 3000 "
          "objects under its own, the filter shows one" % sizes,
          len(sizes) == 4 and len(workers) == 3 and sum(sizes) == th.get("rootBytes")
          and all(k * 1000 * (1000 + BYTES_HEADER) <= w < k * 1000 * (1000 + BYTES_HEADER) + 100000
                  for k, w in zip((1, 2, 3), workers))
          and (th.get("filtered") or {}).get("bytes") in sizes, json.dumps(th)[:400])
    check(tag + " flamegraph --diff in chromium: widths are live at B (%s B), the root's growth is the diff's (%s B)"
          % (st.get("rootBytes"), st.get("rootGrowth")),
          st.get("rootBytes") == at_b and st.get("rootGrowth") == grew and grew >= 400 * (7777 + BYTES_HEADER),
          json.dumps(st)[:300])


def test_children_write_beside_the_root(c, tag):
    """A relative -o, and a child that changes directory before its first
    allocation: its capture is still beside its parent's."""
    sub = os.path.join(c.tmp, "elsewhere")
    os.makedirs(sub, exist_ok=True)
    out = c.capture("chdir.pmem")
    r = c.preload(["-c", "import os\nos.chdir(%r)\npid = os.fork()\nif pid == 0:\n"
                   "    x = [bytes(100) for _ in range(10)]\n    os._exit(0)\nos.waitpid(pid, 0)\n" % sub],
                  os.path.basename(out), PYMEM_FOLLOW_FORK=1)
    beside = glob.glob(out[:-5] + ".*.pmem")
    check(tag + " a child that changed directory writes beside its parent", r.returncode == 0 and len(beside) == 1
          and not glob.glob(os.path.join(sub, "*.pmem")), "%s %s" % (beside, r.stderr[-200:]))


def test_fork_from_a_thread(c, tag):
    m = marks("fork_thread.py")
    out = c.capture("forkthread.pmem")
    try:
        r = c.preload([os.path.join(PROGRAMS, "fork_thread.py")], out, timeout=60, PYMEM_FOLLOW_FORK=1)
    except subprocess.TimeoutExpired:
        check(tag + " fork from a thread under --follow-fork: no hang", False, "timed out")
        return
    check(tag + " fork from a thread under --follow-fork: no hang, same output",
          r.returncode == 0 and r.stdout == "child status 0\ndone\n", r.stderr[-300:])
    children = [p for p in glob.glob(out[:-5] + ".*.pmem")]
    summ = c.json("summary", children[0]) if len(children) == 1 else {}
    check(tag + " the child's capture is complete and knows its Python", summ.get("end") == "exit"
          and summ.get("truncated") is False and summ.get("python", "").startswith("%d.%d" % c.version),
          "%s %s" % (children, json.dumps(summ)[:300]))
    # Its first thread is gone when it ends: /proc/self reads as empty then.
    heap = summ.get("heap") or {}
    check(tag + " the child's RSS and heaps measured after its first thread ended",
          summ.get("max_rss_bytes", 0) > 4 << 20 and heap.get("rss", 0) > 4 << 20
          and heap.get("main_heap_rss", 0) > 0, json.dumps(heap)[:300])
    s = site(c.json("leaks", children[0], "--top", "0")["sites"], m["CHILD"], "fork_thread.py") if children else None
    check(tag + " the child's blocks at their line", blocks_at(c, s, 100, 1000 + BYTES_HEADER, domain="pyobj"),
          json.dumps(s)[:300])


def test_fork_leaves_output_alone(c, tag):
    """Python 3.12+ warns at os.fork() when the process has other threads:
    pymem's own must not count."""
    for follow in ("0", "1"):
        for flags in (["-W", "error"], []):
            out = c.capture("forkquiet-%s%d.pmem" % (follow, len(flags)))
            r = c.preload(flags + [os.path.join(PROGRAMS, "fork_quiet.py")], out, PYMEM_FOLLOW_FORK=follow)
            check(tag + " os.fork%s%s: no warning, same output" % (" under -W error" if flags else "",
                                                                  " with --follow-fork" if follow == "1" else ""),
                  r.returncode == 0 and r.stdout == "child 7\n" and r.stderr == "", r.stderr[-300:])


def test_reentered_stacks(c, tag):
    """Every allocation's whole stack, where the inner frames repeat at the
    same addresses and only an outer frame 150 below differs."""
    m = marks("reentered.py")
    out = c.capture("reentered.pmem")
    r = c.preload([os.path.join(PROGRAMS, "reentered.py")], out, PYMEM_STACK_DEPTH=400)
    check(tag + " reentered.py runs", r.returncode == 0 and r.stdout == "147\n", r.stderr[-300:])
    sites = c.json("leaks", out, "--top", "0", "--by", "traceback")["sites"]

    def stacks_at(line, size):
        found = {}
        for s in sites:
            f = s["stack"]
            if f and f[0]["line"] == line and f[0]["file"].endswith("reentered.py"):
                found[tuple(x["line"] for x in f if x["file"].endswith("reentered.py"))] = s["count"]
        return found

    leaf = stacks_at(m["LEAF"], 1111)
    want = {(m["LEAF"],) + (m["DOWN"],) * 150 + (m[o], m["OUTER_CALL"]): 40 for o in ("OUTER_A", "OUTER_B")}
    check(tag + " same inner frames under two outer lines, 150 frames below: 40 blocks each, whole stacks",
          leaf == want, "%d stacks: %s" % (len(leaf), sorted((len(k), k[-3:], v) for k, v in leaf.items())))
    gen = stacks_at(m["GEN"], 2222)
    want = {(m["GEN"], m["CONSUME_" + x], m["CONSUME_CALL"]): 30 for x in "AB"}
    check(tag + " a generator resumed under two lines: 30 blocks at each", gen == want, str(gen))
    other = stacks_at(m["OTHER_LEAF"], 3333)
    want = {}
    for depth in (3, 150, 3, 149, 150, 3):
        k = (m["OTHER_LEAF"],) + (m["OTHER_DOWN"],) * depth + (m["VARYING"], m["VARYING_CALL"])
        want[k] = want.get(k, 0) + 1
    check(tag + " recursion depths 3, 150, 3, 149, 150, 3: one stack each, as deep as it was", other == want,
          str(sorted((len(k), v) for k, v in other.items())))
    # The same under a depth limit of 64: the deep stacks keep their 57 to 64
    # innermost frames (the cut moves in steps of 8), the shallow ones all.
    out = c.capture("reentered64.pmem")
    r = c.preload([os.path.join(PROGRAMS, "reentered.py")], out, PYMEM_STACK_DEPTH=64)
    sites = c.json("leaks", out, "--top", "0", "--by", "traceback")["sites"]
    cut = {}
    for s in sites:
        f = s["stack"]
        if f and f[0]["line"] in (m["LEAF"], m["OTHER_LEAF"]) and f[0]["file"].endswith("reentered.py"):
            truncated = f[-1]["file"] == "<truncated>"
            lines = tuple(x["line"] for x in f if x["file"].endswith("reentered.py"))
            cut[(lines[0], len(lines), truncated)] = cut.get((lines[0], len(lines), truncated), 0) + s["count"]
    leaf = [(n, t, v) for (l, n, t), v in cut.items() if l == m["LEAF"]]
    shallow = cut.get((m["OTHER_LEAF"], 1 + 3 + 2, False), 0)
    deep = sum(v for (l, n, t), v in cut.items() if l == m["OTHER_LEAF"] and t and 57 <= n <= 64)
    check(tag + " depth limit 64: the deep stacks cut to their 57-64 innermost frames, the shallow ones whole",
          r.returncode == 0 and sum(v for _, _, v in leaf) == 80 and all(t and 57 <= n <= 64 for n, t, _ in leaf)
          and shallow == 3 and deep == 3, str(sorted(cut.items())))


# The ways the stack walk runs: with the frame watch where the Python has
# it, in window mode without it, and sampled (every block, with sampled
# mode's frame cache, which stops at 1,024 frames).
WALK_MODES = [("", {}), (", --frame-watch off", {"PYMEM_FRAME_WATCH": "0"}),
              (", sampled (every block: a 2-byte mean)", {"PYMEM_SAMPLE": "2", "PYMEM_FRAME_WATCH": "auto"})]


def test_deep_cached(c, tag):
    """A chain of 1,500 frames, allocating at every level on the way down, is
    held by the frame cache (past its first 1,024 entries), with the frame
    watch and without it (3.8, --frame-watch off: walks then check only the
    frames a stack can keep): each stack is cut as the cache cuts, by steps
    of 16 (an eighth of the depth limit) from the outermost frame, never the
    walk without the cache's innermost 128. The chain at the leaf is
    <module> and 1,501 calls of down: 1,502 frames, cut at 1,376, 126 kept;
    at level n of the way back up, 1,502 - n frames, cut at the first
    multiple of 16 from 1,374 - n: 114 to 126 kept. In sampled mode the cache
    stops at 1,024 frames: the leaf's stack is the walk without it, 128
    frames (the stacks on the way up are either, by how many walks came
    since)."""
    m = marks("deep_cached.py")

    def stacks(out):
        got = {}
        for s in c.json("leaks", out, "--top", "0", "--by", "traceback")["sites"]:
            f = s["stack"]
            if not f or not f[0]["file"].endswith("deep_cached.py") or f[0]["line"] not in (m["LEAF"], m["UP"]):
                continue
            key = (f[0]["line"], sum(1 for x in f if x["file"].endswith("deep_cached.py")))
            got[key] = got.get(key, 0) + s["count"]
        return got

    def want(cached):
        out = {}
        for n in range(0, 1501, 100):
            frames = 1502 - n
            if frames <= 128:
                kept = frames
            elif cached:
                kept = frames - (frames - 128 + 15) // 16 * 16
            else:
                kept = 128
            key = (m["LEAF"] if n == 0 else m["UP"], kept)
            out[key] = out.get(key, 0) + 40
        return out

    for (label, env), cached in zip(WALK_MODES, (True, True, False)):
        out = c.capture("deep-cached.pmem")
        r = c.preload([os.path.join(PROGRAMS, "deep_cached.py")], out, **env)
        got = stacks(out) if r.returncode == 0 else {}
        if cached:
            ok, rule = got == want(True), "every stack cut by the cache's rule (126 frames at the leaf)"
        else:
            leaf = {k: v for k, v in got.items() if k[0] == m["LEAF"]}
            up = {k: v for k, v in got.items() if k[0] == m["UP"]}
            either = set(want(True)) | set(want(False))
            ok = leaf == {(m["LEAF"], 128): 40} and sum(up.values()) == 600 and set(up) <= either
            rule = "the leaf's stack read without the cache (128 frames)"
        check(tag + " a 1,500-frame chain%s: the program runs, %s" % (label, rule),
              r.returncode == 0 and r.stdout == "640\n" and ok,
              "got %s %s" % (sorted(got.items()), r.stderr[-300:]))


def test_window_edge(c, tag):
    """The outermost frame a cut stack keeps (the 128th from the top) is at
    another line in every other round, under 127 frames pushed again at the
    same addresses: each round's stack shows its own line, with the frame
    watch and without it (3.8, --frame-watch off, sampled mode), whose walks
    check no frame below the ones a stack can keep. One frame fewer checked
    would give both rounds the first one's stack."""
    m = marks("window_edge.py")
    chain = (m["LEAF"],) + (m["CHAIN"],) * 126
    want = {(chain + (m["A"],), True): 20, (chain + (m["B"],), True): 20}
    for label, env in WALK_MODES:
        out = c.capture("window-edge.pmem")
        r = c.preload([os.path.join(PROGRAMS, "window_edge.py")], out, **env)
        got = {}
        for s in c.json("leaks", out, "--top", "0", "--by", "traceback")["sites"] if r.returncode == 0 else []:
            f = s["stack"]
            if f and f[0]["file"].endswith("window_edge.py") and f[0]["line"] == m["LEAF"]:
                key = (tuple(x["line"] for x in f if x["file"].endswith("window_edge.py")),
                       f[-1]["file"] == "<truncated>")
                got[key] = got.get(key, 0) + s["count"]
        check(tag + " the 128th frame from the top at two lines%s: 20 blocks under each, 128 frames kept" % label,
              r.returncode == 0 and r.stdout == "40\n" and got == want,
              "got %s %s" % (sorted((len(k[0]), k[0][-2:], k[1], v) for k, v in got.items()), r.stderr[-300:]))


def test_cut_moves(c, tag):
    """Stacks cut to their innermost frames while the cut moves with the
    depth, over recursions whose lines differ from round to round: each
    kept block's stack, as pymem has it, is the innermost part of the stack
    the program saw (sys._getframe, recorded with the block; its size tells
    which): whole up to 128 frames, else 113 to 128 of them under the
    "<truncated>" marker. With the frame watch and without it (window mode),
    sampled (every block), and under a depth limit of 64 (57 to 64 kept)."""
    m = marks("cut_moves.py")
    runs = [(label, env, 128) for label, env in WALK_MODES] + [(", --stack-depth 64", {"PYMEM_STACK_DEPTH": "64"}, 64)]
    for label, env, depth in runs:
        out = c.capture("cut-moves.pmem")
        fewest = depth - depth // 8 + 1
        r = c.preload([os.path.join(PROGRAMS, "cut_moves.py"), str(fewest)], out, **env)
        if r.returncode != 0:
            check(tag + " cut_moves.py runs%s" % label, False, r.stderr[-300:])
            continue
        truth = json.loads(r.stdout)
        got, wrong = [0] * len(truth["stacks"]), []
        for s in c.json("leaks", out, "--top", "0", "--by", "traceback")["sites"]:
            f = s["stack"]
            if not f or not f[0]["file"].endswith("cut_moves.py") or f[0]["line"] != m["MAKE"]:
                continue
            i = s["bytes"] // s["count"] - truth["base"] - 64
            lines = [x["line"] for x in f if x["file"].endswith("cut_moves.py")]
            cut = f[-1]["file"] == "<truncated>"
            seen = truth["stacks"][i] if 0 <= i < len(got) and s["bytes"] % s["count"] == 0 else []
            if not any(lines == w[:len(lines)] and (fewest <= len(lines) <= depth < len(w) if cut else lines == w)
                       for w in seen):
                wrong.append((i, len(lines), cut, sorted(len(w) for w in seen)[:3]))
                continue
            got[i] += s["count"]
        check(tag + " %d stacks%s: each block's the innermost part of the stack the program saw" %
              (len(got), label), not wrong and got == truth["counts"],
              "wrong %s, %d of %d blocks" % (wrong[:5], sum(got), sum(truth["counts"])))


def test_beyond_frame_cache(c, tag):
    """Chains deeper than the frame cache (8,192 frames): the walks then do
    without it for a while. Deep, shallow and middling stacks in turn, each
    as it is: the shallow ones whole, the deep and middling ones cut to
    their 113-128 innermost frames (128 by the walk without the cache; the
    cached one cuts in steps of 16 from the outermost), which makes them one
    site when the cut falls alike. Before 3.11, CPython makes a block of its
    own (48 bytes, tracemalloc puts it there too) at the leaf's line once
    the recursion first goes 9,000 deep."""
    m = marks("beyond_cache.py")
    out = c.capture("beyond-cache.pmem")
    r = c.preload([os.path.join(PROGRAMS, "beyond_cache.py")], out)
    check(tag + " chains beyond the frame cache: the program runs", r.returncode == 0 and r.stdout == "180\n",
          r.stdout + r.stderr[-500:])
    cut, whole, other = [0, 0], [0, 0], []
    for s in c.json("leaks", out, "--top", "0", "--by", "traceback")["sites"]:
        f = s["stack"]
        lines = tuple(x["line"] for x in f if x["file"].endswith("beyond_cache.py"))
        if not lines or lines[0] not in (m["LEAF"], m["SHALLOW"]) or m["WARM"] in lines:
            continue
        if lines == (m["SHALLOW"],) and f[-1]["file"] != "<truncated>":
            whole = [whole[0] + s["count"], whole[1] + s["bytes"]]
        elif lines == (m["LEAF"],) + (m["DOWN"],) * (len(lines) - 1) and 113 <= len(lines) <= 128 \
                and f[-1]["file"] == "<truncated>":
            cut = [cut[0] + s["count"], cut[1] + s["bytes"]]
        else:
            other.append((lines[:3], len(lines), s["count"]))
    h = BYTES_HEADER
    leaves = [120, 60 * (1111 + h) + 60 * (3333 + h)]
    if c.version < (3, 11):
        leaves = [121, leaves[1] + 48]
    check(tag + " chains beyond the frame cache: 60 blocks each of the 9,000-deep and 200-deep stacks, cut; 60 of the"
          " shallow one, whole", (cut, whole, other) == (leaves, [60, 60 * (2222 + h)], []),
          str((cut, whole, other[:5])))


REENTRY = 10000  # added to reentry.py's lines in a stack, to tell them from the program's


def reentry_marks():
    return {k: REENTRY + v for k, v in marks("reentry.py").items()}


def reentry_want(m, returns):
    """The blocks a program that runs reentry.py's cases holds (`m`: its
    marks), by stack: the lines of both files, innermost first, reentry.py's
    plus REENTRY; as (how many, size of each). `returns`: the program's own
    cases of by_return, as (the lines it was called from, rounds, size)."""
    r = reentry_marks()
    leaf = (r["LEAF"],) + (r["DOWN"],) * 120
    want = {}  # 33 bytes of header in each bytes object
    for x in "AB":
        want[(r["RAISE_LEAF"],) + (r["RAISE_DOWN"],) * 120 + (r["UNWIND_" + x], m["UNWIND_CALL"])] = (20, 2222 + 33)
        want[(r["GEN_LEAF"],) + (r["GEN_DOWN"],) * 60 + (r["YIELD_" + x], m["YIELD_CALL"])] = (20, 3333 + 33)
        for outer, rounds, size in [((m["PLAIN"],), 20, 1111), ((r["SETTRACE"], m["SETTRACE_CALL"]), 10, 5555)] + returns:
            want[leaf + (r["RETURN_" + x],) + outer] = (rounds, size + 33)
    return want


def reentry_found(c, out, program, want):
    """What the capture holds at the leaves of `want`'s stacks, keyed as
    reentry_want, counted in the case's size (3.13 may re-attribute a small
    recycled object there, as tracemalloc does). Before 3.11, the OBJ
    domain's alone: the bytes objects (CPython also makes a PyMem block at
    the first leaf there)."""
    leaves = {k[0] for k in want}
    found = {}
    for s in c.json("leaks", out, "--top", "0", "--by", "traceback")["sites"]:
        ours = [x for x in s["stack"] if x["file"].endswith(("/reentry.py", "/" + program))]
        if not ours or ours[0] is not s["stack"][0]:
            continue
        key = tuple(x["line"] + (REENTRY if x["file"].endswith("/reentry.py") else 0) for x in ours)
        if key[0] in leaves:
            size = want.get(key, (0, 1))[1]
            held = s["bytes"] if c.version >= (3, 11) else s["domains"].get("pyobj", {}).get("bytes", 0)
            found[key] = (found.get(key, (0, size))[0] + held // size, size)
    return found


def test_frame_watch(c, tag):
    """The frame watch (3.12+): a walk reads only the frames above the lowest
    that can have run since the last allocation, as counted through
    sys.monitoring. Every way a frame leaves, each re-entering the same
    frames at the same addresses under another outer line far below: whole
    stacks, exact counts, with the watch on from the start, switched on by
    deep stacks, and off; the program clearing pymem's events or
    unregistering its callback behind its wrappers; and pymem's tool id is
    the program's on demand, whichever of sys.monitoring's functions names
    it."""
    if c.version < (3, 12):
        return
    m = marks("watched.py")
    want = reentry_want(m, [((m[name], m[call]), 10, size) for name, call, size in (
        ("OTHER_TOOL", "OTHER_CALL", 4444), ("MUTED", "MUTE_CALL", 9999), ("HIJACKED", "HIJACK_CALL", 7777),
        ("SILENCED", "SILENCE_CALL", 8888))] + [((m["TAKEN"],), 10, 6666)])
    for mode, args, holder in (("1", [], "pymem"), ("auto", ["warm"], "pymem"), ("0", ["warm"], "None")):
        out = c.capture("watched-%s-%d.pmem" % (mode, len(args)))
        r = c.preload([os.path.join(PROGRAMS, "watched.py")] + args, out, PYMEM_STACK_DEPTH=400,
                      PYMEM_FRAME_WATCH=mode)
        what = "%s PYMEM_FRAME_WATCH=%s%s:" % (tag, mode, " after deep stacks" if args else "")
        check(what + " the program runs, tool id 4 held by %s but shown free, then given to the program, set_events"
              " on it refused as without pymem" % holder,
              r.returncode == 0 and r.stdout == "241 %s free tool 4 is not in use\n" % holder,
              r.stdout + r.stderr[-500:])
        found = reentry_found(c, out, "watched.py", want)
        check(what + " return, unwinding, yield from, another tool's and settrace's allocating callbacks, callback"
              " unregistered, id taken back: every block under its whole stack", found == want,
              "%d stacks: %s" % (len(found), sorted((len(k), k[-3:], v) for k, v in found.items())))


def test_frame_evaluator(c, tag):
    """The frame watch on 3.9 to 3.11, whose frame evaluator (PEP 523) sees the
    pops: every way a frame leaves, each re-entering the same frames at the
    same addresses under another outer line far below: whole stacks, exact
    counts, with the watch on from the start, switched on from inside frames
    that began before it (one returning unseen, called again from another
    line; its caller returning unseen, another function called at its
    address from another line), and off; the program's own evaluator in its
    place, then CPython's put back by the program (pymem's is not set
    again); and recursions that would take pymem's evaluator to the end of
    the C stack (a 256 KiB thread stack, 20,000 frames), which run."""
    if not (3, 9) <= c.version < (3, 12):
        return
    m = marks("evaluated.py")
    own = "own ran" if c.version >= (3, 11) else "cpython's"  # 3.11's _testinternalcapi has an evaluator
    want = reentry_want(m, [((m["OWN"], m["OWN_CALL"]), 10, 4444), ((m["RESTORED"],), 10, 9999)])
    deep = dict(want)
    # 400 frames kept of 20,000 and of 1,005 (four of them threading's, outermost)
    deep[(m["DEEP_LEAF"],) + (m["DEEP_DOWN"],) * 399] = (2, 6666 + 33)
    shared = reentry_marks()
    deep[(shared["LEAF"],) + (shared["DOWN"],) * 395] = (1, 7777 + 33)
    warm = dict(want)
    for x in "AB":
        warm[(m["WARM_LEAF"], m["WARM_" + x], m["WARM_CALL"])] = (10, 8888 + 33)
    warm[(m["AFTER_LEAF"], m["AFTER_CALL"])] = (1, 5151 + 33)
    for mode, args, printed, wanted in (("1", [], "181 %s on off" % own, want),
                                        ("auto", ["warm"], "202 %s on off" % own, warm),
                                        ("1", ["deep"], "184 %s off off" % own, deep),  # 3.11 only
                                        ("0", ["warm"], "202 %s off off" % own, warm)):
        if args == ["deep"] and c.version < (3, 11):
            continue  # Python calls recurse in C there, with or without pymem
        out = c.capture("evaluated-%s-%s.pmem" % (mode, "-".join(args)))
        r = c.preload([os.path.join(PROGRAMS, "evaluated.py")] + args, out, PYMEM_STACK_DEPTH=400,
                      PYMEM_FRAME_WATCH=mode)
        what = "%s PYMEM_FRAME_WATCH=%s%s:" % (tag, mode, "".join(" " + a for a in args))
        check(what + " the program runs, its own evaluator too; pymem's evaluator %s before it, not after" %
              ("set" if printed.endswith("on off") else "not"),
              r.returncode == 0 and r.stdout == printed + "\n", r.stdout + r.stderr[-500:])
        found = reentry_found(c, out, "evaluated.py", wanted)
        check(what + " return, unwinding, yield from, settrace's allocating callbacks, the program's evaluator and"
              " CPython's put back%s: every block under its whole stack" % (", deep recursions" if args == ["deep"] else ""),
              found == wanted, "%d stacks: %s" % (len(found), sorted((len(k), k[-3:], v) for k, v in found.items())))


def test_frame_watch_phases(c, tag):
    """The frame watch by measurement (auto, 3.9+): started by deep
    allocations, stopped when many calls between two allocations cost more
    than it spares, started again by deep allocations; every block under its
    whole stack across the switches. Before 3.11 each of those calls
    allocates (its frame object), a walk each, which the watch spares: it
    stays on."""
    if c.version < (3, 9):
        return
    m = marks("watch_phases.py")
    out = c.capture("watch-phases.pmem")
    r = c.preload([os.path.join(PROGRAMS, "watch_phases.py")], out, PYMEM_FRAME_WATCH="auto")
    states = "on off on" if c.version >= (3, 11) else "on on on"
    check(tag + " frame watch by measurement: on for deep allocations, %s for many calls between them, on again" %
          states.split()[1], r.returncode == 0 and r.stdout == "200 %s\n" % states, r.stdout + r.stderr[-500:])
    want = {}
    for phase, calls, rounds in (("DEEP1", 0, 20), ("CALLS", 60, 20), ("DEEP2", 0, 60)):
        for x in "AB":
            want[(m["LEAF"],) + (m["DOWN"],) * 101 + (m[x], m[phase])] = (rounds, 1111 + calls + 33)
    found = {}
    for s in c.json("leaks", out, "--top", "0", "--by", "traceback")["sites"]:
        key = tuple(x["line"] for x in s["stack"] if x["file"].endswith("watch_phases.py"))
        if key and key[0] == m["LEAF"]:
            size = want.get(key, (0, 1))[1]
            found[key] = (found.get(key, (0, size))[0] + s["bytes"] // size, size)
    check(tag + " frame watch by measurement: every block under its whole stack across the switches", found == want,
          "%d stacks: %s" % (len(found), sorted((len(k), k[-2:], v) for k, v in found.items())))
    # sampled (here one sample per 64 bytes, walks as deep as unsampled ones), auto never starts it
    r = c.preload([os.path.join(PROGRAMS, "watch_phases.py")], c.capture("watch-phases-sampled.pmem"),
                  PYMEM_FRAME_WATCH="auto", PYMEM_SAMPLE="64")
    check(tag + " frame watch by measurement, sampled: never on", r.returncode == 0 and r.stdout == "200 off off off\n",
          r.stdout + r.stderr[-500:])


def test_frame_watch_own(c, tag):
    """The ints CPython makes only to call the frame watch's callback (the
    offsets of returns and yields far into their code) are pymem's, not the
    program's: none at those lines with the watch on; and the same ints are
    the program's when its own profile function asks for the same events."""
    if c.version < (3, 12):
        return
    m = marks("watch_own.py")
    for args, want in (([], {}), (["profiled"], {m["RETURN"]: 20000, m["YIELD"]: 40000})):
        out = c.capture("watch-own-%d.pmem" % len(args))
        r = c.preload([os.path.join(PROGRAMS, "watch_own.py")] + args, out, PYMEM_FRAME_WATCH=1)
        what = tag + " frame watch on, %s: " % ("under sys.setprofile" if args else "alone")
        check(what + "the program runs", r.returncode == 0 and r.stdout == "done\n", r.stdout + r.stderr[-500:])
        found = {s["line"]: s["allocations"] for s in c.json("temporaries", out, "--by", "lineno", "--top", "0")["sites"]
                 if s["file"].endswith("watch_own.py") and s["line"] in (m["RETURN"], m["YIELD"])}
        check(what + "allocations at the returns and yields: %s" % (want or "none, as without pymem"), found == want,
              str(found))


def test_frame_watch_early_holder(c, tag):
    """A program that kept sys.monitoring's use_tool_id from its start takes
    the id pymem's watch took since (3.12+): it gets it, as without pymem."""
    if c.version < (3, 12):
        return
    out = c.capture("watch-early.pmem")
    r = c.preload([os.path.join(PROGRAMS, "watch_early.py")], out, PYMEM_FRAME_WATCH="auto")
    check(tag + " frame watch started after the program kept use_tool_id: id 4 held by pymem, then the program's",
          r.returncode == 0 and r.stdout == "pymem watch_early.py\n", r.stdout + r.stderr[-500:])
    # pymem's wrappers in front of sys.monitoring's functions show the same signatures
    show = ("import inspect, sys; print([(n, str(inspect.signature(getattr(sys.monitoring, n))))"
            " for n in sorted(dir(sys.monitoring)) if callable(getattr(sys.monitoring, n))"
            " and not isinstance(getattr(sys.monitoring, n), type)])")
    plain = subprocess.run([c.python, "-c", show], capture_output=True, text=True)
    out = c.capture("watch-signatures.pmem")
    r = c.preload(["-c", show], out, PYMEM_FRAME_WATCH="auto")
    check(tag + " sys.monitoring's functions behind pymem's wrappers: the same signatures",
          r.returncode == 0 and plain.returncode == 0 and r.stdout == plain.stdout and "tool_id" in r.stdout,
          r.stdout + r.stderr[-300:] + " against " + plain.stdout)


def test_frame_watch_threads(c, tag):
    """The frame watch with five threads re-entering deep recursions while
    the interpreter switches between them: each block under its own thread's
    whole stack (3.9+)."""
    if c.version < (3, 9):
        return
    m = marks("watched_threads.py")
    out = c.capture("watched-threads.pmem")
    r = c.preload([os.path.join(PROGRAMS, "watched_threads.py")], out, PYMEM_STACK_DEPTH=400, PYMEM_FRAME_WATCH=1)
    check(tag + " frame watch, five threads: the program runs", r.returncode == 0 and r.stdout == "3000\n",
          r.stdout + r.stderr[-500:])
    found = {}
    for s in c.json("leaks", out, "--top", "0", "--by", "traceback")["sites"]:
        f = [x["line"] for x in s["stack"] if x["file"].endswith("watched_threads.py")]
        if f and f[0] in (m["LEAF"], m["RAISE_LEAF"]):
            size = 1000 + 33 if f[0] == m["LEAF"] else 2000 + 33
            # (leaf, frames of the recursion, the line it was entered from, run by the main thread)
            key = (f[0], len(f) - 3 if f[-1] == m["MAIN"] else len(f) - 2, f[-2] if f[-1] == m["MAIN"] else f[-1],
                   f[-1] == m["MAIN"])
            found[key] = found.get(key, 0) + s["bytes"] // size  # 3.13 may re-attribute a small recycled object
    want = {}
    for main, n in ((False, 4 * 200), (True, 200)):
        for line in "AB":
            want[(m["LEAF"], 100, m[line], main)] = n
        want[(m["RAISE_LEAF"], 80, m["C"], main)] = n
    check(tag + " frame watch, five threads: every block under its thread's whole stack", found == want,
          str(sorted(found.items())))


def test_greenlet_stacks(c, tag):
    """Greenlets switch the thread's frame chain under pymem's frame cache:
    each allocation must carry its own greenlet's whole chain."""
    if subprocess.run([c.python, "-c", "import greenlet"], capture_output=True).returncode != 0:
        print("skip  %s greenlets: not importable by %s" % (tag, c.python))
        return
    m = marks("greenlets.py")
    out = c.capture("greenlets.pmem")
    r = c.preload([os.path.join(PROGRAMS, "greenlets.py")], out)
    sites = c.json("leaks", out, "--top", "0", "--by", "traceback")["sites"]
    stacks = {}
    for s in sites:
        lines = tuple(x["line"] for x in s["stack"] if x["file"].endswith("greenlets.py"))
        if lines and lines[0] in (m["A"], m["B"]):
            stacks[lines] = stacks.get(lines, 0) + s["count"]
    a = (m["A"],) + (m["DOWN_A"],) * 5 + (m["RUN_A"],)
    b = (m["B"],) + (m["DOWN_B"],) * 20 + (m["RUN_B"],)
    # line A also holds the list's growth (a block or so)
    check(tag + " greenlets switching after every allocation: each block under its own greenlet's chain",
          r.returncode == 0 and set(stacks) == {a, b} and 300 <= stacks[a] <= 303 and stacks[b] == 300,
          str(sorted((len(k), k[:2], v) for k, v in stacks.items())))


def test_stack_depth_and_generators(c, tag):
    m = marks("deep.py")
    out = c.capture("deep.pmem")
    r = c.preload([os.path.join(PROGRAMS, "deep.py")], out)
    check(tag + " deep.py runs", r.returncode == 0 and r.stdout == "1 3\n", r.stderr)
    sites = c.json("leaks", out, "--top", "0")["sites"]
    s = site(sites, m["BOTTOM"], "deep.py")
    frames = s["stack"] if s else []
    check(tag + " full deep stack (default depth 128)", s is not None and len(frames) == 102
          and frames[0]["line"] == m["BOTTOM"] and all(f["line"] == m["RECURSE"] for f in frames[1:101]),
          "%d frames" % len(frames))
    g = site(sites, m["GEN"], "deep.py")
    check(tag + " generator frame over its consumer", blocks_at(c, g, 3, 22222 + BYTES_HEADER)
          and g["stack"][1]["line"] == m["CONSUME"], json.dumps(g)[:300] if g else "missing")
    m2 = marks("coro.py")
    out = c.capture("coro.pmem")
    r = c.preload([os.path.join(PROGRAMS, "coro.py")], out)
    s = site(c.json("leaks", out, "--top", "0")["sites"], m2["CORO"], "coro.py")
    # the 300 bytes objects, and what the interpreter keeps of each finished coroutine
    check(tag + " coroutine frame over the event loop", r.returncode == 0 and s is not None
          and s["function"] == "fetch" and s["count"] >= 300 and s["bytes"] >= 300 * (3000 + BYTES_HEADER)
          and s["stack"][1]["function"].endswith("_run") and s["stack"][1]["file"].endswith("events.py"),
          json.dumps(s)[:300] if s else r.stderr[-300:])
    out = c.capture("deep20.pmem")
    r = c.preload([os.path.join(PROGRAMS, "deep.py")], out, PYMEM_STACK_DEPTH=20)
    s = site(c.json("leaks", out, "--top", "0")["sites"], m["BOTTOM"], "deep.py")
    frames = s["stack"] if s else []
    check(tag + " depth limit respected and marked", len(frames) == 21 and frames[-1]["file"] == "<truncated>",
          "%d frames, last %s" % (len(frames), frames[-1] if frames else None))


# --- tests run once, on /usr/bin/python3 -----------------------------------

def start_sleeper(c, out):
    """sleeper.py under the preload, once it has said it is ready."""
    p = subprocess.Popen([c.python, os.path.join(PROGRAMS, "sleeper.py")], env=c.env(PYMEM_OUTPUT=out),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=c.tmp)
    p.stdout.readline()
    return p


def test_snapshot_after_fork(c, tag):
    """A parent blocked in a read right after os.fork answers a snapshot
    request (its writer, paused for the fork on 3.12+, is running again)."""
    out = c.capture("forkidle.pmem")
    p = subprocess.Popen([c.python, os.path.join(PROGRAMS, "fork_then_idle.py")], env=c.env(PYMEM_OUTPUT=out),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=c.tmp)
    p.stdout.readline()
    r = c.analyze("snapshot", str(p.pid), "--label", "idle", "--timeout", "10", check=False)
    p.communicate("xx", timeout=30)
    labels = [s["label"] for s in c.json("snapshots", out)]
    check(tag + " snapshot of a parent blocked since os.fork: answered", p.returncode == 0 and r.returncode == 0
          and "idle" in labels, "rc %s: %s %s" % (p.returncode, r.stderr.strip(), labels))


def test_control_files_swept(c, tag):
    """Control files of processes killed outright (SIGKILL leaves them): the
    next `pymem run` or `pymem snapshot` removes those of its pid namespace
    whose process is gone or is another one now, and leaves the rest."""
    tmpdir = tempfile.mkdtemp(dir=c.tmp)
    ctl = os.path.join(tmpdir, "pymem-%d" % os.getuid())
    os.mkdir(ctl, 0o700)
    ns = os.readlink("/proc/self/ns/pid")

    def start_of(pid):
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]

    def dead_pid():
        p = subprocess.Popen(["true"])
        p.wait()
        return p.pid

    def announce(pid, *lines):
        with open(os.path.join(ctl, "%d.capture" % pid), "w") as f:
            f.write("".join(l + "\n" for l in lines))

    killed, other_ns, older, reused, later = (dead_pid() for _ in range(5))
    announce(killed, "/x/killed.pmem", "4242", ns)
    for kind in ("request", "done"):
        open(os.path.join(ctl, "%d.%s" % (killed, kind)), "w").close()
    announce(other_ns, "/x/other.pmem", "4242", "pid:[1]")
    announce(older, "/x/older.pmem", "4242")  # a pymem that did not name its namespace
    announce(os.getpid(), "/x/live.pmem", start_of(os.getpid()), ns)
    announce(os.getppid(), "/x/reused.pmem", "1", ns)  # the pid of a process started later
    env = dict(os.environ, TMPDIR=tmpdir)
    env.pop("LD_PRELOAD", None)
    r = subprocess.run([c.pymem, "run", "-q", "-o", os.path.join(tmpdir, "run.pmem"), "--", c.python, "-c", "pass"],
                       env=env, capture_output=True, text=True)
    left = sorted(os.listdir(ctl))
    check(tag + " pymem run removes the control files of dead and reused pids of its namespace, only those",
          r.returncode == 0 and left == sorted(["%d.capture" % p for p in (other_ns, older, os.getpid())]),
          "rc %d %s: %s" % (r.returncode, r.stderr[-200:], left))
    announce(later, "/x/later.pmem", "4242", ns)
    r = subprocess.run([c.pymem, "snapshot", str(later)], env=env, capture_output=True, text=True)
    check(tag + " pymem snapshot sweeps too, then says the pid is no process",
          r.returncode == 1 and "no process %d" % later in r.stderr
          and not os.path.exists(os.path.join(ctl, "%d.capture" % later)), r.stderr)


def test_snapshots_on_request(c, tag):
    """pymem snapshot PID, through the control channel: no signal, so a
    program that leaves SIGUSR2 at its default action (gunicorn's workers)
    is not killed; the command returns once the snapshot is in the capture."""
    m = marks("sleeper.py")
    out = c.capture("sleeper.pmem")
    p = start_sleeper(c, out)
    r = c.analyze("snapshot", str(p.pid), "--label", "one", check=False)
    check(tag + " pymem snapshot PID --label: done, and says where", r.returncode == 0
          and "snapshot 'one' taken in process %d: %s" % (p.pid, out) in r.stdout, r.stdout + r.stderr)
    p.stdin.write("\n")
    p.stdin.flush()
    p.stdout.readline()
    r2 = c.analyze("snapshot", str(p.pid), check=False)
    p.stdin.close()
    p.wait(timeout=30)
    check(tag + " the program is unharmed (SIGUSR2 at its default action)", p.returncode == 0
          and r2.returncode == 0 and "request-1" in r2.stdout, "rc %s %s" % (p.returncode, r2.stderr))
    snaps = c.json("snapshots", out)
    labels = [s["label"] for s in snaps]
    check(tag + " labelled and unlabelled requests listed, kind request", "one" in labels and "request-1" in labels
          and all(s["kind"] == "request" for s in snaps if s["label"] in ("one", "request-1")), str(snaps))
    d = c.json("diff", out, "one", "request-1")
    top = d["sites"][0]
    check(tag + " diff between requested snapshots", top["line"] == m["LATER"] and top["count_diff"] == 300
          and top["bytes_diff"] == 300 * (6000 + BYTES_HEADER), json.dumps(top)[:300])
    r = c.analyze("snapshot", "999999999", check=False)
    check(tag + " snapshot of a missing process fails cleanly", r.returncode == 1 and "999999999" in r.stderr)
    r = c.analyze("snapshot", str(os.getpid()), check=False)
    check(tag + " a process that is not recorded is refused, nothing sent", r.returncode == 1
          and "not being recorded" in r.stderr, r.stderr)
    # --tree: a parent and its followed children, each snapshotted.
    out = c.capture("tree.pmem")
    p = subprocess.Popen([c.python, "-c", "import os, sys, time\n"
                          "kids = [os.fork() for _ in range(1)] + [os.fork()]\n"
                          # 3.13 restarts the writer a forking process paused
                          # at its next audit event or 256 allocations
                          "work = [str(i) for i in range(1000)]\n"
                          "print('ready', flush=True); sys.stdin.readline()"],
                         env=c.env(PYMEM_OUTPUT=out, PYMEM_FOLLOW_FORK=1), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, cwd=c.tmp)
    for _ in range(4):
        p.stdout.readline()
    time.sleep(0.3)
    r = c.analyze("snapshot", "--tree", str(p.pid), "--label", "all", check=False)
    p.communicate("\n" * 8, timeout=30)
    check(tag + " pymem snapshot --tree: the parent and its 3 followed children", r.returncode == 0
          and r.stdout.count("snapshot 'all' taken") == 4, r.stdout + r.stderr)
    # The same children not followed: the one snapshot taken, and a note that
    # the 3 processes under the parent were not asked.
    out = c.capture("unfollowed.pmem")
    p = subprocess.Popen([c.python, "-c", "import os, sys, time\n"
                          "kids = [os.fork() for _ in range(1)] + [os.fork()]\n"
                          "print('ready', flush=True); sys.stdin.readline()"],
                         env=c.env(PYMEM_OUTPUT=out), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         cwd=c.tmp)
    for _ in range(4):
        p.stdout.readline()
    time.sleep(0.3)
    r = c.analyze("snapshot", str(p.pid), "--label", "one", check=False)
    p.communicate("\n" * 8, timeout=30)
    check(tag + " pymem snapshot of a parent whose children are not followed: says so", r.returncode == 0
          and r.stdout.count("snapshot 'one' taken") == 1
          and "note: 3 processes under %d are not recorded" % p.pid in r.stderr, r.stdout + r.stderr)
    # `pymem run`'s own pid stands for its run; any other unrecorded parent
    # of recorded processes is refused with the command that would do.
    out = c.capture("wrapped.pmem")
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    run = subprocess.Popen([c.pymem, "run", "--python", c.python, "-q", "-o", out, "--",
                            os.path.join(PROGRAMS, "sleeper.py")], env=env, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True, cwd=c.tmp)
    run.stdout.readline()
    r = c.analyze("snapshot", str(run.pid), "--label", "via-run", check=False)
    parent = subprocess.Popen([c.python, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])", c.pymem, "run",
                               "--python", c.python, "-q", "-o", c.capture("nested.pmem"), "--",
                               os.path.join(PROGRAMS, "sleeper.py")], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=c.tmp)
    parent.stdout.readline()
    r2 = c.analyze("snapshot", str(parent.pid), check=False)
    run.communicate("\n\n", timeout=30)
    parent.communicate("\n\n", timeout=30)
    child = [s for s in c.json("snapshots", out) if s["label"] == "via-run"]
    check(tag + " pymem snapshot of pymem run's pid: its program's snapshot", r.returncode == 0
          and r.stdout.count("snapshot 'via-run' taken in process") == 1 and str(run.pid) not in r.stdout
          and len(child) == 1 and run.returncode == 0, r.stdout + r.stderr)
    check(tag + " an unrecorded parent of a recorded process: refused, naming --tree", r2.returncode == 1
          and r2.stderr.strip() == "pymem snapshot: process %d is not being recorded by pymem, 1 process under it "
          "is: pymem snapshot --tree %d" % (parent.pid, parent.pid), r2.stderr)


def test_gunicorn_staging(c, tag):
    """gunicorn (Debian's) with 2 sync workers serving a leaky Flask app under
    pymem run --follow-fork, with load from the test: snapshots of every
    process by --tree while gunicorn keeps SIGUSR2 for itself, no worker
    restarted, and the leak found to the request in the merged report; the
    same in aggregated mode, in a fraction of the bytes."""
    if not os.path.exists("/usr/bin/gunicorn"):
        print("skip  %s gunicorn staging test: gunicorn is not installed" % tag)
        return
    exact = gunicorn_round(c, tag + " gunicorn:", [], "gunicorn")
    agg = gunicorn_round(c, tag + " gunicorn --aggregate:", ["--aggregate"], "gunicorn-agg")
    # format 5 writes exact captures at ~0.3-1.6 B/event: the aggregated ones
    # of this short run (states every second) are about a quarter of them
    check(tag + " gunicorn --aggregate: captures of %d B against %d B exact" % (agg, exact),
          0 < agg * 3 < exact)


def gunicorn_round(c, tag, options, name):
    """One round of the staging test; returns the bytes of its captures."""
    import socket
    import urllib.request
    m = marks("flask_app.py")
    folder = os.path.join(c.tmp, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    root = os.path.join(folder, "gunicorn.pmem")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = os.path.join(folder, "gunicorn.log")
    run = subprocess.Popen([c.pymem, "run", "--python", "/usr/bin/python3", "-q", "--follow-fork", "-o", root]
                           + options + ["-m", "gunicorn", "-w", "2", "-b", "127.0.0.1:%d" % port, "--chdir", PROGRAMS,
                            "--error-logfile", log, "--log-level", "info", "flask_app:app"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def get(path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
            return r.read()
    try:
        deadline = time.time() + 30
        while True:
            try:
                get("/ok")
                break
            except OSError:
                if time.time() > deadline or run.poll() is not None:
                    raise
                time.sleep(0.1)
        master = int(subprocess.run(["pgrep", "-P", str(run.pid)], capture_output=True, text=True).stdout.split()[0])
        for _ in range(300):
            get("/leak")
        r1 = c.analyze("snapshot", "--tree", str(master), "--label", "mid", check=False)
        for _ in range(200):
            get("/leak")
            get("/ok")
        r2 = c.analyze("snapshot", "--tree", str(master), "--label", "late", check=False)
        get("/ok")
    finally:
        run.send_signal(signal.SIGTERM)
        try:
            run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            run.kill()
    check(tag + " snapshot --tree takes the master and its 2 workers, twice",
          r1.returncode == 0 and r1.stdout.count("snapshot 'mid' taken") == 3 and r2.returncode == 0
          and r2.stdout.count("snapshot 'late' taken") == 3, r1.stdout + r1.stderr + r2.stdout + r2.stderr)
    text = open(log).read()
    check(tag + " no worker restarted or killed, SIGUSR2 left to gunicorn",
          text.count("Booting worker") == 2 and "WORKER TIMEOUT" not in text and "exited with code" not in text
          and "Handling signal: usr2" not in text, text[-800:])
    summ = c.json("summary", root, "--merge")
    roles = sorted(p["role"] for p in summ["processes"])
    check(tag + " a capture for the master and each worker, all Python, all ended",
          roles == ["fork", "fork", "root"] and all(p["python"] and p["end"] == "exit" for p in summ["processes"]),
          json.dumps(summ["processes"])[:600])
    leaks = c.json("leaks", root, "--merge", "--top", "0")
    s = site(leaks["sites"], m["LEAK"], "flask_app.py")
    objects = s["domains"].get("pyobj", {}) if s else {}
    check(tag + " the leak to the request, 500 blocks of 1000 bytes over the workers",
          objects.get("count") == 500 and objects.get("bytes") == 500 * (1000 + BYTES_HEADER)
          and len(s["processes"]) == 2, json.dumps(s)[:500])
    d = c.json("diff", root, "mid", "late", "--merge", "--top", "0", "--domain", "pyobj")
    g = site(d["sites"], m["LEAK"], "flask_app.py")
    grown = sum(p["bytes_diff"] for p in g["processes"]) if g else 0
    check(tag + " growth between the two snapshots: 200 requests' worth",
          grown == 200 * (1000 + BYTES_HEADER) and d["skipped"] == 0, json.dumps(g)[:400])
    diffs = [x["bytes"] - sum(p["bytes"] - p["bytes_diff"] for p in x["processes"]) for x in d["sites"]]
    check(tag + " merged diff: the net change is the sum over the sites, the biggest change first",
          d["net_bytes"] == sum(diffs) and d["grown_bytes"] == sum(v for v in diffs if v > 0)
          and [abs(v) for v in diffs] == sorted((abs(v) for v in diffs), reverse=True),
          json.dumps({k: d.get(k) for k in ("net_bytes", "grown_bytes", "shrunk_bytes")}))
    return sum(os.path.getsize(f) for f in glob.glob(os.path.join(folder, "*.pmem")))


def test_sigkill_leaves_readable_prefix(c, tag):
    m = marks("sleeper.py")
    out = c.capture("killed.pmem")
    p = start_sleeper(c, out)
    time.sleep(0.4)  # > the writer's 10 ms flush interval, many times over
    p.kill()
    p.wait()
    summ = c.json("summary", out)
    check(tag + " killed capture reported truncated", summ["truncated"] is True and summ["end"] == "truncated")
    r = c.analyze("leaks", out, "--json")
    leaks = json.loads(r.stdout)
    s = site(leaks["sites"], m["HELD"], "sleeper.py")
    check(tag + " killed capture keeps events up to the last flush",
          s is not None and s["count"] == 200 and s["bytes"] == 200 * (5000 + BYTES_HEADER)
          and "truncated" in r.stderr, json.dumps(s)[:200])


def test_bad_input(c, tag):
    out = c.capture("leak-ok.pmem")
    c.preload([os.path.join(PROGRAMS, "leak.py")], out)
    data = open(out, "rb").read()
    damaged = os.path.join(c.tmp, "damaged.pmem")
    with open(damaged, "wb") as f:
        f.write(data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:])
    r = c.analyze("summary", damaged, check=False)
    check(tag + " damaged capture: one-line error with offset, exit 1",
          r.returncode == 1 and r.stderr.count("\n") == 1 and "offset" in r.stderr and "damaged.pmem" in r.stderr,
          repr(r.stderr))
    cut = os.path.join(c.tmp, "cut.pmem")
    with open(cut, "wb") as f:
        f.write(data[:len(data) * 2 // 3])
    r = c.analyze("summary", cut, "--json", check=False)
    check(tag + " cut capture: reported truncated, exit 0",
          r.returncode == 0 and json.loads(r.stdout)["truncated"] is True and "truncated" in r.stderr)
    notcap = os.path.join(c.tmp, "notcap.pmem")
    with open(notcap, "w") as f:
        f.write("just text\n")
    for args, code, text in [(["summary", notcap], 1, "not a pymem capture"),
                             (["peak", os.path.join(c.tmp, "missing.pmem")], 1, "No such file"),
                             (["peak", out, "--by", "nonsense"], 2, "--by"),
                             (["diff", out, "nosuch", "end"], 1, "no snapshot named"),
                             (["frobnicate"], 2, "unknown command"),
                             (["peak"], 2, "expected")]:
        r = c.analyze(*args, check=False)
        check(tag + " bad input %s -> exit %d" % (" ".join(a if "/" not in a else os.path.basename(a) for a in args), code),
              r.returncode == code and text in r.stderr and r.stderr.count("\n") == 1, repr(r.stderr))
    helps = {cmd: c.analyze(cmd, "--help", check=False) for cmd in
             ("summary", "peak", "leaks", "diff", "snapshots", "trend", "temporaries", "fragmentation", "compare")}
    check(tag + " CMD --help: that command's usage, exit 0",
          all(r.returncode == 0 and r.stdout.startswith("usage: pymem %s " % cmd) for cmd, r in helps.items())
          and "--since" in helps["leaks"].stdout and "--since" not in helps["peak"].stdout
          and "--within" in helps["temporaries"].stdout and "--merge" not in helps["temporaries"].stdout,
          {cmd: r.stdout[:80] for cmd, r in helps.items()})


def test_fuzzed_captures(c, tag):
    """Damaged copies of a real capture (bit flips, cuts, zeroed and repeated
    spans, trailing garbage): every command ends with 0, or 1 and one line."""
    import random
    out = c.capture("fuzz-src.pmem")
    c.preload([os.path.join(PROGRAMS, "growth.py")], out)
    data = open(out, "rb").read()
    rnd = random.Random(20261122)
    fuzzed = os.path.join(c.tmp, "fuzzed.pmem")
    bad = []
    for i in range(60):
        d = bytearray(data)
        kind = ["flip", "cut", "zero", "garbage", "repeat"][i % 5]
        at = rnd.randrange(len(d))
        if kind == "flip":
            d[at] ^= 1 << rnd.randrange(8)
        elif kind == "cut":
            d = d[:at]
        elif kind == "zero":
            d[at:at + 512] = bytes(len(d[at:at + 512]))
        elif kind == "garbage":
            d += bytes(rnd.randrange(256) for _ in range(777))
        else:
            d = d[:at] + d[at // 2:at // 2 + 2000] + d[at:]
        with open(fuzzed, "wb") as f:
            f.write(d)
        for args in (["summary"], ["peak", "--by", "traceback"], ["diff", "before", "after"]):
            r = subprocess.run([c.pymem, args[0], fuzzed] + args[1:], capture_output=True, text=True, timeout=60)
            lines = r.stderr.splitlines()
            # one error line, after the truncation warning where the cut removed the end
            one_line_error = r.returncode == 1 and (len(lines) == 1 or (len(lines) == 2 and "warning:" in lines[0]))
            if not (r.returncode == 0 or one_line_error):
                bad.append((kind, at, args[0], r.returncode, r.stderr[-200:]))
    check(tag + " damaged captures: exit 0, or 1 with one line, never a crash", not bad, str(bad[:3]))


def test_unwritable_output(c, tag):
    r = c.preload([os.path.join(PROGRAMS, "leak.py")], "/nonexistent-dir/x.pmem")
    lines = [l for l in r.stderr.splitlines() if l]
    check(tag + " unwritable output: program unharmed, one warning",
          r.returncode == 0 and r.stdout == "done 1000\n" and len(lines) == 1
          and lines[0].startswith("pymem: cannot create capture /nonexistent-dir/x.pmem"), repr(r.stderr))


def test_disk_full(c, tag):
    """A file size limit makes the capture's writes fail mid-run (EFBIG, as
    ENOSPC would): one warning, the program unharmed, the prefix readable."""
    import resource
    out = c.capture("full.pmem")
    limit = 48 * 1024  # leak.py's capture is about 75 KiB compressed

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = subprocess.run([c.python, os.path.join(PROGRAMS, "leak.py")], env=c.env(PYMEM_OUTPUT=out),
                       capture_output=True, text=True, cwd=c.tmp, preexec_fn=small_files)
    lines = [l for l in r.stderr.splitlines() if l]
    check(tag + " full disk: program unharmed, one warning", r.returncode == 0 and r.stdout == "done 1000\n"
          and len(lines) == 1 and lines[0].startswith("pymem: cannot write capture") and "stopped" in lines[0],
          repr(r.stderr))
    summ = c.analyze("summary", out, "--json", check=False)
    pid = json.loads(summ.stdout)["pid"] if summ.returncode == 0 else 0
    check(tag + " full disk: no control file left behind", pid and not os.path.exists(control_file(pid)))
    check(tag + " full disk: the capture written so far reads as truncated",
          summ.returncode == 0 and json.loads(summ.stdout)["truncated"] is True
          and os.path.getsize(out) <= limit, summ.stderr)


def test_python_allocator_variants(c, tag):
    m = marks("leak.py")
    for variant in ["malloc", "debug", "pymalloc_debug"]:
        out = c.capture("pm-%s.pmem" % variant)
        r = c.preload([os.path.join(PROGRAMS, "leak.py")], out, PYTHONMALLOC=variant)
        s = site(c.json("leaks", out, "--top", "5")["sites"], m["LEAK"], "leak.py") if r.returncode == 0 else None
        check(tag + " PYTHONMALLOC=%s: same leak, same requested bytes" % variant,
              s is not None and s["count"] == 1000 and s["bytes"] == 1000 * (10000 + BYTES_HEADER),
              r.stderr[-300:] + json.dumps(s)[:200])


def test_other_allocator_preloaded(c, tag):
    """jemalloc preloaded after pymem serves as the real allocator; preloaded
    before it, it takes malloc: pymem says so once, and still records Python's
    domains."""
    m = marks("leak.py")
    jemalloc = sorted(glob.glob("/usr/lib/*/libjemalloc.so.2"))
    if not jemalloc:
        print("skip  jemalloc not installed")
        return
    for order, hooked in (([c.lib, jemalloc[0]], True), ([jemalloc[0], c.lib], False)):
        out = c.capture("je-%d.pmem" % hooked)
        env = c.env(PYMEM_OUTPUT=out)
        env["LD_PRELOAD"] = ":".join(order)
        r = subprocess.run([c.python, os.path.join(PROGRAMS, "leak.py")], env=env, capture_output=True, text=True,
                           cwd=c.tmp)
        summ = c.json("summary", out)
        s = site(c.json("leaks", out, "--top", "3")["sites"], m["LEAK"], "leak.py")
        warned = "malloc is served ahead of pymem" in r.stderr
        check(tag + " jemalloc %s pymem in LD_PRELOAD" % ("after" if hooked else "before"),
              r.returncode == 0 and r.stdout == "done 1000\n" and summ["malloc_recorded"] is hooked
              and warned is not hooked and s is not None and s["count"] == 1000
              and (summ["domains"]["malloc"]["allocations"] > 0) is hooked, r.stderr[-300:])


def test_undecodable_path(c, tag):
    """A script whose path is not valid UTF-8: reports stay valid UTF-8 JSON."""
    d = os.path.join(os.fsencode(c.tmp), b"dir-\xff")
    os.makedirs(d, exist_ok=True)
    script = os.path.join(d, b"sc\xe9.py")
    with open(script, "wb") as f:
        f.write(b"keep = []\nfor _ in range(50):\n    b = bytes(7000)\n    keep.append(b)\n")
    out = c.capture("undecodable.pmem")
    r = subprocess.run([c.python, script], env=c.env(PYMEM_OUTPUT=out), capture_output=True, cwd=c.tmp)
    raw = subprocess.run([c.pymem, "leaks", out, "--json"], capture_output=True).stdout
    try:
        top = json.loads(raw.decode("utf-8"))["sites"][0]
    except (UnicodeDecodeError, ValueError, IndexError) as e:
        top = {"error": str(e)}
    # Python 3.13 re-attributes an object it recycles to the line that reuses
    # it (pymem as tracemalloc): one small object may join the 50 blocks.
    want = 50 * (7000 + BYTES_HEADER)
    check(tag + " undecodable script path: valid JSON, the leak found", r.returncode == 0
          and top.get("file", "").endswith("dir-\ufffd/sc\ufffd.py") and 50 <= top.get("count", 0) <= 51
          and want <= top.get("bytes", 0) <= want + 64 * (top["count"] - 50), str(top)[:200])


def test_program_descriptors(c, tag):
    """pymem's descriptors stay out of the numbers the program gets from open(),
    a program that closes every descriptor never has the capture written into
    a file of its own that took the number, and nothing recorded before the
    close is lost: the capture is opened again (by its absolute path, though
    the program changed directory and the path it was given is relative)."""
    m = marks("fds.py")
    data = os.path.join(c.tmp, "fds-data.txt")
    plain = subprocess.run([c.python, os.path.join(PROGRAMS, "fds.py"), data], capture_output=True, text=True)
    out = c.capture("fds.pmem")
    r = c.preload([os.path.join(PROGRAMS, "fds.py"), data], os.path.basename(out))
    content = open(data, "rb").read()
    check(tag + " same descriptor numbers, program's file intact, no warning",
          r.returncode == 0 and r.stdout == plain.stdout and content == b"program data\n" * 1000
          and r.stderr == "", repr(r.stdout + r.stderr))
    summ = c.json("summary", out)
    check(tag + " the capture is complete despite the descriptor sweep", summ["truncated"] is False
          and summ["end"] == "exit", json.dumps(summ)[:300])
    sites = c.json("leaks", out, "--top", "0")["sites"]
    for mark, n, size in (("BEFORE", 1000, 3000), ("AFTER", 2000, 5000)):
        s = site(sites, m[mark], "fds.py")
        check(tag + " blocks recorded %s the sweep, exact" % mark.lower(),
              blocks_at(c, s, n, size + BYTES_HEADER, recycled=2, domain="pyobj"), json.dumps(s)[:300])


def test_swapped_std_descriptors(c, tag):
    """A program that closes its stderr and puts it back, again and again
    (CPython's test_subprocess does): pymem's writer opens nothing while it
    runs, so the program's dup2 is never refused (EBUSY) and its stderr never
    becomes, or is closed as, a file of pymem's."""
    out = c.capture("fd_juggle.pmem")
    r = c.preload([os.path.join(PROGRAMS, "fd_juggle.py"), "2"], out)
    check(tag + " stderr swapped 100s of times under pymem: never lost, dup2 never refused",
          r.returncode == 0 and r.stdout == "rounds True stderr lost 0 dup2 refused 0\n", repr(r.stdout + r.stderr))


def test_non_python_is_passthrough(c, tag):
    before = set(os.listdir(c.tmp))
    r = subprocess.run(["sh", "-c", "ls / | head -3; echo hi"], env=c.env(), capture_output=True, text=True, cwd=c.tmp)
    plain = subprocess.run(["sh", "-c", "ls / | head -3; echo hi"], capture_output=True, text=True)
    check(tag + " non-Python processes unchanged and write nothing",
          r.returncode == 0 and r.stdout == plain.stdout and r.stderr == "" and set(os.listdir(c.tmp)) == before)
    code = "import pymem; pymem.snapshot('x'); print(pymem.recording(), pymem.capture_path())"
    out = c.capture("imp.pmem")
    r = c.preload(["-c", "import subprocess, sys; subprocess.run([sys.executable, '-c', %r]); " % code + code], out)
    check(tag + " import pymem in root and in unfollowed child",
          r.returncode == 0 and r.stdout.splitlines() == ["0 None", "1 " + out], repr(r.stdout + r.stderr))


def test_heap_untouched(c, tag):
    """pymem's own memory never comes from malloc: glibc's mmap'd blocks
    (and so its dynamic mmap and trim thresholds) are the same as without it."""
    prog = os.path.join(PROGRAMS, "heap_untouched.py")
    plain = subprocess.run([c.python, prog], capture_output=True, text=True)
    out = c.capture("heap.pmem")
    profiled = c.preload([prog], out)
    native = c.preload([prog], c.capture("heapn.pmem"), PYMEM_NATIVE=1)
    recorded = c.json("summary", out)["allocations"]  # enough for the writer to compress
    check(tag + " glibc serves the same mmap'd blocks with and without pymem (zstd's workspace is pymem's own)",
          plain.returncode == 0 and plain.stdout == profiled.stdout == native.stdout and recorded > 100000,
          "plain %r, pymem %r, --native %r" % (plain.stdout, profiled.stdout + profiled.stderr, native.stdout))


def test_mem_domain_without_gil(c, tag):
    """A MEM-domain allocation made without the GIL while another thread holds
    it is attributed to the calling thread's own frames."""
    m = marks("nogil_alloc.py")
    out = c.capture("nogil.pmem")
    r = c.preload([os.path.join(PROGRAMS, "nogil_alloc.py")], out, PYTHONMALLOC="malloc")
    sites = c.json("leaks", out, "--domain", "pymem", "--top", "0")["sites"]
    mine = [s for s in sites if s["line"] == m["NOGIL"] and s["file"].endswith("nogil_alloc.py")]
    spun = [s for s in sites if s["function"] == "spin"]
    check(tag + " PyMem_Malloc without the GIL: the caller's own line, not the GIL holder's", r.returncode == 0
          and r.stdout == "200\n" and len(mine) == 1 and mine[0]["count"] == 200
          and mine[0]["bytes"] == 200 * 1000 + sum(range(200)) and not spun, str(sites)[:400] + r.stderr)


def test_membarrier_registered_alone(c, tag):
    """The sequence counter's membarrier registration is made by each recorded
    process before it starts a thread (pymem's writer): with a second thread
    the kernel waits for an RCU grace period there, 8-15 ms of start-up."""
    trace = os.path.join(c.tmp, "membarrier.strace")
    out = c.capture("membarrier.pmem")
    code = ("import os\npid = os.fork()\nif pid == 0:\n    x = [str(i) for i in range(100000)]\n    os._exit(0)\n"
            "os.waitpid(pid, 0)\nx = [str(i) for i in range(100000)]\nprint('ok')")
    env = c.env(PYMEM_OUTPUT=out, PYMEM_FOLLOW_FORK=1)
    del env["LD_PRELOAD"]
    r = subprocess.run(["strace", "-f", "-qq", "-o", trace, "-e", "trace=membarrier,clone,clone3",
                        "-E", "LD_PRELOAD=" + c.lib, c.python, "-c", code],
                       env=env, capture_output=True, text=True, timeout=120, cwd=c.tmp)
    registered, threads_before = [], []
    started = set()
    with open(trace) as f:
        for line in f:
            pid, _, call = line.partition(" ")
            if "CLONE_THREAD" in call:
                started.add(pid)
            elif "MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED" in call and call.rstrip().endswith("= 0"):
                registered.append(pid)
                if pid in started:
                    threads_before.append(pid)
    children = glob.glob(out[:-5] + ".*.pmem")
    check(tag + " membarrier registered by the root and the forked child, each before its first thread",
          r.returncode == 0 and r.stdout == "ok\n" and len(registered) == 2 and not threads_before
          and len(children) == 1, "registered %s, after a thread in %s, children %s, %s"
          % (registered, threads_before, children, r.stderr[-300:]))


def test_pymem_run(c, tag):
    m = marks("peak.py")
    out = c.capture("run.pmem")
    r = subprocess.run([c.pymem, "run", "--python", c.python, "-o", out, os.path.join(PROGRAMS, "peak.py")],
                       capture_output=True, text=True, cwd=c.tmp)
    check(tag + " pymem run script.py: output and report", r.returncode == 0 and r.stdout == "300 100\n"
          and ("peak.py:%d phase_one" % m["PEAK"]) in r.stderr and out in r.stderr, r.stderr)
    out = c.capture("runm.pmem")
    r = subprocess.run([c.pymem, "run", "--python", c.python, "-q", "-o", out, "-m", "json.tool", "--sort-keys"],
                       input='{"b": 1, "a": 2}', capture_output=True, text=True, cwd=c.tmp)
    check(tag + " pymem run -m module with its own options", r.returncode == 0 and r.stdout.startswith('{\n    "a": 2')
          and r.stderr == "" and os.path.exists(out), r.stderr)
    out = c.capture("runc.pmem")
    r = subprocess.run([c.pymem, "run", "-q", "-o", out, "--", c.python, "-c", "import sys; sys.exit(7)"],
                       capture_output=True, text=True, cwd=c.tmp)
    check(tag + " pymem run -- command: exit status passed through", r.returncode == 7 and os.path.exists(out))
    # SIGINT becomes KeyboardInterrupt: the interpreter finalises ("exit"),
    # then dies of SIGINT; SIGTERM and SIGHUP at their default end it at once.
    for sig, end, detail in ((signal.SIGTERM, "signal", signal.SIGTERM), (signal.SIGHUP, "signal", signal.SIGHUP),
                             (signal.SIGINT, "exit", 0)):
        out = c.capture("runs-%d.pmem" % sig)
        p = subprocess.Popen([c.pymem, "run", "-q", "-o", out, "--", c.python, "-c", "import time; time.sleep(30)"],
                             cwd=c.tmp)
        time.sleep(1.0)
        p.send_signal(sig)
        rc = p.wait(timeout=30)
        summ = c.json("summary", out)
        check(tag + " pymem run forwards %s, the program dies of it, capture complete" % sig.name,
              rc == -sig and summ["end"] == end and summ["end_detail"] == detail,
              "rc=%s end=%s" % (rc, summ["end"]))
    out = c.capture("runp.pmem")
    r = subprocess.run([c.pymem, "run", "-q", "--snapshot-every", "0.05", "-o", out, "--", c.python, "-c",
                        "import time; time.sleep(0.5)"], capture_output=True, text=True, cwd=c.tmp)
    labels = [s["label"] for s in c.json("snapshots", out)]
    check(tag + " --snapshot-every takes periodic snapshots", 4 <= sum(l.startswith("periodic-") for l in labels) <= 12,
          str(labels))
    r = subprocess.run([c.pymem, "run", "--stack-depth", "0", "x.py"], capture_output=True, text=True)
    check(tag + " pymem run rejects a bad option", r.returncode == 2 and "--stack-depth" in r.stderr)
    r = subprocess.run([c.pymem, "run", "-o", out, "--", c.python, "-c", "print('ran')"], capture_output=True,
                       text=True, cwd=c.tmp)
    check(tag + " pymem run refuses to overwrite a capture, before running", r.returncode == 1
          and r.stdout == "" and "already exists" in r.stderr, r.stderr)


def pythons():
    found = []
    if os.path.exists("/usr/bin/python3"):
        found.append("/usr/bin/python3")
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for minor in range(8, 14):
        cands = sorted(glob.glob(os.path.join(root, "versions", "3.%d.*" % minor, "bin", "python3")),
                       key=lambda p: [int(x) for x in re.findall(r"\d+", p.split("/versions/")[1].split("/")[0])])
        cands = [p for p in cands if re.search(r"/3\.%d\.\d+/" % minor, p)]
        if cands:
            found.append(cands[-1])
        else:
            print("skip  Python 3.%d: not installed on this machine" % minor)
    return found


def version_of(python):
    out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True)
    return tuple(int(x) for x in out.stdout.split())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--python", action="append", help="only these interpreters")
    ap.add_argument("-k", help="only tests whose name contains this (or one of these, comma-separated)")
    ap.add_argument("--preload", help="this libpymem.so instead of the build's (a test build's variant)")
    ap.add_argument("--env", action="append", default=[], metavar="PYMEM_X=V",
                    help="a setting of every run that a test does not set itself")
    ap.add_argument("--min-python", default="3.8", help="skip interpreters older than this")
    ap.add_argument("--once-also", action="append", default=[], metavar="X.Y",
                    help="run the tests that run once (on the first interpreter) on this version too")
    args = ap.parse_args()
    defaults = dict(e.split("=", 1) for e in args.env)
    min_python = tuple(int(x) for x in args.min_python.split("."))
    once_also = {tuple(int(x) for x in v.split(".")) for v in args.once_also}
    wanted = args.k.split(",") if args.k else None
    every = [test_leak_at_known_line, test_own_line_first, test_peak_at_known_line, test_growth_between_snapshots,
             test_threads_lose_nothing, test_c_threads_and_daemon_at_exit, test_exit_paths, test_phases_and_exit_status, test_fork_and_children, test_fork_from_a_thread,
             test_exec_keeps_what_was_recorded, test_embedding_twice, test_run_of_many_processes, test_trend,
             test_aggregated, test_temporaries,
             test_children_write_beside_the_root, test_snapshot_after_fork,
             test_fork_leaves_output_alone, test_stack_depth_and_generators, test_reentered_stacks, test_deep_cached, test_window_edge, test_cut_moves,
             test_beyond_frame_cache,
             test_frame_watch, test_frame_evaluator, test_frame_watch_phases, test_frame_watch_own, test_frame_watch_early_holder,
             test_frame_watch_threads,
             test_greenlet_stacks,
             test_mem_domain_without_gil]
    once = [test_snapshots_on_request, test_control_files_swept, test_sigkill_leaves_readable_prefix, test_bad_input, test_fuzzed_captures,
            test_unwritable_output, test_oom_snapshot, test_gunicorn_staging, test_export, test_plot, test_lines, test_flamegraph,
            test_disk_full, test_python_allocator_variants, test_other_allocator_preloaded, test_undecodable_path, test_program_descriptors, test_swapped_std_descriptors, test_non_python_is_passthrough, test_heap_untouched,
            test_membarrier_registered_alone, test_pymem_run] + native.ONCE + sampling.ONCE + hostile.ONCE + live.ONCE + heap.ONCE
    every += native.EVERY + oracle.EVERY + live.EVERY + heap.EVERY + sampling.EVERY
    tmp = tempfile.mkdtemp(prefix="pymem-it-")
    try:
        for i, py in enumerate(p for p in args.python or pythons() if version_of(p) >= min_python):
            c = Ctx(args.build, py, tmp, args.preload, defaults)
            c.version = version_of(py)
            tag = "[%s %d.%d]" % ("system" if py.startswith("/usr/bin") else "pyenv", *c.version)
            for t in every + (once if i == 0 or c.version in once_also else []):
                if wanted and not any(k in t.__name__ for k in wanted):
                    continue
                try:
                    t(c, tag)
                except Exception as e:  # a crash of the test is a failure, not an abort
                    check(tag + " " + t.__name__, False, "raised %s: %s" % (type(e).__name__, e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in harness.failures:
        print("FAILED: %s" % f[:2000])
    print("%d passed, %d failed" % (harness.passed, harness.failed))
    return 1 if harness.failed else 0


if __name__ == "__main__":
    sys.exit(main())
