"""A single-threaded program that forks: run with -W error, the fork warns
(and fails) only if the program has other threads than its own."""
import os

pid = os.fork()
if pid == 0:
    os._exit(7)
_, status = os.waitpid(pid, 0)
print("child", os.WEXITSTATUS(status))
