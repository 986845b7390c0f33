"""tracemalloc started and stopped in every order, around pymem: with
`-X tracemalloc` (started before the program), stopped, started again at run
time, stopped. pymem must keep recording throughout, and tracemalloc keep
its own numbers: printed as JSON, tracemalloc's count at the RESTART line."""
import json
import sys
import tracemalloc

RESTART = next(n for n, line in enumerate(open(__file__), 1) if "MARK:" + "RESTART" in line)
keep = []
was_tracing = tracemalloc.is_tracing()
tracemalloc.stop()
for _ in range(1000):
    keep.append(bytes(1000))  # MARK:AFTERSTOP
tracemalloc.start(1)
for _ in range(1000):
    keep.append(bytes(2000))  # MARK:RESTART
snap = tracemalloc.take_snapshot()
traced = sum(s.count for s in snap.statistics("lineno") if s.traceback[0].lineno == RESTART
             and s.traceback[0].filename == __file__)
tracemalloc.stop()
tracemalloc.start()
tracemalloc.stop()
for _ in range(500):
    keep.append(bytes(3000))  # MARK:END
json.dump({"was_tracing": was_tracing, "traced": traced}, sys.stdout)
