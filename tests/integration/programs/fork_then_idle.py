"""A parent that forks and at once blocks in a read, as a supervisor waiting
for its worker does: on Python 3.12+ pymem's writer pauses around os.fork,
and must be running again for `pymem snapshot` of the parent to be answered.
The child says when both are in place; a byte on stdin ends each."""
import os

pid = os.fork()
if pid == 0:
    os.write(1, b"ready\n")
    os.read(0, 1)
    os._exit(0)
os.read(0, 1)
os.waitpid(pid, 0)
