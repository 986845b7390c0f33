"""deep_calls: a deep program that makes many small calls between two
allocations (60 frames down, 8 calls per allocation): the frame watch's
worst case on Python 3.12+, where its callback on every return costs more
than the frames it spares the stack walk. With the watch switched by
measurement (the default) this row should stay near `--frame-watch off`'s.
"""

DEPTH = 60
ROUNDS = 300
SMALL = [i & 7 for i in range(20000)]


def add(a, b):
    return (a + b) & 0xFF


def work():
    s = 0
    for i in SMALL:
        s = add(s, i)
        if i == 0:
            s += len([i])  # one allocation per 8 calls
    return s


def deep(d):
    return work() if d == 0 else deep(d - 1)


def main():
    total = 0
    for _ in range(ROUNDS):
        total += deep(DEPTH)
    assert total > 0
    return total


if __name__ == "__main__":
    main()
