"""Integration tests of the live C API (include/pymem/live.h) on every
Python, and of the pytest plugin (python/pytest_pymem.py) on the Debian
python3 that has pytest: known bytes at known lines, in the API's answers and
in the plugin's failure texts."""
import json
import os
import re
import subprocess

from harness import BYTES_HEADER, PROGRAMS, check, marks

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN_DIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "python")
SUITE = os.path.join(HERE, "plugin")


def test_live_api(c, tag):
    m = marks("live_api.py")
    out = c.capture("live.pmem")
    r = c.preload([os.path.join(PROGRAMS, "live_api.py")], out, PYMEM_LIVE=1)
    check(tag + " live API: program runs", r.returncode == 0, r.stderr[-500:])
    got = json.loads(r.stdout)
    live = got["live"]
    check(tag + " live API: state 1, begin/end/read answer 0", (got["state"], got["begin"], got["end"], got["read"])
          == (1, 0, 0, 0), str(got)[:300])
    big, size, n = 4000000 + BYTES_HEADER, 2000 + BYTES_HEADER, 500

    def at(sites, line, domain=3):
        return [s for s in sites if s["line"] == line and s["domain"] == domain]

    kept = at(got["now"], m["KEPT"])
    thread = at(got["now"], m["THREAD"])
    check(tag + " live API: the 500 blocks kept at their line, exact", [(s["bytes"], s["blocks"]) for s in kept]
          == [(n * size, n)], str(kept))
    check(tag + " live API: another thread's block counts, at its line",
          [(s["bytes"], s["blocks"]) for s in thread] == [(2000000 + BYTES_HEADER, 1)], str(thread))
    check(tag + " live API: the freed 4 MB temporary is not live", not at(got["now"], m["BIG"]))
    # The peak: the temporary, exact at its line, and what the call into
    # ctypes and the interpreter left live around it (a few small blocks:
    # 1,862 B in 6 on 3.8 once, none in most runs).
    check(tag + " live API: the window's peak is the 4 MB temporary, exact at its line",
          big <= live["peak_bytes"] < big + 4096 and live["peak_blocks"] <= 8
          and [(s["bytes"], s["blocks"]) for s in at(got["peak"], m["BIG"])] == [(big, 1)], str(live))
    # Blocks of the window: the 500, the thread's, and a few of ctypes and
    # threading (under 16 KiB); frees after the end change nothing, and
    # blocks made before the window are not in it when freed in it.
    base = n * size + 2000000 + BYTES_HEADER
    check(tag + " live API: the window's total holds what it kept, frozen at its end",
          base <= live["bytes"] < base + 16384 and live["open"] == 0 and live["heap_bytes"] >= live["bytes"]
          and got["at_end_bytes"] == live["bytes"],
          "bytes %d, want %d + under 16 KiB" % (live["bytes"], base))
    check(tag + " live API: an unknown stack is -1", got["bad_stack"] == -1)
    out = c.capture("nolive.pmem")
    r = c.preload([os.path.join(PROGRAMS, "live_api.py")], out)
    got = json.loads(r.stdout)
    check(tag + " live API: without PYMEM_LIVE, state 0 and every call -1",
          (got["state"], got["begin"], got["end"], got["read"]) == (0, -1, -1, -1), str(got)[:200])


def run_suite(c, args, live=True, pymem=True, files=("test_limits.py",), follow=False):
    """pytest on the plugin's test suite, under `pymem run` (or not)."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("PYMEM_"):
            del env[k]
    env["PYTHONPATH"] = PLUGIN_DIR
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    pytest = ["-m", "pytest", "-p", "pytest_pymem", "-p", "no:cacheprovider", "-rf"] + list(args) + list(files)
    if pymem:
        out = c.capture("plugin.pmem")
        cmd = ([c.pymem, "run", "-q", "--python", c.python, "-o", out] + ([] if live else ["--no-live"])
               + (["--follow-fork"] if follow else []) + pytest)
    else:
        cmd = [c.python] + pytest
    return subprocess.run(cmd, capture_output=True, text=True, cwd=SUITE, env=env, timeout=300)


def failure_of(text, test):
    """The failure section of `test` in pytest's output."""
    m = re.search(r"_{3,} %s _{3,}\n(.*?)(?=\n_{3,} |\n={3,} )" % re.escape(test), text, re.S)
    return m.group(1) if m else ""


