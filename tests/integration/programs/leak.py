"""A module-level cache that is never cleared: 1000 bytes objects of 10000
bytes (10033 bytes requested each, header included) at the LEAK line."""
import sys

CACHE = []
SIZE = 10000


def remember(n):
    for i in range(n):
        b = bytes(SIZE)  # MARK:LEAK
        CACHE.append(b)


def churn(n):
    total = 0
    for i in range(n):
        tmp = bytes(SIZE)  # MARK:CHURN
        total += len(tmp)
    return total


def main():
    remember(1000)
    churn(3000)
    print("done", len(CACHE))
    mode = sys.argv[1] if len(sys.argv) > 1 else "normal"
    if mode == "sys_exit":
        sys.exit(3)
    if mode == "os_exit":
        sys.stdout.flush()
        import os
        os._exit(5)
    if mode == "exception":
        raise RuntimeError("unhandled on purpose")
    if mode == "keyboard_interrupt":
        raise KeyboardInterrupt
    if mode == "sigterm":
        import os, signal
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGTERM)
    if mode == "sigterm_restored":
        # A handler of the program's, then the default put back (as Python's
        # finalisation does for a server's workers), then the signal.
        import os, signal
        signal.signal(signal.SIGTERM, lambda *a: None)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    main()
