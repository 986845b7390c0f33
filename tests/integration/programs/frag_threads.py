"""glibc fragmentation on purpose: four threads each allocate, in turn, a
4 KB block that goes and a 600-byte block that stays (bytes objects over
512 bytes: malloc, in the thread's own arena); once all four have made
theirs, the big ones are freed. Seven eighths of the bytes go, interleaved
with what stays: the live heap falls, RSS stays, held free by glibc's thread
arenas. An allocator that keeps sizes apart (jemalloc) gives the pages back."""
import threading

N = 6000
kept = []
lock = threading.Lock()
all_made = threading.Barrier(4)


def work():
    big, small = [], []
    for _ in range(N):
        big.append(bytes(4000))  # MARK:FREED
        small.append(bytes(600))  # MARK:KEPT
    all_made.wait()
    del big
    with lock:
        kept.extend(small)


threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(len(kept))
