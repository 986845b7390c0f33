"""A single-threaded program that forks, and whose child forks in turn: run
with -W error, a fork warns (and fails) only if the process has other threads
than its own. An after-fork callback registered after pymem's runs Python
code (where the interpreter checks for pending calls) before Python 3.13
counts the threads."""
import os
import time


def after_in_parent():
    return sum(len(str(i)) for i in range(200))


os.register_at_fork(after_in_parent=after_in_parent)
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
