"""A small pre-fork server: the master forks two workers and starts one
subprocess. Each process keeps blocks of 1000 bytes at the LEAK line: 100
in the master, 300 and 600 in the workers; the subprocess keeps 50 at the
SPAWNED line."""
import os
import subprocess
import sys

KEEP = []


def serve(requests):
    for _ in range(requests):
        KEEP.append(bytes(1000))  # MARK:LEAK


def main():
    workers = []
    for n in (300, 600):
        pid = os.fork()
        if pid == 0:
            serve(n)
            sys.exit(0)
        workers.append(pid)
    serve(100)
    subprocess.run([sys.executable, "-c", "keep = [bytes(1000) for _ in range(50)]  # MARK:SPAWNED"], check=True)
    for pid in workers:
        _, status = os.waitpid(pid, 0)
        assert status == 0
    print("served")


if __name__ == "__main__":
    main()
