"""Integration tests of native stacks (pymem run --native): C programs with
known call chains profiled on their own, C called from Python (hybrid
stacks), dlopen/dlclose, stripped libraries, depth limits, the mmap domain,
RTLD_DEEPBIND and programs that bring their own malloc."""
import json
import os
import re
import shutil
import subprocess

from harness import PROGRAMS, check, marks

SOURCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "native")


def c_marks(name):
    return marks(name, SOURCES)


def bins(c):
    return os.path.join(c.build, "tests", "native")


def run_native(c, argv, out, **extra):
    return c.run(argv, out, PYMEM_NATIVE=1, **extra)


def frames(site):
    return [(f["kind"], f["function"], os.path.basename(f["file"]), f["line"]) for f in site["stack"]]


def find(sites, function):
    for s in sites:
        if s["function"] == function:
            return s
    return None


# --- on every Python --------------------------------------------------------

def test_hybrid_stack(c, tag):
    m = marks("hybrid.py")
    cm = c_marks("hybrid.c")
    out = c.capture("hybrid.pmem")
    r = c.preload([os.path.join(PROGRAMS, "hybrid.py"), os.path.join(bins(c), "libhybrid.so")], out,
                  PYMEM_NATIVE=1)
    check(tag + " hybrid.py runs under --native", r.returncode == 0 and r.stdout == "15\n", r.stderr)
    leaks = c.json("leaks", out, "--top", "0")
    top = leaks["sites"][0]
    check(tag + " hybrid: the site is the Python line that called C", top["file"].endswith("hybrid.py")
          and top["line"] == m["CALL"] and top["domains"].get("malloc", {}).get("bytes") == 500000
          and top["domains"]["malloc"]["count"] == 10, str(top)[:300])
    f = frames(top)
    check(tag + " hybrid: C frames first, with their lines", f[:2] == [
        ("native", "hybrid_inner", "hybrid.c", cm["hybrid_malloc"]),
        ("native", "hybrid_alloc", "hybrid.c", cm["hybrid_call"])], str(f[:4]))
    py = [x for x in f if x[0] == "python"]
    check(tag + " hybrid: then the Python frames in order", [(x[1].split(".")[-1], x[3]) for x in py[:3]] == [
        ("allocate", m["CALL"]), ("main", m["MAIN"]), ("<module>", m["MODULE"])], str(py[:4]))
    first_py = next(i for i, x in enumerate(f) if x[0] == "python")
    check(tag + " hybrid: the interpreter loop is replaced, not shown", all(
        "EvalFrameDefault" not in x[1] for x in f[:first_py + 3]) and first_py > 2, str(f[:first_py + 3]))
    nested = next((s for s in leaks["sites"] if s["line"] == m["KEY"]), None)
    g = frames(nested) if nested else []
    order = [(x[1].split(".")[-1], x[3]) for x in g if x[0] == "python"][:4]
    py_at = [i for i, x in enumerate(g) if x[0] == "python"]
    check(tag + " hybrid: Python -> C (sorted) -> Python -> C keeps each group in its place", nested is not None
          and nested["domains"]["malloc"] == {"bytes": 5 * 70000, "count": 5} and order == [
              ("keyfunc", m["KEY"]), ("sort_with_c_in_between", m["SORTED"]), ("<module>", m["MODULE2"])]
          and len(py_at) >= 3 and py_at[1] - py_at[0] > 1 and g[0][1] == "hybrid_inner", str(g)[:600])
    native_view = c.json("leaks", out, "--native", "--top", "0")
    inner = find(native_view["sites"], "hybrid_inner")
    check(tag + " hybrid --native: the site is the C line", inner is not None and inner["line"] ==
          cm["hybrid_malloc"] and inner["bytes"] == 500000 + 5 * 70000 and inner["count"] == 15, str(inner)[:300])
    out_all = c.capture("hybrid-all.pmem")
    r = c.preload([os.path.join(PROGRAMS, "hybrid.py"), os.path.join(bins(c), "libhybrid.so")], out_all,
                  PYMEM_NATIVE="all")
    everything = c.json("leaks", out_all, "--top", "0", "--by", "traceback")["sites"]
    py_objects = [s for s in everything if "pyobj" in s["domains"] and s["phase"] == "runtime"
                  and any(f["kind"] == "native" for f in s["stack"])]
    plain_objects = [s for s in c.json("leaks", out, "--top", "0", "--by", "traceback")["sites"]
                     if list(s["domains"]) == ["pyobj"] and any(f["kind"] == "native" for f in s["stack"])]
    check(tag + " hybrid: native frames on Python objects with --native=all only", r.returncode == 0 and
          py_objects and not plain_objects, "%d/%d" % (len(py_objects), len(plain_objects)))
    py_view = c.json("leaks", out, "--python-only", "--top", "1")
    check(tag + " hybrid --python-only: no native frame left", py_view["sites"][0]["line"] == m["CALL"] and
          all(x["kind"] == "python" for x in py_view["sites"][0]["stack"]), str(py_view["sites"][0])[:300])


