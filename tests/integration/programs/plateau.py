"""A plateau of many small objects: 20,000 live at once (PLATEAU), then each
replaced ten times over while the total stays the same. The peak is the
plateau; a sampled estimate that wanders along it must not report its
highest excursion as the peak."""
N = 20000


def main():
    held = [bytes(100) for _ in range(N)]  # MARK:PLATEAU
    for i in range(10 * N):
        held[i % N] = bytes(100)  # MARK:CHURN
    print("done", len(held))


if __name__ == "__main__":
    main()
