"""pytest_pymem: memory limits for tests, measured by pymem.

Active when pytest runs under pymem with the live table (``pymem run -m
pytest ...`` keeps it by itself; ``--live`` or ``PYMEM_LIVE=1`` otherwise).
Without it the markers are accepted and not enforced, and the session header
says so.

- ``@pytest.mark.limit_memory("24 MB")``: the test fails when the peak of the
  memory allocated during it (blocks made while it ran, by any thread, and
  live at the same time) reaches the limit.
- ``@pytest.mark.limit_leaks("1 MB")``: the test fails when more than the limit
  of what it allocated is still live after it, once ``gc.collect()`` has run.
- ``--pymem-limit-memory SIZE`` / ``--pymem-limit-leaks SIZE``: a limit for every
  test without its own marker.
- ``--pymem-report``: a table of each test's peak and leaked bytes at the end
  (leaked: still live when the test returned; after ``gc.collect()`` only for
  tests with limit_leaks, as a full collection costs milliseconds per test).

Both failures name the sites (innermost lines first) that held the memory.
Sizes: a number of bytes, or a number with B, KB, MB, GB, TB (powers of 1024,
as pytest-memray counts them) or KiB, MiB, GiB, TiB.

Only the test's call is measured: fixtures' setup and teardown are not, as in
pytest-memray. The numbers are pymem's exact accounting (every allocation of
the malloc family, CPython's allocators and anonymous mmap), in event order;
pytest's own bookkeeping while the test runs (a few hundred bytes) is in them.

The live C API this module calls is include/pymem/live.h.
"""

import ctypes
import gc
import re

import pytest

SITES_DEFAULT = 5
FRAMES_PER_SITE = 6
REPORT_TOP_DEFAULT = 20
_UNITS = {
    "": 1, "B": 1,
    "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40,
    "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40,
    "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")
_DOMAINS = ["malloc", "pyraw", "pymem", "pyobj", "mmap"]
# Frames of pytest's own machinery end a site's listing: above them is the
# runner, not the test.
_RUNNER = re.compile(r"[/\\](_pytest|pluggy)[/\\]")


class _Live(ctypes.Structure):
    _fields_ = [
        ("window", ctypes.c_uint32), ("open", ctypes.c_uint16), ("sites_complete", ctypes.c_uint16),
        ("begin_seq", ctypes.c_uint64), ("seq", ctypes.c_uint64),
        ("bytes", ctypes.c_int64), ("blocks", ctypes.c_int64),
        ("peak_bytes", ctypes.c_int64), ("peak_blocks", ctypes.c_int64),
        ("heap_bytes", ctypes.c_int64), ("heap_blocks", ctypes.c_int64),
    ]


class _Site(ctypes.Structure):
    _fields_ = [("stack", ctypes.c_uint32), ("domain", ctypes.c_uint32),
                ("bytes", ctypes.c_int64), ("blocks", ctypes.c_int64)]