def test_python_allocators_off(c, tag):
    """--no-python-allocators: Python's domains are not hooked; the objects'
    memory shows as pymalloc's arenas and the large buffer as one malloc
    block, each at its line, with native frames under --native."""
    m = marks("unhooked.py")
    out = c.capture("unhooked.pmem")
    r = subprocess.run([c.pymem, "run", "-q", "--python", c.python, "--native", "--no-python-allocators", "-o", out,
                        os.path.join(PROGRAMS, "unhooked.py")], capture_output=True, text=True, cwd=c.tmp)
    check(tag + " --no-python-allocators runs the program unchanged", r.returncode == 0 and r.stdout == "3200000\n",
          r.stderr)
    summ = c.json("summary", out)
    d = summ["domains"]
    check(tag + " --no-python-allocators: no Python domain recorded, and the summary says so",
          d["pyraw"]["allocations"] == d["pymem"]["allocations"] == d["pyobj"]["allocations"] == 0
          and summ["python_allocators_recorded"] is False and d["malloc"]["allocations"] > 0, str(summ)[:400])
    text = c.analyze("summary", out).stdout
    check(tag + " --no-python-allocators: the text summary says objects were not seen",
          "Python's allocators were not hooked" in text, text)
    leaks = c.json("leaks", out, "--top", "0")["sites"]
    buf = [s for s in leaks if s["line"] == m["BUFFER"] and s["file"].endswith("unhooked.py")]
    check(tag + " --no-python-allocators: the buffer is one malloc block of its size at its line", len(buf) == 1
          and buf[0]["domains"] == {"malloc": {"bytes": 3000001, "count": 1}}, str(buf)[:300])
    arena = 1 << 20 if c.version >= (3, 10) else 1 << 18
    objs = [s for s in leaks if s["line"] == m["OBJECTS"] and s["file"].endswith("unhooked.py")]
    mapped = sum(s["domains"].get("mmap", {}).get("bytes", 0) for s in objs)
    check(tag + " --no-python-allocators: the objects show as whole arenas at their line", mapped >= 8 << 20
          and mapped % arena == 0, "%d B in %s" % (mapped, str(objs)[:300]))
    native = c.json("leaks", out, "--by", "traceback", "--top", "0")["sites"]
    under = [s for s in native if s["line"] == m["BUFFER"] and s["file"].endswith("unhooked.py")]
    stack = under[0]["stack"] if under else []
    first_py = next((i for i, f in enumerate(stack) if f["kind"] == "python"), 0)
    check(tag + " --no-python-allocators --native: native frames under the Python line", first_py > 0
          and stack[first_py]["line"] == m["BUFFER"], str(under)[:400])
    r = subprocess.run([c.pymem, "run", "--native=all", "--no-python-allocators", "x.py"], capture_output=True,
                       text=True)
    check(tag + " --native=all with --no-python-allocators is refused", r.returncode == 2
          and "--no-python-allocators" in r.stderr and r.stderr.count("\n") == 1, r.stderr)


# --- once -------------------------------------------------------------------

