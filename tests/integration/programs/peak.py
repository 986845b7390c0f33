"""Two phases: a transient 30 MB of bytes(100000) at the PEAK line, freed
before a smaller, lasting phase. The peak holds exactly the 300 PEAK blocks."""


def phase_one():
    tmp = []
    for _ in range(300):
        b = bytes(100000)  # MARK:PEAK
        tmp.append(b)
    return len(tmp)


def phase_two():
    keep = []
    for _ in range(100):
        b = bytes(50000)  # MARK:SECOND
        keep.append(b)
    return keep


if __name__ == "__main__":
    n = phase_one()
    k = phase_two()
    print(n, len(k))
