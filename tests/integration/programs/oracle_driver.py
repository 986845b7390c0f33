"""Runs a program (a module with -m, or a script) under tracemalloc in the
same process as pymem, then takes both snapshots at the same instant: a
pymem snapshot labelled 'oracle', and tracemalloc's traces, written as JSON
{"file:line": bytes} to OUT. What the program made is still referenced (its
globals), as it would be at the end of a real run.

usage: python -X tracemalloc=25 oracle_driver.py OUT (-m MODULE | SCRIPT) [ARGS...]
"""
import json
import runpy
import sys
import tracemalloc

import pymem


def main():
    out, argv = sys.argv[1], sys.argv[2:]
    if argv[0] == "-m":
        target, runner = argv[1], runpy.run_module
        sys.argv = [argv[1]] + argv[2:]
    else:
        target, runner = argv[0], runpy.run_path
        sys.argv = argv
    result = None
    try:
        result = runner(target, run_name="__main__")
    except SystemExit as e:
        if e.code not in (None, 0):
            raise
    pymem.snapshot("oracle")
    traces = tracemalloc._get_traces()
    per_line = {}
    for trace in traces:
        size, frames = trace[1], trace[2]
        key = "%s:%d" % frames[0] if frames else "<unknown>:0"
        per_line[key] = per_line.get(key, 0) + size
    with open(out, "w") as f:
        json.dump(per_line, f)
    return result


kept = main()
