"""Two greenlets switch after every allocation, each at its own depth: each
allocation's stack must be its own greenlet's chain."""
import greenlet

keep = []


def down_a(n, other):
    if n == 0:
        for _ in range(300):
            keep.append(bytes(1111))  # MARK:A
            other().switch()  # MARK:SWITCH_A
        return
    down_a(n - 1, other)  # MARK:DOWN_A


def down_b(n, other):
    if n == 0:
        for _ in range(300):
            keep.append(bytes(2222))  # MARK:B
            other().switch()  # MARK:SWITCH_B
        return
    down_b(n - 1, other)  # MARK:DOWN_B


ga = greenlet.greenlet(lambda: down_a(5, lambda: gb))  # MARK:RUN_A
gb = greenlet.greenlet(lambda: down_b(20, lambda: ga))  # MARK:RUN_B
ga.switch()
print(len(keep))
