"""Objects made under 2000 tracebacks new to tracemalloc (run with -X
tracemalloc=5). On 3.8-3.12 CPython copies each new traceback outside any
allocator hook, through the raw allocator it found at its start (one of
pymem's layers), and adds it to its table with the C library's malloc.
"""
keep = []
for i in range(2000):
    ns = {}
    exec(compile("def f%d(k):\n    k.append([%d] * 3)\n" % (i, i), "<gen%d>" % i, "exec"), ns)
    ns["f%d" % i](keep)
print(len(keep))
