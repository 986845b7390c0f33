#!/usr/bin/env python3
"""Overhead benchmark: each workload of ../shared/bench/workloads (and
bench/workloads) runs plain and under each tool in rounds: each round runs
every tool once, each right after a plain run (plain, tool A, plain, tool B,
...); the table gives the median of the pair-by-pair wall-time ratios, so
that drift of the machine cancels out, between the columns too. For pymem it also gives
capture bytes per event (allocation or free), the analyzer's events per
second on that capture (`pymem summary`), and pymem's own memory.
Prints a Markdown table. Not part of `make test`.

    python3 bench/run.py [--runs N] [--tools pymem,pymem-native,pymem-native-c,pymem-sample,tracemalloc,heaptrack]
                         [-k WORKLOAD] [--baseline BUILD] [--python PATH]

--baseline BUILD adds a column "pymem-baseline": exact mode with BUILD's
libpymem.so (another commit's build), in the same alternating run, so that a
change is measured against what it replaces; with pymem-sample among the
tools, "pymem-sample-baseline" too (sampled mode with BUILD's).

pymem-native-c is `--native --no-python-allocators`: heaptrack's scope (what
reaches malloc, with native stacks) plus the Python frames.
"""
import argparse
import glob
import json
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


# Workloads run with arguments, one row each: the thread-scaling rows.
VARIANTS = {"threads_n": [["1"], ["2"], ["4"], ["8"]]}


def workloads(only):
    """(row name, script, arguments) for every workload to run."""
    found = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "bench", "workloads", "*.py")))
    found += sorted(glob.glob(os.path.join(HERE, "workloads", "*.py")))
    rows = []
    for w in found:
        name = os.path.basename(w)[:-3]
        for args in VARIANTS.get(name, [[]]):
            row = name + ("(%s)" % " ".join(args) if args else "")
            if not only or any(k in row for k in only.split(",")):
                rows.append((row, w, args))
    return rows


def has_numpy():
    return subprocess.run([PYTHON, "-c", "import numpy"], capture_output=True).returncode == 0


class Failed(RuntimeError):
    def __init__(self, cmd, status, stderr):
        super().__init__("%s failed (status %d): %s" % (" ".join(cmd), status, stderr[-500:]))
        self.status = status


def timed(cmd, env=None, cwd=None):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t = time.perf_counter() - t0
    if r.returncode != 0:
        raise Failed(cmd, r.returncode, r.stderr.decode(errors="replace"))
    return t