def test_native_chain(c, tag):
    cm = c_marks("chain.c")
    out = c.capture("chain.pmem")
    r = run_native(c, [os.path.join(bins(c), "chain")], out)
    check(tag + " chain (not Python) runs under --native", r.returncode == 0 and r.stdout == "100 1\n", r.stderr)
    leaks = c.json("leaks", out, "--top", "0")
    node = find(leaks["sites"], "make_node")
    check(tag + " chain: leak of 100 x 1000 B at make_node's malloc line", node is not None and node["bytes"] ==
          100000 and node["count"] == 100 and node["line"] == cm["make_node"], str(node)[:300])
    check(tag + " chain: main -> parse -> make_node with lines", node is not None and [
        (x[1], x[3]) for x in frames(node)[:3]] == [("make_node", cm["make_node"]), ("parse", cm["parse"]),
                                                   ("main", cm["main_parse"])], str(node and frames(node)[:4]))
    peak = c.json("peak", out, "--top", "1")
    top = peak["sites"][0]
    check(tag + " chain: the peak is the 8 MiB scratch buffer", top["function"] == "scratch" and top["line"] ==
          cm["scratch"] and top["bytes"] == 8 << 20 and peak["peak_bytes"] >= (8 << 20) + 100000, str(top)[:300])
    if shutil.which("go"):
        pb = os.path.join(c.tmp, "chain.pb.gz")
        c.analyze("export", out, "--format", "pprof", "--by", "traceback", "-o", pb)
        raw = subprocess.run(["go", "tool", "pprof", "-raw", pb], capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, HOME=c.tmp, GOCACHE=os.path.join(c.tmp, "gocache"))).stdout
        mapping = re.search(r"^(\d+): 0x[0-9a-f]+/0x[0-9a-f]+/0x[0-9a-f]+ (\S+/chain) ([0-9a-f]{40}) ", raw, re.M)
        located = mapping and re.search(r"^\s+\d+: 0x[0-9a-f]+ M=%s scratch \S*chain\.c:%d" % (mapping.group(1),
                                                                                          cm["scratch"]), raw, re.M)
        check(tag + " chain: pprof export maps native frames to their module (file, build id, address)",
              mapping is not None and located is not None, raw[-600:])
    maps = c.json("leaks", out, "--domain", "mmap", "--top", "0")
    check(tag + " chain: a munmap of the middle leaves two mappings of 16 pages", len(maps["sites"]) == 1 and
          maps["sites"][0]["function"] == "map_pages" and maps["sites"][0]["bytes"] == 32 * 4096 and
          maps["sites"][0]["count"] == 2 and maps["sites"][0]["line"] == cm["map"], str(maps["sites"])[:300])
    summ = c.json("summary", out)
    check(tag + " chain: capture complete, mmap domain counted", summ["end"] == "exit" and
          summ["domains"]["mmap"] == {"allocations": 1, "bytes": 64 * 4096}, str(summ)[:300])
    run = subprocess.run([c.pymem, "run", "--native", "-o", c.capture("chain-run.pmem"), "--",
                          os.path.join(bins(c), "chain")], capture_output=True, text=True, cwd=c.tmp)
    check(tag + " pymem run --native -- ./chain reports the C sites", run.returncode == 0 and run.stdout ==
          "100 1\n" and "chain.c:%d scratch" % cm["scratch"] in run.stderr, run.stderr)


def test_cxx_names(c, tag):
    cm = c_marks("cxx.cpp")
    out = c.capture("cxx.pmem")
    r = run_native(c, [os.path.join(bins(c), "cxx")], out)
    leaks = c.json("leaks", out, "--top", "0", "--native")
    site = next((s for s in leaks["sites"] if s["bytes"] == 4000), None)
    f = frames(site) if site else []
    names = [x[1] for x in f]
    check(tag + " C++: names demangled, make() under main, at its line", r.returncode == 0 and r.stdout == "1\n"
          and "shapes::Builder::make(int)" in names and names.index("shapes::Builder::make(int)") + 1 <
          len(names) and names[names.index("shapes::Builder::make(int)") + 1] == "main"
          and any(x[1] == "shapes::Builder::make(int)" and x[3] == cm["cxx_new"] for x in f)
          and any(n.startswith("operator new") for n in names), str(f[:5]))
    # Sites are named after the first frame outside the allocator's wrappers
    # (operator new, std::allocator, std::vector's and std::string's code).
    want = {(cm["cxx_new"], "shapes::Builder::make(int)"): (4000, 1), (cm["agg_node"], "one_node()"): (32, 1),
            (cm["agg_array"], "nodes_array()"): (96, 1), (cm["agg_vector_object"], "a_vector()"): (24, 1),
            (cm["agg_vector_data"], "a_vector()"): (800, 1), (cm["agg_string"], "a_string()"): (233, 2)}
    got = {(s["line"], s["function"]): (s["bytes"], s["count"]) for s in leaks["sites"]
           if s["file"].endswith("cxx.cpp")}
    check(tag + " C++: each new site named after its own function, none after operator new",
          got == want and not [s for s in leaks["sites"] if s["function"].startswith("operator new")],
          "%s vs %s" % (got, want))
    plain = c.json("leaks", out, "--top", "0", "--native", "--wrappers", "")
    check(tag + " --wrappers '' names sites after the innermost frame again",
          plain["sites"][0]["function"].startswith("operator new") and plain["sites"][0]["count"] == 7,
          json.dumps(plain["sites"][0])[:200])


