"""threads_n N: the threads workload with N threads sharing a fixed amount of
work (4800 rounds in all), for the 1/2/4/8-thread scaling rows of the bench.

Each round builds and drops a list of small tuples/strs and bytes objects of
1-32 KiB, as in ../shared/bench/workloads/threads.py.
"""
import sys
import threading

TOTAL_ROUNDS = 4800


def worker(tid, rounds, out):
    acc = 0
    for r in range(rounds):
        small = [("k%d" % i, i, tid) for i in range(500)]
        mids = [bytes(1024 * (1 + (i + r) % 32)) for i in range(16)]
        acc += len(small) + sum(len(m) for m in mids)
        del small, mids
    out[tid] = acc


def main(n):
    out = [0] * n
    ts = [threading.Thread(target=worker, args=(t, TOTAL_ROUNDS // n, out)) for t in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(out)
    return sum(out)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
