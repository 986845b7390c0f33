"""The frame watch with five threads (3.9+): each re-enters recursions 100
and 80 frames deep from two lines, returning and unwinding, switching
threads as often as the interpreter allows. Every thread's pops go to its
own frame cache. Prints the blocks kept."""
import sys
import threading

sys.setrecursionlimit(10000)
sys.setswitchinterval(1e-6)
out = [None] * 4000  # made whole now: a list growing later would add a block at some line
slot = iter(range(4000))


def down(n, size):
    if n == 0:
        out[next(slot)] = bytes(size)  # MARK:LEAF
        return
    down(n - 1, size)  # MARK:DOWN


def raise_down(n, size):
    if n == 0:
        out[next(slot)] = bytes(size)  # MARK:RAISE_LEAF
        raise LookupError
    raise_down(n - 1, size)  # MARK:RAISE_DOWN


def work(size):
    for _ in range(200):
        down(100, size)  # MARK:A
        down(100, size)  # MARK:B
        try:
            raise_down(80, 2 * size)  # MARK:C
        except LookupError:
            pass


threads = [threading.Thread(target=work, args=(1000,)) for i in range(4)]
for t in threads:
    t.start()
work(1000)  # MARK:MAIN
for t in threads:
    t.join()
print(next(slot))