def test_pytest_plugin(c, tag):
    if subprocess.run([c.python, "-c", "import pytest"], capture_output=True).returncode != 0:
        if not c.python.startswith("/usr/bin/"):  # Debian's python3-pytest is the system Python's only
            print("skip  %s pytest plugin: no pytest for this Python" % tag)
            return
        check(tag + " pytest plugin: pytest importable (python3-pytest)", False)
        return
    m = marks("test_limits.py", SUITE)
    r = run_suite(c, ["--pymem-report", "--pymem-report-top", "0", "--pymem-limit-memory", "2 MB"])
    text = r.stdout
    fails = set(re.findall(r"^FAILED \S+::(\S+)", text, re.M))
    want_fail = {"test_peak_over", "test_leak_over", "test_thread_leak_over", "test_param_limits[big-under-1MB]",
                 "test_default_limit_applies"}
    check(tag + " pytest plugin: exactly the tests over their limits fail", fails == want_fail and r.returncode == 1,
          "failed %s\n%s" % (sorted(fails), text[-1500:] + r.stderr[-500:]))
    check(tag + " pytest plugin: header says the limits are enforced", "limit_memory and limit_leaks enforced" in text)
    peak = 5 * 1024 * 1024 + BYTES_HEADER
    f = failure_of(text, "test_peak_over")
    check(tag + " limit_memory: failure names the limit, the peak, the line with exact bytes",
          "Test was limited to 1.0 MiB (1,048,576 bytes) of memory but allocated 5.0 MiB (" in f
          and "%s bytes) in 1 block (pyobj)\n      %s:%d in test_peak_over" % (format(peak, ","), os.path.join(SUITE, "test_limits.py"), m["PEAK"]) in f, f)
    got = re.search(r"allocated 5\.0 MiB \(([0-9,]+) bytes\)", f)
    check(tag + " limit_memory: the peak is the 5 MiB block and pytest's few hundred bytes",
          got is not None and peak <= int(got.group(1).replace(",", "")) < peak + 4096, f[:300])
    leak = 3 * 1024 * 1024 + BYTES_HEADER
    f = failure_of(text, "test_leak_over")
    check(tag + " limit_leaks: failure names what stayed, at its line, exact",
          "of leaked memory but left 3.0 MiB" in f and "%s bytes) in 1 block (pyobj)\n      %s:%d in test_leak_over"
          % (format(leak, ","), os.path.join(SUITE, "test_limits.py"), m["LEAK"]) in f, f)
    f = failure_of(text, "test_thread_leak_over")
    check(tag + " limit_leaks: a block another thread made in the test counts, at the thread's line",
          "%s bytes) in 1 block (pyobj)\n      %s:%d in " % (format(2 * 1024 * 1024 + BYTES_HEADER, ","),
                                                          os.path.join(SUITE, "test_limits.py"), m["THREAD"]) in f, f)
    f = failure_of(text, "test_param_limits[big-under-1MB]")
    check(tag + " per-parametrization limits: only the case over its own limit fails",
          "limited to 1.0 MiB" in f and "test_param_limits[big-under-20MB]" not in fails
          and "test_param_limits[small-under-1MB]" not in fails, f[:300])
    f = failure_of(text, "test_default_limit_applies")
    check(tag + " --pymem-limit-memory: the default limit fails a test without a marker", "limited to 2.0 MiB" in f
          and "test_marker_overrides_default" not in fails, f[:300])
    rows = dict((t, (int(p.replace(",", "")), int(l.replace(",", ""))))
                for p, l, t in re.findall(r"^\s*([0-9,]+)\s+([0-9,]+)\s+\S+::(\S+)$", text, re.M))
    check(tag + " --pymem-report: a row per test, peak and leaked",
          len(rows) == 11 and rows.get("test_leak_over", (0, 0))[1] >= leak
          and rows.get("test_freed_in_test", (0, 10**9))[1] < 4096
          and rows.get("test_freed_in_test", (0, 0))[0] >= 8 * 1024 * 1024, str(rows)[:600])
    check(tag + " freeing inside the test is no leak; blocks made before it and freed in it count nowhere",
          "test_frees_what_setup_made" not in fails and rows.get("test_frees_what_setup_made", (1, 1))[0] < 4096,
          str(rows.get("test_frees_what_setup_made")))

    if subprocess.run([c.python, "-c", "import xdist"], capture_output=True).returncode == 0:
        r = run_suite(c, ["-n", "2"], follow=True)
        fails = set(re.findall(r"^FAILED \S+::(\S+)", r.stdout, re.M))
        check(tag + " pytest plugin under xdist (pymem run --follow-fork -m pytest -n 2): the workers enforce the limits",
              fails == want_fail - {"test_default_limit_applies"} and "[gw" in r.stdout, r.stdout[-1500:])
    else:
        check(tag + " pytest-xdist importable (python3-pytest-xdist)", False)
    r = run_suite(c, [], pymem=False)
    check(tag + " pytest plugin without pymem: says so, enforces nothing, changes no result",
          r.returncode == 0 and "not running under pymem" in r.stdout and "11 passed" in r.stdout, r.stdout[-800:])
    r = run_suite(c, [], live=False)
    check(tag + " pytest plugin under pymem --no-live: says the table is off, enforces nothing",
          r.returncode == 0 and "without the live table" in r.stdout, r.stdout[-800:])
    r = run_suite(c, [], files=("bad_marker.py",))
    check(tag + " pytest plugin: a marker with a bad size stops the session with one clear line",
          r.returncode == 4 and "limit_memory: not a size: 'lots'" in r.stdout + r.stderr, (r.stdout + r.stderr)[-500:])
    r = run_suite(c, ["--pymem-limit-memory", "12 parsecs"], files=("bad_marker.py",))
    check(tag + " pytest plugin: a bad --pymem-limit-memory is a usage error",
          r.returncode == 4 and "--pymem-limit-memory: not a size" in r.stdout + r.stderr, (r.stdout + r.stderr)[-500:])


EVERY = [test_live_api]
ONCE = [test_pytest_plugin]
