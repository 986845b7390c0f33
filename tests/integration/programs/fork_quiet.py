"""A single-threaded program that forks, and whose child forks in turn: run
with -W error, a fork warns (and fails) only if the process has other threads
than its own."""
import os
import time

pid = os.fork()
if pid == 0:
    data = [bytes(100) for _ in range(1000)]  # the child records,
    time.sleep(0.3)  # its writer runs by now, then it forks
    grandchild = os.fork()
    if grandchild == 0:
        os._exit(3)
    _, status = os.waitpid(grandchild, 0)
    os._exit(4 + os.WEXITSTATUS(status))
_, status = os.waitpid(pid, 0)
print("child", os.WEXITSTATUS(status))
