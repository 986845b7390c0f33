"""exec: a failed exec, then an exec into a program that is not Python
(/bin/true), or, with the argument 'python', into Python again. Everything
recorded before each exec reaches the capture."""
import os
import sys

keep = [bytes(2000) for _ in range(1000)]  # MARK:BEFORE
try:
    os.execv("/nonexistent/program", ["program"])
except OSError as e:
    print("exec failed", e.errno)
more = [bytes(3000) for _ in range(500)]  # MARK:AFTER
sys.stdout.flush()
if sys.argv[1:] == ["python"]:
    os.execv(sys.executable, [sys.executable, __file__, "second"])
elif sys.argv[1:] == ["second"]:
    last = [bytes(4000) for _ in range(50)]  # MARK:SECOND
    print("second image")
else:
    os.execv("/bin/true", ["true"])
