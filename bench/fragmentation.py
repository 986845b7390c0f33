#!/usr/bin/env python3
"""The three truth programs of `pymem fragmentation` (fragmented glibc
thread arenas, a real leak, pymalloc arenas kept by few objects) on glibc
and on jemalloc, plain and under pymem: maximum RSS and wall time of each
(median of --runs, runs alternating), pymem's cost as ratios to the plain
run on the same allocator, RSS and the live heap at the `exit` snapshot (as
pymem measured them), and the verdict pymem gives. Not part of
`make test`.

    python3 bench/fragmentation.py [--runs N] [--build DIR]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = os.path.join(ROOT, "tests", "integration", "programs")
PYTHON = "/usr/bin/python3"
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
JEMALLOC_CONF = "dirty_decay_ms:0,muzzy_decay_ms:0"


def measured(cmd, env):
    """Wall seconds and the child's maximum RSS in bytes."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("%s failed: %s" % (" ".join(cmd), err[-500:]))
    return wall, usage.ru_maxrss * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    pymem = os.path.join(os.path.abspath(args.build), "pymem")
    tmp = tempfile.mkdtemp(prefix="pymem-frag-bench-")
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYMEM_") and k not in ("LD_PRELOAD", "MALLOC_CONF")}
    print("| program | allocator | max RSS plain | max RSS under pymem | RSS ratio | time ratio | RSS at exit | "
          "live heap at exit | verdict |")
    print("|---|---|---|---|---|---|---|---|---|")
    try:
        for program in ("frag_threads.py", "heap_leak.py", "arena_pin.py"):
            path = os.path.join(PROGRAMS, program)
            for alloc in ("glibc", "jemalloc"):
                plain_env = dict(base)
                opts = []
                if alloc == "jemalloc":
                    plain_env.update(LD_PRELOAD=JEMALLOC, MALLOC_CONF=JEMALLOC_CONF)
                    opts = ["--allocator", "jemalloc:" + JEMALLOC_CONF]
                plain, under, capture = [], [], None
                for i in range(args.runs):
                    plain.append(measured([PYTHON, path], plain_env))
                    capture = os.path.join(tmp, "%s-%s-%d.pmem" % (program, alloc, i))
                    under.append(measured([pymem, "run", "-q", "--python", PYTHON, "-o", capture] + opts + [path], base))
                verdict = json.loads(subprocess.run([pymem, "fragmentation", capture, "--json"], capture_output=True,
                                                    text=True).stdout)
                rss_plain = statistics.median(r for _, r in plain)
                rss_under = statistics.median(r for _, r in under)
                ratio = statistics.median(u[0] / p[0] for u, p in zip(under, plain))
                print("| %s | %s | %.1f MiB | %.1f MiB | %.2fx | %.2fx | %.1f MiB | %.1f MiB | %s%s |" % (
                    program, alloc, rss_plain / 2**20, rss_under / 2**20, rss_under / rss_plain, ratio,
                    verdict["at"]["rss"] / 2**20, verdict["at"]["live"] / 2**20,
                    verdict["verdict"], " (%s)" % verdict["cause"] if verdict["cause"] else ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
