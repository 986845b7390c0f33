"""pymalloc arenas kept mapped by a few objects: two million floats fill
about 60 arenas; one in 20,000 is kept and the rest freed, so that each
arena keeps one or two objects and stays mapped."""
N = 2000000
objs = [float(i) for i in range(N)]  # MARK:PIN
kept = objs[::20000]
del objs
print(len(kept))
