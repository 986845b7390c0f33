#!/usr/bin/env python3
"""Overhead benchmark: each workload of ../shared/bench/workloads (and
bench/workloads) runs plain and under each tool, alternating (plain, tool,
plain, tool, ...); the table gives the median of the pair-by-pair wall-time
ratios, so that drift of the machine cancels out. For pymem it also gives
capture bytes per event (allocation or free), the analyzer's events per
second on that capture (`pymem summary`), and pymem's own memory.
Prints a Markdown table. Not part of `make test`.

    python3 bench/run.py [--runs N] [--tools pymem,pymem-native,pymem-sample,tracemalloc,heaptrack] [-k WORKLOAD]
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


def workloads(only):
    found = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "bench", "workloads", "*.py")))
    found += sorted(glob.glob(os.path.join(HERE, "workloads", "*.py")))
    return [w for w in found if not only or only in os.path.basename(w)]


def has_numpy():
    return subprocess.run([PYTHON, "-c", "import numpy"], capture_output=True).returncode == 0


def timed(cmd, env=None, cwd=None):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), r.stderr.decode()[-500:]))
    return t


def tool_command(tool, workload, tmp, build):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("PYMEM_"):
            del env[k]
    if tool == "plain":
        return [PYTHON, workload], env, None
    if tool in ("pymem", "pymem-native", "pymem-sample"):
        out = os.path.join(tmp, "capture.pmem")
        if os.path.exists(out):
            os.unlink(out)
        env.update(LD_PRELOAD=os.path.join(build, "libpymem.so"), PYMEM_OUTPUT=out)
        if tool == "pymem-native":
            env["PYMEM_NATIVE"] = "1"
        if tool == "pymem-sample":
            env["PYMEM_SAMPLE"] = str(512 * 1024)
        return [PYTHON, workload], env, out
    if tool == "tracemalloc":
        return [PYTHON, "-X", "tracemalloc=1", workload], env, None
    if tool == "heaptrack":
        for f in glob.glob(os.path.join(tmp, "heaptrack.*")):
            os.unlink(f)
        return ["heaptrack", "-o", os.path.join(tmp, "heaptrack.out"), PYTHON, workload], env, None
    raise ValueError(tool)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tools", default="pymem,pymem-native,pymem-sample,tracemalloc,heaptrack")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("-k", help="only workloads whose name contains this")
    args = ap.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    if "heaptrack" in tools and not shutil.which("heaptrack"):
        print("heaptrack not installed: column left out", file=sys.stderr)
        tools.remove("heaptrack")
    build = os.path.abspath(args.build)
    tmp = tempfile.mkdtemp(prefix="pymem-bench-")
    numpy = has_numpy()
    rows = []
    try:
        for w in workloads(args.k):
            name = os.path.basename(w)[:-3]
            if "numpy" in name and not numpy:
                print("skip %s: numpy not installed" % name, file=sys.stderr)
                continue
            row = {"workload": name}
            for tool in tools:
                ratios = []
                for _ in range(args.runs):
                    cmd, env, _ = tool_command("plain", w, tmp, build)
                    plain = timed(cmd, env, tmp)
                    cmd, env, capture = tool_command(tool, w, tmp, build)
                    ratios.append(timed(cmd, env, tmp) / plain)
                row[tool] = statistics.median(ratios)
                if tool == "pymem":
                    t0 = time.perf_counter()
                    r = subprocess.run([os.path.join(build, "pymem"), "summary", "--json", capture],
                                       capture_output=True, text=True, check=True)
                    analysis = time.perf_counter() - t0
                    s = json.loads(r.stdout)
                    events = s["allocations"] + s["frees"]
                    row["events"] = events
                    row["bytes_per_event"] = os.path.getsize(capture) / max(events, 1)
                    row["analyzer_meps"] = events / analysis / 1e6
                    row["profiler_mib"] = s["profiler_bytes"] / 2**20
            rows.append(row)
            print("done %s" % name, file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def fmt(v):
        return "%.2f×" % v if v is not None else "–"

    head = ["workload"] + tools
    if "pymem" in tools:
        head += ["events", "capture B/event", "analyzer Mevents/s", "pymem own memory"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["workload"]] + [fmt(r.get(t)) for t in tools]
        if "pymem" in tools:
            cells += ["%.1f M" % (r["events"] / 1e6), "%.2f" % r["bytes_per_event"],
                      "%.1f" % r["analyzer_meps"], "%.1f MiB" % r["profiler_mib"]]
        print("| " + " | ".join(cells) + " |")
    if rows:
        geo = ["**geometric mean**"]
        for t in tools:
            geo.append("**%.2f×**" % statistics.geometric_mean([r[t] for r in rows]))
        if "pymem" in tools:
            geo += ["", "", "", ""]
        print("| " + " | ".join(geo) + " |")
    print("\nRatios: wall time under the tool / plain, median of %d alternating pairs; %s." % (
        args.runs, PYTHON))


if __name__ == "__main__":
    main()
