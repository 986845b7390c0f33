"""trend.py's three shapes in a master and two forked workers, for 'pymem
trend --merge': the leak's rate over the run is the three processes' sum."""
import os
import sys

import trend


def main():
    trend.DURATION = 1.2
    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            trend.main()
            os._exit(0)
        pids.append(pid)
    trend.main()
    for pid in pids:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