def test_native_depth_limit(c, tag):
    out = c.capture("recurse.pmem")
    r = run_native(c, [os.path.join(bins(c), "recurse")], out, PYMEM_NATIVE_DEPTH=32)
    check(tag + " recurse runs", r.returncode == 0 and r.stdout == "ok\n", r.stderr)
    leaks = c.json("leaks", out, "--by", "traceback", "--top", "0")
    s = next((s for s in leaks["sites"] if s["bytes"] == 4242), None)
    f = frames(s) if s else []
    check(tag + " recursion: 32 native frames kept, then <truncated>", len(f) == 33 and f[0][1] == "down" and
          all(x[1] == "down" for x in f[:32]) and f[32][2] == "<truncated>", str(f[:3]) + str(f[-2:]))
    summ = c.json("summary", out)
    check(tag + " recursion: native depth recorded in the capture", summ.get("native_depth") == 32, str(summ)[:200])


def test_dlopen_dlclose(c, tag):
    cm = c_marks("plugin.c")
    d = bins(c)
    out = c.capture("loader.pmem")
    r = run_native(c, [os.path.join(d, "loader"), os.path.join(d, "libplugin_a.so"), "1111",
                       os.path.join(d, "libplugin_b.so"), "2222", os.path.join(d, "libplugin_stripped.so"),
                       "3333", "libplugin_a.so", "4444"], out)
    check(tag + " loader: dlopen by name through the loader's RUNPATH still works", r.returncode == 0 and
          r.stdout.count(" ok\n") == 4, r.stdout + r.stderr)
    sites = c.json("leaks", out, "--top", "0")["sites"]
    a, b = find(sites, "inner_a"), find(sites, "inner_b")
    check(tag + " dlclose: a library loaded where another was keeps its own name", a is not None and b is not None
          and a["bytes"] == 1111 + 4444 and a["count"] == 2 and b["bytes"] == 2222 and b["count"] == 1
          and a["line"] == b["line"] == cm["plugin_malloc"], "%s %s" % (a, b))
    stripped = next((s for s in sites if s["function"].startswith("libplugin_stripped.so+0x")), None)
    check(tag + " stripped library: module+offset, exported names kept", stripped is not None and
          stripped["bytes"] == 3333 and frames(stripped)[1][1] == "plugin_alloc", str(stripped)[:300])
    mods = {f.get("module", "").split("/")[-1] for s in sites for f in s["stack"] if f["kind"] == "native"}
    check(tag + " module map names both unloaded libraries", {"libplugin_a.so", "libplugin_b.so",
                                                              "libplugin_stripped.so"} <= mods, str(mods))
    # A library deleted after the run: its frames fall back to module+offset.
    gone = os.path.join(c.tmp, "libplugin_gone.so")
    shutil.copy(os.path.join(d, "libplugin_b.so"), gone)
    out = c.capture("gone.pmem")
    r = run_native(c, [os.path.join(d, "loader"), gone, "6666"], out)
    os.unlink(gone)
    g = next((s for s in c.json("leaks", out, "--top", "0")["sites"] if s["bytes"] == 6666), None)
    check(tag + " a library deleted since: module+offset frames, no error", r.returncode == 0 and g is not None
          and g["function"].startswith("libplugin_gone.so+0x") and frames(g)[1][1].startswith(
              "libplugin_gone.so+0x"), str(g)[:300])


def test_deepbind_and_own_allocator(c, tag):
    d = bins(c)
    out = c.capture("deep.pmem")
    r = run_native(c, [os.path.join(d, "loader"), os.path.join(d, "libplugin_a.so"), "5555", "--deepbind"], out)
    warned = [l for l in r.stderr.splitlines() if "RTLD_DEEPBIND" in l]
    check(tag + " RTLD_DEEPBIND is dropped with one warning", r.returncode == 0 and len(warned) == 1, r.stderr)
    a = find(c.json("leaks", out, "--top", "0")["sites"], "inner_a")
    check(tag + " RTLD_DEEPBIND library's malloc is still recorded", a is not None and a["bytes"] == 5555, str(a))
    out = c.capture("own.pmem")
    r = run_native(c, [os.path.join(d, "ownmalloc")], out)
    summ = c.json("summary", out)
    check(tag + " a program with its own malloc: runs, warned once, reported", r.returncode == 0 and
          r.stdout == "own\n" and r.stderr.count("malloc is served ahead of pymem") == 1 and
          summ["malloc_recorded"] is False, r.stderr + str(summ)[:200])


