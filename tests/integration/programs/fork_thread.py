"""A thread forks; the child, whose only thread is that one, keeps 100
blocks at the CHILD line and ends its thread with sys.exit(0): the child
process then exits, as the last thread's end makes it."""
import os
import sys
import threading

keep = []


def worker():
    pid = os.fork()
    if pid == 0:
        for _ in range(100):
            keep.append(bytes(1000))  # MARK:CHILD
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    print("child status", status)


t = threading.Thread(target=worker)
t.start()
t.join()
print("done")
