#!/usr/bin/env python3
"""The pytest plugin's cost per test: a generated suite of 1000 tiny tests
(each builds a small list) run by /usr/bin/python3 -m pytest, plain and in
each configuration below, alternating run by run; prints the median of the
paired ratios against the plain run and the added time per test. Not part
of `make test`.

    python3 bench/pytest_plugin.py [--runs N] [--tests N] [--build DIR]

Configurations:
  pymem           pymem run --no-live: an event capture, no plugin work
  live            pymem run (live table kept), plugin loaded, no limit
  limit           the same with --pymem-limit-memory 1GB: every test measured
  limit+report    ... and --pymem-report: gc.collect() after each test too
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYTHON = "/usr/bin/python3"


def suite(folder, n):
    with open(os.path.join(folder, "test_tiny.py"), "w") as f:
        f.write("import pytest\n\n")
        f.write("@pytest.mark.parametrize('i', range(%d))\n" % n)
        f.write("def test_tiny(i):\n    assert len([i] * 10) == 10\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tests", type=int, default=1000)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    pymem = os.path.join(os.path.abspath(args.build), "pymem")
    tmp = tempfile.mkdtemp(prefix="pymem-plugin-bench-")
    suite(tmp, args.tests)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"), PYTHONDONTWRITEBYTECODE="1")
    pytest = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "pytest_pymem", "test_tiny.py"]
    out = os.path.join(tmp, "c.pmem")
    configs = {
        "plain": [PYTHON] + pytest,
        "pymem": [pymem, "run", "-q", "--no-live", "--python", PYTHON, "-o", out] + pytest,
        "live": [pymem, "run", "-q", "--python", PYTHON, "-o", out] + pytest,
        "limit": [pymem, "run", "-q", "--python", PYTHON, "-o", out] + pytest + ["--pymem-limit-memory", "1GB"],
        "limit+report": [pymem, "run", "-q", "--python", PYTHON, "-o", out] + pytest
        + ["--pymem-limit-memory", "1GB", "--pymem-report"],
    }
    times = {k: [] for k in configs}
    try:
        for _ in range(args.runs):
            for name, cmd in configs.items():
                if os.path.exists(out):
                    os.unlink(out)
                t = time.perf_counter()
                r = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
                times[name].append(time.perf_counter() - t)
                if r.returncode != 0:
                    sys.exit("%s failed: %s" % (name, (r.stdout + r.stderr)[-800:]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    plain = times["plain"]
    print("| configuration | ratio to plain (median of %d pairs) | added per test vs previous row |" % args.runs)
    print("|---|---|---|")
    prev = plain
    for name in configs:
        ratios = [t / p for t, p in zip(times[name], plain)]
        added = statistics.median(a - b for a, b in zip(times[name], prev)) / args.tests * 1e6
        print("| %s | %.2fx | %s |" % (name, statistics.median(ratios), "" if name == "plain" else "%+.0f us" % added))
        prev = times[name]


if __name__ == "__main__":
    main()
