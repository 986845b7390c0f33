"""Closes its standard error and puts it back, again and again, as
CPython's test_subprocess does (swap_std_fds_with_one_closed): for most of
the run descriptor 2 is free, the number the next open() takes. pymem's
writer thread must open nothing while the program runs: a descriptor it
opened there would be the program's stderr once the program's dup2 lands
on it (and pymem's close would take it away), and while its open() runs,
even one that fails, the program's dup2 onto that number fails (EBUSY)."""
import os
import sys
import time

saved = os.dup(2)
want = os.fstat(saved)
rounds = lost = refused = 0
end = time.monotonic() + float(sys.argv[1] if len(sys.argv) > 1 else 2.0)
while time.monotonic() < end:
    os.close(2)
    time.sleep(0.002)
    while True:
        try:
            os.dup2(saved, 2)
            break
        except OSError:
            refused += 1
    time.sleep(0.0002)
    rounds += 1
    try:
        got = os.fstat(2)
        if (got.st_dev, got.st_ino) != (want.st_dev, want.st_ino):
            lost += 1
    except OSError:
        lost += 1
        os.dup2(saved, 2)
print("rounds", rounds > 100, "stderr lost", lost, "dup2 refused", refused)
