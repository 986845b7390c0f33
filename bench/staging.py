#!/usr/bin/env python3
"""The staging scenario, measured: gunicorn (Debian's) with 2 sync workers
serving tests/integration/programs/flask_app.py, loaded by client threads for
a fixed time, plain and under each pymem mode in turn (alternating, --rounds
times), as fast as it serves or at --rate requests a second. Prints requests
per second and its ratio to the plain run, the captures' growth per minute
and per hour once the workers are warm, and the analyzer's speed (events per second)
on the largest worker capture of the exact mode for summary, peak, leaks and
diff. Not part of `make test`.

    python3 bench/staging.py [--seconds 20] [--clients 4] [--rounds 2] [--rate REQ/S]
                             [--modes exact,sample,aggregate,aggregate-sample]
"""
import argparse
import glob
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYMEM = os.path.join(ROOT, "build", "pymem")
APP_DIR = os.path.join(ROOT, "tests", "integration", "programs")
MODES = {"exact": [], "sample": ["--sample"], "aggregate": ["--aggregate"], "aggregate-sample": ["--aggregate", "--sample"],
         "no-python-allocators": ["--no-python-allocators"]}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def capture_bytes(folder):
    return sum(os.path.getsize(f) for f in glob.glob(os.path.join(folder, "*.pmem")))


def serve(mode, folder, seconds, clients, rate=0):
    port = free_port()
    gunicorn = ["-m", "gunicorn", "-w", "2", "-b", "127.0.0.1:%d" % port, "--chdir", APP_DIR, "flask_app:app"]
    if mode == "plain":
        argv = ["/usr/bin/python3"] + gunicorn
    else:
        argv = [PYMEM, "run", "--python", "/usr/bin/python3", "-q", "--follow-fork", "-o",
                os.path.join(folder, "g.pmem")] + MODES[mode] + gunicorn
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port

    def get(path):
        with urllib.request.urlopen(url + path, timeout=10) as r:
            r.read()
    deadline = time.time() + 30
    while True:
        try:
            get("/ok")
            break
        except OSError:
            if time.time() > deadline:
                p.kill()
                raise
            time.sleep(0.1)
    count = [0] * clients
    stop = time.time() + seconds

    def client(i):
        n = 0
        t0 = time.time()
        while time.time() < stop:
            get("/leak" if n % 10 == 0 else "/ok")
            n += 1
            if rate:
                ahead = t0 + n * clients / rate - time.time()
                if ahead > 0:
                    time.sleep(ahead)
        count[i] = n
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.time()
    for t in threads:
        t.start()
    # The capture's growth once the workers are warm (stacks defined, caches
    # full): from a third of the run to its end, before the exit's records.
    time.sleep(seconds / 3)
    warm, warm_t = capture_bytes(folder), time.time()
    for t in threads:
        t.join()
    grown = (capture_bytes(folder) - warm) / (time.time() - warm_t)
    elapsed = time.time() - start
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    return sum(count) / elapsed, grown, elapsed


def timed(args):
    t = time.time()
    r = subprocess.run([PYMEM] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode:
        raise SystemExit("pymem %s failed: %s" % (" ".join(args), r.stderr))
    return time.time() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--modes", default="exact,sample,aggregate,aggregate-sample")
    ap.add_argument("--rate", type=float, default=0, help="requests per second in all (0: as fast as served)")
    args = ap.parse_args()
    modes = args.modes.split(",")
    rates = {m: [] for m in ["plain"] + modes}
    sizes = {m: [] for m in modes}
    tmp = tempfile.mkdtemp(prefix="pymem-staging-")
    keep = None
    try:
        for rnd in range(args.rounds):
            for mode in ["plain"] + modes:
                folder = os.path.join(tmp, "%s-%d" % (mode, rnd))
                os.makedirs(folder)
                rate, grown, elapsed = serve(mode, folder, args.seconds, args.clients, args.rate)
                rates[mode].append(rate)
                if mode != "plain":
                    sizes[mode].append(grown * 60)
                if mode == "exact":
                    keep = folder
        plain = statistics.median(rates["plain"])
        print("Capture growth once warm (the last two thirds of each run):")
        print("| mode | requests/s | vs plain | capture MB/min | capture MB/hour |")
        print("|---|---|---|---|---|")
        print("| plain | %.0f | 1.00x | | |" % plain)
        for mode in modes:
            r = statistics.median(rates[mode])
            mb = statistics.median(sizes[mode]) / 1e6
            print("| %s | %.0f | %.2fx slower | %.2f | %.0f |" % (mode, r, plain / r, mb, mb * 60))
        if keep:
            workers = sorted((f for f in glob.glob(os.path.join(keep, "g.*.pmem"))), key=os.path.getsize)
            big = workers[-1]
            summ = json.loads(subprocess.run([PYMEM, "summary", "--json", big], capture_output=True,
                                             text=True).stdout)
            events = summ["allocations"] + summ["frees"]
            print("\nAnalysis of the largest worker capture (%.1f MB, %.1f M events):"
                  % (os.path.getsize(big) / 1e6, events / 1e6))
            print("| command | seconds | M events/s |")
            print("|---|---|---|")
            for cmd in (["summary"], ["peak"], ["leaks"], ["diff", big, "start", "end"]):
                argv = cmd if cmd[0] == "diff" else cmd + [big]
                t = timed(argv)
                print("| %s | %.2f | %.1f |" % (cmd[0], t, events / t / 1e6))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
