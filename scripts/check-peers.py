#!/usr/bin/env python3
"""Peer check: the native test programs (tests/native) under `pymem run
--native` and under heaptrack, compared: leaked bytes, peak and leaks site
by site (allocation calls are shown). A site is the innermost function outside the
allocator's wrappers (the same list pymem uses), so that heaptrack's own
naming (the frame under operator new) and pymem's (the program's function)
meet. Prints a table; exits non-zero on any difference.

    python3 scripts/check-peers.py [--build build]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

# analyzer/stacks.c's default list of allocator wrappers.
WRAPPERS = ("operator new", "std::allocator", "std::__new_allocator", "__gnu_cxx::new_allocator",
            "std::allocator_traits", "__gnu_cxx::__alloc_traits", "std::_Vector_base", "std::vector",
            "std::__cxx11::basic_string", "std::basic_string", "malloc", "calloc", "realloc")


def is_wrapper(name):
    for w in WRAPPERS:
        if name.startswith(w) and (len(name) == len(w) or name[len(w)] in "(<["):
            return True
    return False


# What only one of the two sees, because of the profiler itself, not the
# program: heaptrack loads libstdc++, whose 72 KiB exception pool it then
# counts in programs without C++ (a stack of the loader's and libstdc++'s
# frames only); the DTV of each thread grows with the TLS of the libraries a
# profiler loads (allocate_dtv). And one known difference: glibc's
# dl_find_object table, which dlopen grows and nothing ever frees, is a leak
# for pymem (and valgrind without --run-libc-freeres) and none for heaptrack.
ARTIFACTS = ("allocate_dtv", "<loader>", "_dl_find_object_update", "_dlfo_mappings_segment_allocate")


def site_of(functions):
    """The key of a stack given innermost first: its first non-wrapper, with
    glibc's internal alias prefix dropped."""
    names = [f[len("__GI_"):] if f.startswith("__GI_") else f for f in functions]
    names = [n[2:] if n.startswith("__") and not n.startswith("___") else n for n in names]
    if names and all(n.startswith("0x") or "+0x" in n or n in ("_dl_init", "call_init") for n in names):
        return "<loader>"
    for f in names:
        if not is_wrapper(f):
            return f.split("(")[0]
    return names[0].split("(")[0] if names else "?"


def without_artifacts(sites):
    return {k: v for k, v in sites.items() if k not in ARTIFACTS}


def heaptrack(prog, args, tmp):
    out = os.path.join(tmp, "ht")
    subprocess.run(["heaptrack", "-o", out, prog] + args, capture_output=True, check=True)
    data = out + ".zst"
    if not os.path.exists(data):
        data = out + ".gz"
    summary = subprocess.run(["heaptrack_print", "-f", data, "-p", "0", "-a", "0", "-T", "0"],
                             capture_output=True, text=True).stdout
    calls = int(next(l for l in summary.splitlines() if l.startswith("calls to allocation functions:"))
                .split(":")[1].split()[0])
    result = {"calls": calls}
    for cost in ("leaked", "peak"):
        stacks = os.path.join(tmp, cost + ".txt")
        subprocess.run(["heaptrack_print", "-f", data, "-p", "0", "-a", "0", "-T", "0", "-F", stacks,
                        "--flamegraph-cost-type", cost], capture_output=True, check=True)
        sites = {}
        for line in open(stacks):
            frames, _, n = line.rstrip("\n").rpartition(" ")
            if not int(n):
                continue
            names = [f.rsplit(" (", 1)[0] for f in frames.rstrip(";").split(";")]
            key = site_of(list(reversed(names)))
            sites[key] = sites.get(key, 0) + int(n)
        result[cost] = sites
    result["artifact_calls"] = 0
    os.unlink(data)
    return result


def pymem(build, prog, args, tmp):
    out = os.path.join(tmp, "pm.pmem")
    subprocess.run([os.path.join(build, "pymem"), "run", "-q", "--native", "-o", out, "--", prog] + args,
                   capture_output=True, check=True)

    def report(*a):
        return json.loads(subprocess.run([os.path.join(build, "pymem")] + list(a) + [out, "--json", "--top", "0",
                                          "--native", "--by", "traceback", "--domain", "malloc"],
                                         capture_output=True, text=True, check=True).stdout)
    summ = json.loads(subprocess.run([os.path.join(build, "pymem"), "summary", out, "--json"],
                                     capture_output=True, text=True, check=True).stdout)
    result = {"calls": summ["domains"]["malloc"]["allocations"]}
    for cost, cmd in (("leaked", "leaks"), ("peak", "peak")):
        sites = {}
        for s in report(cmd)["sites"]:
            # heaptrack's stacks leave out inlined frames.
            key = site_of([f["function"] for f in s["stack"] if not f.get("inlined")])
            sites[key] = sites.get(key, 0) + s["bytes"]
        result[cost] = sites
    os.unlink(out)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    args = ap.parse_args()
    if not shutil.which("heaptrack"):
        print("check-peers: heaptrack is not installed (apt-get install heaptrack)")
        return 1
    native = os.path.join(args.build, "tests", "native")
    programs = [("chain", []), ("cxx", []), ("ctor_main", []), ("recurse", []),
                ("loader", [os.path.join(native, "libplugin_a.so"), "1111"])]
    tmp = tempfile.mkdtemp(prefix="pymem-peers-")
    passed = failed = 0
    print("| program | calls pymem/heaptrack | leaked pymem/heaptrack | peak pymem/heaptrack | leak sites | verdict |")
    # Calls are shown, not compared: each profiler's own libraries allocate
    # in the program's name (heaptrack's libstdc++ pool, a DTV per thread).
    print("|---|---|---|---|---|---|")
    try:
        for name, pargs in programs:
            prog = os.path.join(native, name)
            ht = heaptrack(prog, pargs, tmp)
            pm = pymem(args.build, prog, pargs, tmp)
            pl, hl = without_artifacts(pm["leaked"]), without_artifacts(ht["leaked"])
            pp, hp = without_artifacts(pm["peak"]), without_artifacts(ht["peak"])
            leaked = (sum(pl.values()), sum(hl.values()))
            peak = (sum(pp.values()), sum(hp.values()))
            same_sites = pl == hl
            ok = leaked[0] == leaked[1] and peak[0] == peak[1] and same_sites
            passed, failed = passed + ok, failed + (not ok)
            print("| %s | %d / %d | %d / %d | %d / %d | %d %s | %s |" % (
                name, pm["calls"], ht["calls"], leaked[0], leaked[1], peak[0], peak[1], len(pm["leaked"]),
                "same" if same_sites else "differ: pymem %s heaptrack %s" % (pl, hl),
                "ok" if ok else "DIFFERENT"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("check-peers: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