def tool_command(tool, workload, tmp, build, args=(), baseline=None):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("PYMEM_"):
            del env[k]
    if tool == "plain":
        return [PYTHON, workload] + list(args), env, None
    if tool in ("pymem", "pymem-baseline", "pymem-native", "pymem-native-c", "pymem-sample",
                "pymem-sample-baseline"):
        out = os.path.join(tmp, "capture.pmem")
        if os.path.exists(out):
            os.unlink(out)
        lib = os.path.join(baseline if tool.endswith("-baseline") else build, "libpymem.so")
        tool = tool[:-len("-baseline")] if tool.endswith("-baseline") else tool
        env.update(LD_PRELOAD=lib, PYMEM_OUTPUT=out)
        if tool in ("pymem-native", "pymem-native-c"):
            env["PYMEM_NATIVE"] = "1"
        if tool == "pymem-native-c":
            env["PYMEM_PYTHON_ALLOCATORS"] = "0"
        if tool == "pymem-sample":
            env["PYMEM_SAMPLE"] = str(512 * 1024)
        return [PYTHON, workload] + list(args), env, out
    if tool == "tracemalloc":
        return [PYTHON, "-X", "tracemalloc=1", workload] + list(args), env, None
    if tool == "heaptrack":
        for f in glob.glob(os.path.join(tmp, "heaptrack.*")):
            os.unlink(f)
        return ["heaptrack", "-o", os.path.join(tmp, "heaptrack.out"), PYTHON, workload] + list(args), env, None
    raise ValueError(tool)


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ver = subprocess.run([PYTHON, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                         text=True).stdout.strip()
    return "%s; %d cores, %s; Python %s (%s)\n" % (time.strftime("%Y-%m-%d"), os.cpu_count(), cpu, ver, PYTHON)


def main():
    global PYTHON
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tools", default="pymem,pymem-native,pymem-native-c,pymem-sample,tracemalloc,heaptrack")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("-k", help="only workloads whose name contains this (or one of these, comma-separated)")
    ap.add_argument("--baseline", help="another build directory: its exact mode in a column of its own")
    ap.add_argument("--python", default=PYTHON, help="the interpreter every column runs (default %(default)s)")
    ap.add_argument("--synthetic", type=int, default=100_000_000,
                    help="events in the synthetic capture for the analyzer (0: skip)")
    args = ap.parse_args()
    PYTHON = args.python
    tools = [t for t in args.tools.split(",") if t]
    if "heaptrack" in tools and not shutil.which("heaptrack"):
        print("heaptrack not installed: column left out", file=sys.stderr)
        tools.remove("heaptrack")
    build = os.path.abspath(args.build)
    baseline = os.path.abspath(args.baseline) if args.baseline else None
    if baseline:
        if "pymem-sample" in tools:
            tools.insert(tools.index("pymem-sample") + 1, "pymem-sample-baseline")
        if "pymem" in tools or "pymem-sample" not in tools:
            tools.insert(tools.index("pymem") + 1 if "pymem" in tools else 0, "pymem-baseline")
    print(machine())
    tmp = tempfile.mkdtemp(prefix="pymem-bench-")
    numpy = has_numpy()
    rows = []
    failures = []  # another tool's runs that failed: (workload, tool, status)
    try:
        for name, w, wargs in workloads(args.k):
            if "numpy" in name and not numpy:
                print("skip %s: numpy not installed" % name, file=sys.stderr)
                continue
            # the geometric mean is over ../shared's workloads, comparable from run to run
            row = {"workload": name, "shared": not wargs and not w.startswith(HERE)}
            # Each round runs every tool once, each after a plain run of its
            # own: a machine that drifts over minutes moves every column alike,
            # which a baseline column compared with its twin needs.
            ratios = {tool: [] for tool in tools}
            for round_ in range(args.runs):
                for tool in tools:
                    cmd, env, _ = tool_command("plain", w, tmp, build, wargs)
                    plain = timed(cmd, env, tmp)
                    cmd, env, capture = tool_command(tool, w, tmp, build, wargs, baseline)
                    try:
                        ratios[tool].append(timed(cmd, env, tmp) / plain)
                    except Failed as e:
                        if tool.startswith("pymem"):
                            raise  # pymem must never break the program: stop here
                        failures.append((name, tool, e.status))  # the other tool's own failure
                        continue
                    if tool != "pymem" or round_ < args.runs - 1:
                        continue
                    # the last exact capture, before another tool's run replaces it
                    t0 = time.perf_counter()
                    r = subprocess.run([os.path.join(build, "pymem"), "summary", "--json", capture],
                                       capture_output=True, text=True, check=True)
                    analysis = time.perf_counter() - t0
                    s = json.loads(r.stdout)
                    events = s["allocations"] + s["frees"]
                    row["events"] = events
                    row["bytes_per_event"] = os.path.getsize(capture) / max(events, 1)
                    row["analyzer_meps"] = events / analysis / 1e6
                    for cmd in ("peak", "leaks"):
                        t0 = time.perf_counter()
                        subprocess.run([os.path.join(build, "pymem"), cmd, capture], capture_output=True, check=True)
                        row[cmd + "_meps"] = events / (time.perf_counter() - t0) / 1e6
                    row["profiler_mib"] = s["profiler_bytes"] / 2**20
            for tool in tools:
                row[tool] = statistics.median(ratios[tool]) if ratios[tool] else None
            rows.append(row)
            print("done %s" % name, file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def fmt(v):
        return "%.2f×" % v if v is not None else "–"

    head = ["workload"] + tools
    if "pymem" in tools:
        head += ["events", "capture B/event", "analyzer Mevents/s (summary / peak / leaks)", "pymem own memory"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["workload"]] + [fmt(r.get(t)) for t in tools]
        if "pymem" in tools:
            cells += ["%.1f M" % (r["events"] / 1e6), "%.2f" % r["bytes_per_event"],
                      "%.0f / %.0f / %.0f" % (r["analyzer_meps"], r["peak_meps"], r["leaks_meps"]),
                      "%.1f MiB" % r["profiler_mib"]]
        print("| " + " | ".join(cells) + " |")
    shared = [r for r in rows if r["shared"]]
    if shared:
        geo = ["**geometric mean** (%d shared workloads)" % len(shared)]
        for t in tools:
            values = [r[t] for r in shared if r[t] is not None]
            geo.append("**%.2f×**" % statistics.geometric_mean(values) if len(values) == len(shared) else "–")
        if "pymem" in tools:
            events = sum(r["events"] for r in shared)
            size = sum(r["bytes_per_event"] * r["events"] for r in shared)
            geo += ["", "%.2f (all events)" % (size / events), "", ""]
        print("| " + " | ".join(geo) + " |")
    print("\nRatios: wall time under the tool / plain, median of %d alternating pairs; %s. "
          "pymem-native: --native (native frames on C allocations); pymem-native-c: --native "
          "--no-python-allocators (heaptrack's scope plus Python frames); pymem-sample: --sample (512 KiB)." % (
              args.runs, PYTHON))
    for name, tool, status in failures:
        print("%s failed on %s in one round (status %d; %s): that pair is left out of its median." % (
            tool, name, status, "signal %d" % -status if status < 0 else "exit status"))
    if args.synthetic and "pymem" in tools:
        synthetic(build, args.synthetic)


def measured(cmd):
    """Wall seconds and maximum RSS (MiB) of a command, from /usr/bin/time."""
    r = subprocess.run(["/usr/bin/time", "-f", "%e %M"] + cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), r.stderr[-300:]))
    wall, rss = r.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss) / 1024


def synthetic(build, events):
    """The analyzer on captures bigger than the workloads make: `events`
    events from 1000 lines (100,000 blocks live at most), and 1,000,000
    distinct native return addresses in libc to symbolise."""
    tmp = tempfile.mkdtemp(prefix="pymem-synth-")
    try:
        big = os.path.join(tmp, "big.pmem")
        subprocess.run([os.path.join(build, "synth"), big, str(events)], check=True)
        print("\nSynthetic capture: %d M events (%.0f MiB):\n" % (events / 1e6, os.path.getsize(big) / 2**20))
        print("| command | time | Mevents/s | max RSS |")
        print("|---|---|---|---|")
        for cmd in ("summary", "peak", "leaks"):
            wall, rss = measured([os.path.join(build, "pymem"), cmd, big])
            print("| pymem %s | %.1f s | %.0f | %.0f MiB |" % (cmd, wall, events / wall / 1e6, rss))
        os.unlink(big)
        libc = "/lib/x86_64-linux-gnu/libc.so.6"
        native = os.path.join(tmp, "native.pmem")
        subprocess.run([os.path.join(build, "synth"), native, "2000000", "1000000", libc], check=True)
        wall, rss = measured([os.path.join(build, "pymem"), "leaks", native])
        print("| pymem leaks, 1,000,000 distinct native addresses (libc, DWARF from /usr/lib/debug) | "
              "%.1f s | | %.0f MiB |" % (wall, rss))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
