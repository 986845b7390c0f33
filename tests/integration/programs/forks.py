"""fork, subprocess and multiprocessing children; each Python child makes
one bytes(100000) at the CHILD line."""
import multiprocessing
import os
import subprocess
import sys


def child_work(x):
    b = bytes(100000)  # MARK:CHILD
    return len(b) + x


KEEP = []


def main():
    for _ in range(10):
        KEEP.append(bytes(4000))  # MARK:PARENT
    pid = os.fork()
    if pid == 0:
        child_work(0)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    out = subprocess.run(["ls", os.path.dirname(os.path.abspath(__file__))], capture_output=True, text=True)
    assert "forks.py" in out.stdout
    subprocess.run([sys.executable, "-c", "b = bytes(100000)"], check=True)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        results = pool.map(child_work, range(4))
    print("results", results, len(KEEP))


if __name__ == "__main__":
    main()
