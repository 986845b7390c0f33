"""pymalloc arenas kept mapped by a few objects: two million floats fill
about 60 arenas of 1 MiB (240 of 256 KiB up to Python 3.9); one in 5,000 is
kept and the rest freed: 5,000 floats take 160 KiB, so that every arena
keeps a few objects and stays mapped."""
N = 2000000
objs = [float(i) for i in range(N)]  # MARK:PIN
kept = objs[::5000]
del objs
print(len(kept))