def test_mmap_domain_python(c, tag):
    m = marks("mmap_anon.py")
    out = c.capture("mmap.pmem")
    r = c.preload([os.path.join(PROGRAMS, "mmap_anon.py")], out)
    check(tag + " mmap_anon.py runs", r.returncode == 0 and r.stdout == "ok\n", r.stderr)
    summ = c.json("summary", out)
    # Python 3.13 may map its thread's first frame stack chunk (16 KiB)
    # during start-up, once pymem records: a mapping of its own, not an arena.
    leaks = c.json("leaks", out, "--domain", "mmap", "--top", "0")
    runtime = [x for x in leaks["sites"] if x["phase"] == "runtime"]
    startup = [x for x in leaks["sites"] if x["phase"] == "startup"]
    startup_bytes = sum(x["bytes"] for x in startup)
    check(tag + " mmap domain: the one anonymous mmap, not pymalloc's arenas", summ["domains"]["mmap"] == {
        "allocations": 1 + sum(x["count"] for x in startup), "bytes": (1 << 20) + startup_bytes}
        and all(x["bytes"] <= (64 << 10) * x["count"] for x in startup)
        and summ["domains"]["pyobj"]["allocations"] > 200000, str(summ["domains"]) + str(startup)[:200])
    check(tag + " mmap domain: attributed to its Python line", len(runtime) == 1 and runtime[0][
        "line"] == m["MMAP"] and runtime[0]["bytes"] == 1 << 20, str(leaks["sites"])[:300])


def test_numpy_native(c, tag):
    if subprocess.run([c.python, "-c", "import numpy"], capture_output=True).returncode != 0:
        print("skip  %s numpy: not importable by %s" % (tag, c.python))
        return
    m = marks("numpy_ones.py")
    out = c.capture("numpy.pmem")
    r = c.preload([os.path.join(PROGRAMS, "numpy_ones.py")], out, PYMEM_NATIVE=1)
    check(tag + " numpy_ones.py runs under --native", r.returncode == 0 and r.stdout == "(1000, 1000)\n", r.stderr)
    peak = c.json("peak", out, "--by", "traceback", "--top", "1")
    top = peak["sites"][0]
    f = frames(top)
    py = [x for x in f if x[0] == "python"]
    first_py = next((i for i, x in enumerate(f) if x[0] == "python"), len(f))
    numpy_frames = [x for x in f[:first_py] if "_multiarray_umath" in x[1] or "_multiarray_umath" in x[2]
                    or "Py" in x[1] and "Array" in x[1]]
    check(tag + " numpy: 8 MB array under np.ones, from the user's line", top["domains"].get("malloc", {}).get(
        "bytes") == 8000000 and ("build", m["ONES"]) in [(x[1], x[3]) for x in py], str(top)[:300])
    check(tag + " numpy: numpy's own native frames sit between malloc and ones()", len(numpy_frames) >= 2 and
          py and py[0][1] == "ones", str(f[:first_py + 1]))


def test_library_constructors_and_footprint(c, tag):
    """Recorded from the first malloc on, as heaptrack does: a library
    constructor's blocks; libunwind's per-thread blocks are not the
    program's; and pymem leaves the program's heap as it finds it."""
    cm = c_marks("ctor.c")
    exe = os.path.join(bins(c), "ctor_main")
    out = c.capture("ctor.pmem")
    r = run_native(c, [exe], out)
    summ = c.json("summary", out)
    check(tag + " library constructor's allocations recorded, no unmatched free from 8 threads' unwinding",
          r.returncode == 0 and summ["unmatched_frees"] == 0 and summ["peak_bytes"] >= 12345 + 54321,
          "rc %d, %s" % (r.returncode, json.dumps(summ)[:300]))
    leaks = c.json("leaks", out, "--top", "0", "--native")
    s = next((x for x in leaks["sites"] if x["line"] == cm["ctor_malloc"]), None)
    check(tag + " the constructor's block at its line", s is not None and s["bytes"] == 12345 and s["count"] == 1
          and s["function"] == "ctor_allocate", json.dumps(leaks["sites"][:3])[:300])
    plain = subprocess.run(["setarch", "-R", exe], capture_output=True, text=True)
    same = []
    for native in ("", "1"):
        out = c.capture("ctor-heap-%s.pmem" % (native or "0"))
        env = dict(c.env(PYMEM_OUTPUT=out))
        if native:
            env["PYMEM_NATIVE"] = native
        r = subprocess.run(["setarch", "-R", exe], env=env, capture_output=True, text=True, cwd=c.tmp)
        same.append(r.stdout == plain.stdout and plain.returncode == 0)
    check(tag + " the program's first malloc lands where it does without pymem (passthrough, recording)",
          same == [True, True], "%s plain %r" % (same, plain.stdout))


EVERY = [test_hybrid_stack, test_python_allocators_off]
ONCE = [test_native_chain, test_cxx_names, test_library_constructors_and_footprint, test_native_depth_limit, test_dlopen_dlclose, test_deepbind_and_own_allocator,
        test_mmap_domain_python, test_numpy_native]