def parse_size(text):
    """Bytes in `text` ("24 MB", "1.5GiB", 4096); ValueError if it is none."""
    if isinstance(text, bool):
        raise ValueError(f"not a size: {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"not a size: {text!r}")
        return text
    m = _SIZE.match(str(text))
    unit = m and _UNITS.get(m.group(2).upper())
    if not m or unit is None:
        raise ValueError(f"not a size: {text!r} (a number of bytes, or with B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
    return int(float(m.group(1)) * unit)


def format_size(n):
    """`n` bytes as people read them, with the exact figure: "9.5 MiB (10,000,057 bytes)"."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            break
        size /= 1024
    short = f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
    return f"{short} ({n:,} bytes)"


class _Api:
    """libpymem.so's live API, found in the process when pymem preloads it."""

    def __init__(self):
        self.lib = None
        try:
            lib = ctypes.CDLL(None)
            lib.pymem_live_state
        except (OSError, AttributeError):
            return
        lib.pymem_live_state.restype = ctypes.c_int
        lib.pymem_live_begin.restype = ctypes.c_int
        lib.pymem_live_end.argtypes = [ctypes.POINTER(_Live)]
        lib.pymem_live_sites.argtypes = [ctypes.c_int, ctypes.POINTER(_Site), ctypes.c_int]
        lib.pymem_stack_text.argtypes = [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]
        self.lib = lib

    def state(self):
        """1: limits can be enforced; 0: recording without the live table;
        -1: pymem is there but not recording; None: not under pymem."""
        return None if self.lib is None else self.lib.pymem_live_state()

    def begin(self):
        """Opens a window; the object its totals will be read into (made
        before the window, so that it is not in it), or None."""
        live = _Live()
        ref = ctypes.byref(live)
        return (live, ref) if self.lib.pymem_live_begin() == 0 else None

    def end(self, window):
        """Ends the window; its totals, or None."""
        live, ref = window
        return live if self.lib.pymem_live_end(ref) == 0 else None

    def sites(self, at_peak, top):
        """The window's sites as (bytes, blocks, domains, frames), merged by
        stack, largest first."""
        cap = max(64, top * 8)
        raw = (_Site * cap)()
        n = self.lib.pymem_live_sites(1 if at_peak else 0, raw, cap)
        merged = {}
        for s in raw[:max(n, 0)]:
            entry = merged.setdefault(s.stack, [0, 0, set()])
            entry[0] += s.bytes
            entry[1] += s.blocks
            if s.domain < len(_DOMAINS):
                entry[2].add(_DOMAINS[s.domain])
        out = sorted(merged.items(), key=lambda kv: -kv[1][0])[:top]
        return [(b, c, sorted(d), self.frames(stack)) for stack, (b, c, d) in out]

    def frames(self, stack):
        buf = ctypes.create_string_buffer(16384)
        if self.lib.pymem_stack_text(stack, buf, len(buf)) < 0:
            return []
        frames = []
        for line in buf.value.decode("utf-8", "replace").splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                frames.append((parts[0], parts[1], parts[2]))
        return frames


class _Result:
    __slots__ = ("peak", "peak_blocks", "leaked", "leaked_blocks", "failure")

    def __init__(self, live):
        self.peak = live.peak_bytes
        self.peak_blocks = live.peak_blocks
        self.leaked = live.bytes
        self.leaked_blocks = live.blocks
        self.failure = None


class PymemPlugin:
    def __init__(self, config, api):
        self.config = config
        self.api = api
        self.state = api.state()
        self.default_memory = _option_size(config, "pymem_limit_memory", "--pymem-limit-memory")
        self.default_leaks = _option_size(config, "pymem_limit_leaks", "--pymem-limit-leaks")
        self.report = config.getoption("pymem_report")
        self.report_top = config.getoption("pymem_report_top")
        self.nsites = config.getoption("pymem_sites")
        self.results = {}
        self.limited = 0  # tests with a limit
        self.warned = False

    @property
    def active(self):
        return self.state == 1

    def header(self):
        if self.state == 1:
            return "pymem: limit_memory and limit_leaks enforced (live table kept)"
        if self.state == 0:
            return ("pymem: recording without the live table (pymem run --live, or PYMEM_LIVE=1): "
                    "limit_memory and limit_leaks not enforced")
        if self.state == -1:
            return "pymem: not recording: limit_memory and limit_leaks not enforced"
        return "pymem: not running under pymem (pymem run -m pytest): limit_memory and limit_leaks not enforced"

    def limits(self, item):
        """(memory limit, leaks limit) for `item`, None where there is none."""
        memory, leaks = self.default_memory, self.default_leaks
        for name in ("limit_memory", "limit_leaks"):
            marker = item.get_closest_marker(name)
            if marker is None:
                continue
            arg = marker.args[0] if marker.args else marker.kwargs.get("limit")
            if arg is None:
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{name} needs a size, such as {name}(\"24 MB\")")
            try:
                size = parse_size(arg)
            except ValueError as e:
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{name}: {e}") from None
            if name == "limit_memory":
                memory = size
            else:
                leaks = size
        return memory, leaks

    def pytest_collection_modifyitems(self, items):
        """A marker with a bad size stops the session before any test runs."""
        for item in items:
            if self.limits(item) != (None, None):
                self.limited += 1

    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_runtest_call(self, item):
        memory, leaks = self.limits(item)
        if not self.active or (memory is None and leaks is None and not self.report):
            yield
            return
        window = self.api.begin()
        if window is None:
            self.lost("could not open a window")
            yield
            return
        yield
        if leaks is not None:
            gc.collect()
        live = self.api.end(window)
        if live is None:
            self.lost("could not end the window")
            return
        result = _Result(live)
        self.results[item.nodeid] = result
        failures = []
        if memory is not None and live.peak_bytes >= memory:
            failures.append(self.explain(
                f"Test was limited to {format_size(memory)} of memory but allocated "
                f"{format_size(live.peak_bytes)} at its peak", at_peak=True, complete=live.sites_complete))
        if leaks is not None and live.bytes > leaks:
            failures.append(self.explain(
                f"Test was limited to {format_size(leaks)} of leaked memory but left "
                f"{format_size(live.bytes)} in {live.blocks:,} blocks allocated during it and still live "
                f"after it", at_peak=False, complete=live.sites_complete))
        result.failure = "\n\n".join(failures) or None

    def lost(self, what):
        self.state = -1
        if not self.warned:
            self.warned = True
            self.config.issue_config_time_warning(
                pytest.PytestWarning(f"pymem: {what} (the capture ended?): limits no longer enforced"), stacklevel=2)

    def explain(self, headline, at_peak, complete):
        lines = [headline, "", "Sites holding it at the peak:" if at_peak else "Sites holding it after the test:"]
        for nbytes, blocks, domains, frames in self.api.sites(at_peak, self.nsites):
            lines.append(f"  {format_size(nbytes)} in {blocks:,} block{'s' if blocks != 1 else ''} "
                         f"({', '.join(domains)})")
            shown = 0
            for path, func, line in frames:
                if _RUNNER.search(path) or shown == FRAMES_PER_SITE:
                    break
                lines.append(f"      {path}:{line} in {func}" if func else f"      {path} {line}")
                shown += 1
            if not shown:
                lines.append("      (in pytest's runner)" if frames else "      (no Python frames)")
        if not complete:
            lines.append("  (pymem ran short of memory: some sites may be missing)")
        return "\n".join(lines)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.when != "call":
            return
        result = self.results.get(item.nodeid)
        if result is None:
            return
        report.pymem_peak = result.peak
        report.pymem_leaked = result.leaked
        if result.failure and report.passed:
            report.outcome = "failed"
            report.longrepr = result.failure

    def pytest_terminal_summary(self, terminalreporter):
        tr = terminalreporter
        if self.limited and not self.active:
            tr.write_line(f"{self.header()} ({self.limited} test{'s' if self.limited != 1 else ''} with a limit)")
        if not self.report:
            return
        tr.write_sep("=", "pymem report")
        if not self.active and not self.results:
            tr.write_line(self.header())
            return
        rows = sorted(self.results.items(), key=lambda kv: (-kv[1].peak, kv[0]))
        if self.report_top:
            rows = rows[:self.report_top]
        tr.write_line(f"{'peak':>14} {'leaked':>14}  test")
        for nodeid, r in rows:
            tr.write_line(f"{r.peak:>14,} {r.leaked:>14,}  {nodeid}")
        total = len(self.results)
        if len(rows) < total:
            tr.write_line(f"({len(rows)} of {total} tests, largest peaks first; --pymem-report-top 0 for all)")


def _option_size(config, dest, flag):
    value = config.getoption(dest)
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as e:
        raise pytest.UsageError(f"{flag}: {e}") from None


def pytest_addoption(parser):
    group = parser.getgroup("pymem", "memory limits measured by pymem")
    group.addoption("--pymem-report", action="store_true", default=False,
                    help="at the end, a table of each test's peak and leaked bytes")
    group.addoption("--pymem-report-top", type=int, default=REPORT_TOP_DEFAULT, metavar="N",
                    help=f"tests in that table, largest peaks first (default {REPORT_TOP_DEFAULT}; 0: all)")
    group.addoption("--pymem-limit-memory", metavar="SIZE", default=None,
                    help="limit_memory for every test without its own marker")
    group.addoption("--pymem-limit-leaks", metavar="SIZE", default=None,
                    help="limit_leaks for every test without its own marker")
    group.addoption("--pymem-sites", type=int, default=SITES_DEFAULT, metavar="N",
                    help=f"sites named in a limit's failure (default {SITES_DEFAULT})")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "limit_memory(size): fail when the peak of memory allocated during the test reaches size (pymem)")
    config.addinivalue_line(
        "markers", "limit_leaks(size): fail when more than size allocated during the test is still live after "
                   "it, after gc.collect() (pymem)")
    plugin = PymemPlugin(config, _Api())
    config.pluginmanager.register(plugin, "pymem-plugin")
    config._pymem = plugin


def pytest_report_header(config):
    """Under pymem only: an installed plugin stays silent in other runs,
    unless a test has a limit (pytest_terminal_summary says it was not
    enforced)."""
    plugin = getattr(config, "_pymem", None)
    return plugin.header() if plugin and plugin.state is not None else None
