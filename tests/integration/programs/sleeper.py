"""Allocates 200 bytes(5000) at the HELD line, says ready, then waits to be
snapshotted or killed; on a line on stdin it allocates 300 more at the LATER
line. It leaves SIGUSR2 at its default action, which kills it, as
gunicorn's workers do."""
import signal
import sys

signal.signal(signal.SIGUSR2, signal.SIG_DFL)

held = []
for _ in range(200):
    b = bytes(5000)  # MARK:HELD
    held.append(b)
print("ready", flush=True)
sys.stdin.readline()
for _ in range(300):
    c = bytes(6000)  # MARK:LATER
    held.append(c)
print("bye", flush=True)
sys.stdin.readline()
