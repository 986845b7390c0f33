"""Fills memory 1 MiB at a time (FILL) until its RSS passes the MiB given,
then kills itself as an OOM killer would (SIGKILL)."""
import os
import resource
import signal
import sys
import time

LIMIT = int(sys.argv[1]) * 1024 * 1024
KEEP = []


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


while rss() < LIMIT:
    KEEP.append(b"x" * (1024 * 1024))  # MARK:FILL
    time.sleep(0.003)
os.kill(os.getpid(), signal.SIGKILL)
