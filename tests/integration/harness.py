"""Shared helpers of the integration tests: the test programs' marks, the
context of one interpreter (preload, analyzer, temporary directory), and the
check counters."""
import glob
import json
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = os.path.join(HERE, "programs")
BYTES_HEADER = 33  # offsetof(PyBytesObject, ob_sval) + 1 on CPython 3.8-3.13

passed = 0
failed = 0
failures = []  # repeated at the end of the run: CI shows its tail


def marks(name, folder=PROGRAMS):
    """Line numbers of the 'MARK:X' comments in a test program (Python, or C
    in another folder)."""
    out = {}
    with open(os.path.join(folder, name)) as f:
        for n, line in enumerate(f, 1):
            m = re.search(r"MARK:(\w+)", line)
            if m:
                out[m.group(1)] = n
    return out


class Ctx:
    def __init__(self, build, python, tmp, preload=None, defaults=None):
        self.build = os.path.abspath(build)
        self.pymem = os.path.join(self.build, "pymem")
        self.lib = os.path.abspath(preload) if preload else os.path.join(self.build, "libpymem.so")
        self.python = python
        self.tmp = tmp
        self.defaults = defaults or {}  # PYMEM_ settings of every run, unless a test sets its own

    def env(self, **extra):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("PYMEM_"):
                del env[k]
        env["LD_PRELOAD"] = self.lib
        env.update(self.defaults)
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def capture(self, name):
        path = os.path.join(self.tmp, name)
        for p in glob.glob(path[:-5] + "*.pmem"):
            os.unlink(p)
        return path

    def run(self, argv, output, timeout=120, **extra):
        """Any command under the preload, writing its capture to `output`."""
        return subprocess.run(argv, env=self.env(PYMEM_OUTPUT=output, **extra),
                              capture_output=True, text=True, timeout=timeout, cwd=self.tmp)

    def preload(self, args, output, timeout=120, **extra):
        return self.run([self.python] + args, output, timeout, **extra)

    def analyze(self, *args, check=True):
        r = subprocess.run([self.pymem] + list(args), capture_output=True, text=True, timeout=300)
        if check and r.returncode != 0:
            raise AssertionError("pymem %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr.strip()))
        return r

    def json(self, *args):
        return json.loads(self.analyze(*(list(args) + ["--json"])).stdout)


def check(label, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok    %s" % label)
    else:
        failed += 1
        failures.append("%s %s" % (label, detail))
        print("FAIL  %s %s" % (label, detail))


def blocks_at(c, s, n, size, recycled=1, domain=None):
    """Whether site `s` (its `domain` only, if given) holds exactly `n` blocks
    of `size` bytes. From Python 3.13 on, an object CPython recycles from a
    free list belongs to the line that reuses it (as tracemalloc says): up to
    `recycled` small objects (under 64 bytes each) of the line's own may come
    with them."""
    if s is not None and domain:
        s = s["domains"].get(domain)
    if s is None:
        return False
    extra = s["count"] - n
    rest = s["bytes"] - n * size
    allowed = recycled if c.version >= (3, 13) else 0
    return 0 <= extra <= allowed and 0 <= rest <= 64 * extra


def site(sites, line, file_suffix):
    for s in sites:
        if s["line"] == line and s["file"].endswith(file_suffix):
            return s
    return None


def attribution_counts(c, tag, name, domains, **extra):
    """Runs programs/attribution.py (tracemalloc in the same process) into
    capture `name`: a function giving pymem's block count at a MARK of it
    (what was live at the snapshot 'marks', made since tracemalloc started,
    in `domains`), tracemalloc's count at each MARK, and pymem's sites;
    None if the program failed."""
    m = marks("attribution.py")
    out = c.capture(name)
    r = c.preload([os.path.join(PROGRAMS, "attribution.py")], out, **extra)
    if r.returncode != 0:
        check(tag + " attribution.py runs", False, r.stderr[-500:])
        return None
    tm = {int(k): v for k, v in json.loads(r.stdout).items()}
    sites = c.json("leaks", out, "--at", "marks", "--since", "tracemalloc-start", "--top", "0", "--by", "lineno",
                   "--domain", domains)["sites"]

    def count(mark):
        return sum(s["count"] for s in sites if s["line"] == m[mark] and s["file"].endswith("attribution.py"))
    return count, {mark: tm.get(line, 0) for mark, line in m.items()}, sites
