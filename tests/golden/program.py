"""The program behind tests/golden/small.pmem (format 1, recorded once with
Debian's python3 3.11 and checked in; the reports of that file must not
change) and tests/golden/sampled.pmem (format 2, compressed, recorded with
PYMEM_SAMPLE=8192 PYMEM_SAMPLE_SEED=3)."""
import pymem

held = []


def grow(n):
    for _ in range(n):
        held.append(bytes(2000))


def spike():
    tmp = [bytes(50000) for _ in range(40)]
    return len(tmp)


grow(100)
pymem.snapshot("a")
spike()
grow(50)
pymem.snapshot("b")
