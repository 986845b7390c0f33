#!/usr/bin/env python3
"""Tests of pymem as an installed tool: the man page against `pymem help`,
`make install`/`uninstall` into a staging root (every file there, the staged
`pymem run` finds its own library, nothing left after), and, as root on a
machine without pymem installed, the Debian package: `make deb`, `apt-get
install ./pymem_*.deb`, the installed paths at work (LD_PRELOAD by name,
`pymem leaks`, man pages, completion, the pytest plugin loaded by pytest by
itself), `apt-get remove --purge`, nothing left. Prints one line per check
and "N passed, N failed"; exits non-zero on any failure.

    python3 tests/package/run.py [--build DIR] [--no-deb]
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VERSION = open(os.path.join(ROOT, "VERSION")).read().strip()
SUITE = os.path.join(ROOT, "tests", "integration", "plugin")
passed = failed = 0


def check(label, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok    " + label)
    else:
        failed += 1
        print("FAIL  " + label + ("\n      " + str(detail)[-1500:].replace("\n", "\n      ") if detail else ""))


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 600)
    return subprocess.run(cmd, **kw)


def files_under(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_man_page_says_what_help_says(pymem):
    man = open(os.path.join(ROOT, "docs", "pymem.1")).read()
    listing = run([pymem, "help"]).stdout
    words = sorted(set(re.findall(r"^  ([a-z]+) ", listing, re.M)))
    helps = {w: run([pymem, "help", w]) for w in words}
    commands = [w for w, r in helps.items() if r.returncode == 0]
    check("pymem help lists the commands", len(commands) >= 12, listing[:400])
    missing = []
    for cmd in commands:
        if not re.search(r"^\.B %s\b" % cmd, man, re.M):
            missing.append(cmd)
        for opt in set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", helps[cmd].stdout)) - {"--help"}:
            if opt.replace("-", "\\-") not in man:
                missing.append("%s %s" % (cmd, opt))
    check("man pymem names every command and every option of `pymem help CMD`", not missing, missing)
    completion = open(os.path.join(ROOT, "dist", "pymem.bash-completion")).read()
    missing = [cmd for cmd in commands if not re.search(r"\b%s\b" % cmd, completion)]
    for cmd in commands:
        missing += ["%s %s" % (cmd, opt) for opt in set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", helps[cmd].stdout))
                    - {"--help"} if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), completion)]
    check("bash completion knows every command and option of `pymem help CMD`", not missing, missing)
    missing = []
    for env in re.findall(r'#define PM_ENV_\w+ "(PYMEM_\w+)"', open(os.path.join(ROOT, "include/pymem/env.h")).read()):
        if env in ("PYMEM_DIR", "PYMEM_ROOT_PID", "PYMEM_STARTED", "PYMEM_SAMPLE_SEED"):
            continue  # set by pymem for its own children, or named with its variable
        if env not in man:
            missing.append(env)
    check("man pymem names every environment variable a user sets", not missing, missing)
    r = run(["man", "-l", os.path.join(ROOT, "docs", "pymem.1")], env=dict(os.environ, MANWIDTH="80"))
    check("man pymem renders", r.returncode == 0 and "EXIT STATUS" in r.stdout, r.stderr[-300:])
    out = run([pymem, "--version"]).stdout
    check("pymem --version says the version and the format", out.startswith("pymem %s" % VERSION)
          and "format" in out, out)


def test_staged_install(build, python):
    for prefix in ("/usr/local", "/usr"):
        stage = tempfile.mkdtemp(prefix="pymem-stage-")
        try:
            r = run(["make", "-s", "--no-print-directory", "install", "BUILD=" + build, "DESTDIR=" + stage,
                     "PREFIX=" + prefix], cwd=ROOT)
            got = files_under(stage)
            pre = prefix.lstrip("/") + "/"
            want = [pre + "bin/pymem", pre + "lib/libpymem.so", pre + "include/pymem/format.h",
                    pre + "include/pymem/live.h", pre + "share/man/man1/pymem.1.gz",
                    pre + "share/man/man7/libpymem.7.gz", pre + "share/bash-completion/completions/pymem"]
            plugin = [f for f in got if f.endswith("dist-packages/pytest_pymem.py")]
            entry = [f for f in got if f.endswith(".dist-info/entry_points.txt")]
            check("make install PREFIX=%s: every file in place" % prefix, r.returncode == 0
                  and all(w in got for w in want) and len(plugin) == 1 and len(entry) == 1, (r.stderr, got))
            site = "lib/python3/dist-packages" if prefix == "/usr" else "lib/python3."
            check("make install PREFIX=%s: the plugin where Debian's python3 looks" % prefix,
                  bool(plugin) and plugin[0].startswith(pre + site), plugin)
            man = run(["zcat", os.path.join(stage, pre, "share/man/man1/pymem.1.gz")]).stdout
            check("make install PREFIX=%s: man page carries the version" % prefix, ("pymem %s" % VERSION) in man)
            staged = os.path.join(stage, pre, "bin/pymem")
            cap = os.path.join(stage, "t.pmem")
            r = run([staged, "run", "-q", "--python", python, "-o", cap, "--", python, "-c",
                     "x = [bytes(1000) for _ in range(100)]"], cwd=stage)
            check("make install PREFIX=%s: the installed pymem run finds its own ../lib/libpymem.so" % prefix,
                  r.returncode == 0 and os.path.exists(cap), r.stderr[-300:])
            if os.path.exists(cap):
                os.unlink(cap)
            r = run(["make", "-s", "--no-print-directory", "uninstall", "BUILD=" + build, "DESTDIR=" + stage,
                     "PREFIX=" + prefix], cwd=ROOT)
            check("make uninstall PREFIX=%s: no file left" % prefix, r.returncode == 0 and files_under(stage) == [],
                  files_under(stage))
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def deb_usable():
    if os.geteuid() != 0:
        return "not root"
    if run(["dpkg", "-s", "pymem"]).returncode == 0:
        return "the pymem package is installed on this machine already"
    if os.path.exists("/usr/local/bin/pymem") or os.path.exists("/usr/local/lib/libpymem.so"):
        return "pymem is installed under /usr/local"
    return None


def test_debian_package(build):
    why = deb_usable()
    if why:
        print("skip  the Debian package test: %s" % why)
        return
    r = run(["make", "-s", "--no-print-directory", "deb", "BUILD=" + build], cwd=ROOT, timeout=900)
    debs = glob.glob(os.path.join(ROOT, "pymem_%s_*.deb" % VERSION))
    check("make deb builds pymem_%s_<arch>.deb, lintian finds no error" % VERSION, r.returncode == 0 and len(debs) == 1,
          r.stdout[-800:] + r.stderr[-800:])
    if not debs:
        return
    fields = run(["dpkg-deb", "-f", debs[0]]).stdout
    check("the package depends on the libraries it links", all(lib in fields for lib in ("libunwind", "libzstd1", "libdw1")),
          fields)
    tmp = tempfile.mkdtemp(prefix="pymem-deb-")
    try:
        r = run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", debs[0]],
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        check("apt-get install ./%s" % os.path.basename(debs[0]), r.returncode == 0
              and os.path.exists("/usr/bin/pymem") and os.path.exists("/usr/lib/libpymem.so"), r.stderr[-800:])
        ldc = run(["ldconfig", "-p"]).stdout
        check("ldconfig knows libpymem.so by name",
              re.search(r"libpymem\.so \(.*\) => (/usr)?/lib/libpymem\.so", ldc) is not None,
              [l for l in ldc.splitlines() if "pymem" in l])
        cap = os.path.join(tmp, "demo.pmem")
        env = dict(os.environ, LD_PRELOAD="libpymem.so", PYMEM_OUTPUT=cap)
        r = run(["/usr/bin/python3", os.path.join(ROOT, "examples", "demo.py")], env=env, cwd=tmp)
        check("LD_PRELOAD=libpymem.so python3 examples/demo.py records", r.returncode == 0 and os.path.exists(cap),
              r.stderr[-500:])
        r = run(["/usr/bin/pymem", "leaks", cap], cwd=tmp)
        check("the installed pymem leaks reads it: demo.py's leak at its line", r.returncode == 0
              and "demo.py:" in r.stdout, r.stdout[:500] + r.stderr[-300:])
        r = run(["man", "-w", "pymem"]), run(["man", "-w", "7", "libpymem"])
        check("man pymem and man 7 libpymem are found", all(x.returncode == 0 for x in r), [x.stderr for x in r])
        check("bash completion installed", os.path.exists("/usr/share/bash-completion/completions/pymem"))
        cap = os.path.join(tmp, "pytest.pmem")
        r = run(["/usr/bin/pymem", "run", "-q", "--python", "/usr/bin/python3", "-o", cap, "-m", "pytest", "-p",
                 "no:cacheprovider", "-rf", "test_limits.py"], cwd=SUITE,
                env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        fails = set(re.findall(r"^FAILED \S+::(\S+)", r.stdout, re.M))
        check("pymem run -m pytest loads the installed plugin by itself and enforces the limits",
              fails == {"test_peak_over", "test_leak_over", "test_thread_leak_over", "test_param_limits[big-under-1MB]"},
              r.stdout[-1200:])
    finally:
        r = run(["apt-get", "remove", "--purge", "-y", "-qq", "pymem"], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        left = [p for p in ("/usr/bin/pymem", "/usr/lib/libpymem.so", "/usr/include/pymem", "/usr/share/doc/pymem",
                            "/usr/share/man/man1/pymem.1.gz", "/usr/lib/python3/dist-packages/pytest_pymem.py")
                if os.path.exists(p)]
        check("apt-get remove --purge pymem leaves nothing", r.returncode == 0 and not left
              and "libpymem" not in run(["ldconfig", "-p"]).stdout, (r.stderr[-300:], left))
        shutil.rmtree(tmp, ignore_errors=True)
        for d in debs:
            os.unlink(d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--no-deb", action="store_true", help="skip the Debian package (needs root)")
    args = ap.parse_args()
    build = os.path.relpath(os.path.abspath(args.build), ROOT)
    test_man_page_says_what_help_says(os.path.join(ROOT, build, "pymem"))
    test_staged_install(build, args.python)
    if not args.no_deb:
        test_debian_package(build)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
