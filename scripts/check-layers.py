#!/usr/bin/env python3
"""Checks the preload's layer rule (HACKING.md, "Layers") and the boundaries
between the halves of pymem. Fails, naming each offence, when:

- a file under preload/ is outside the layer folders;
- a preload file includes a header of a higher layer;
- an object of the preload calls (or reads) a pymem symbol defined in a
  higher layer (nm of the built objects: what the linker will bind);
- modules of one layer call each other in a circle;
- the analyzer includes a preload header, or the preload an analyzer one;
- a public header (include/pymem) includes anything of either half.

Usage: check-layers.py BUILD_DIR  (the objects are BUILD_DIR/preload/*/*.o)
"""
import collections
import glob
import os
import re
import subprocess
import sys

LAYERS = ["base", "io", "stacks", "core", "entry"]  # lowest first
RANK = {name: i for i, name in enumerate(LAYERS)}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path):
    """The layer of a file under preload/, or None."""
    parts = path.split("/")
    return parts[1] if len(parts) == 3 and parts[1] in RANK else None


def check_includes(problems):
    for path in sorted(glob.glob("preload/**/*.[ch]", recursive=True) + glob.glob("preload/**/*.def", recursive=True)):
        layer = layer_of(path)
        if layer is None:
            problems.append(f"{path}: outside the layer folders ({', '.join(LAYERS)})")
            continue
        for inc in INCLUDE.findall(open(path, encoding="utf-8").read()):
            top = inc.split("/")[0]
            if top == "pymem":
                continue
            if top not in RANK:
                problems.append(f'{path}: includes "{inc}", which is no layer\'s header')
            elif RANK[top] > RANK[layer]:
                problems.append(f'{path} ({layer}): includes "{inc}" of the higher layer {top}')
    for path in sorted(glob.glob("analyzer/*.[ch]")):
        for inc in INCLUDE.findall(open(path, encoding="utf-8").read()):
            if inc.split("/")[0] in RANK or inc.startswith("../"):
                problems.append(f'{path}: includes the preload\'s "{inc}"')
    for path in sorted(glob.glob("include/pymem/*.h")):
        for inc in INCLUDE.findall(open(path, encoding="utf-8").read()):
            if not inc.startswith("pymem/"):
                problems.append(f'{path}: a public header includes "{inc}"')


def symbols(obj, *flags):
    out = subprocess.run(["nm", *flags, obj], check=True, capture_output=True, text=True).stdout
    return [line.split() for line in out.splitlines() if line.strip()]


def find_cycle(graph):
    """A list of modules forming a circle in `graph`, or None."""
    state = {}
    stack = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def check_objects(build, problems):
    objs = sorted(glob.glob(os.path.join(build, "preload", "*", "*.o")))
    if not objs:
        problems.append(f"no objects under {build}/preload: build first")
        return
    module = lambda o: os.path.relpath(o, os.path.join(build, "preload"))[:-2]  # e.g. io/writer
    defined = {}
    for o in objs:
        for fields in symbols(o, "-g", "--defined-only"):
            if len(fields) == 3:
                defined[fields[2]] = module(o)
    calls = collections.defaultdict(lambda: collections.defaultdict(set))
    for o in objs:
        user = module(o)
        for fields in symbols(o, "-u"):
            sym = fields[-1]
            # pymem's own symbols only: the C library's names (malloc, dlopen)
            # bind to the interposer by design, as they do for the program.
            owner = defined.get(sym)
            if sym.startswith("pm_") and owner and owner != user:
                calls[user][owner].add(sym)
    same_layer = collections.defaultdict(set)
    for user, owners in sorted(calls.items()):
        for owner, syms in sorted(owners.items()):
            lu, lo = user.split("/")[0], owner.split("/")[0]
            if RANK[lo] > RANK[lu]:
                problems.append(f"{user} ({lu}) uses {', '.join(sorted(syms))} of {owner}, a higher layer")
            elif lo == lu:
                same_layer[user].add(owner)
    cycle = find_cycle(same_layer)
    if cycle:
        problems.append("modules call each other in a circle: " + " -> ".join(cycle))
    return sum(len(o) for o in calls.values())


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    problems = []
    check_includes(problems)
    edges = check_objects(sys.argv[1], problems)
    for p in problems:
        print("layers:", p)
    if problems:
        print(f"layers: {len(problems)} offence(s) against the layer rule (HACKING.md, \"Layers\")")
        sys.exit(1)
    print(f"layers: ok ({len(LAYERS)} layers, {edges} module dependencies, all downward or acyclic within a layer)")


if __name__ == "__main__":
    main()
