"""generators: a pipeline of generators, 30 levels of `yield from` deep.

Every item is made at the bottom of the chain and travels up through every
level; each resumption re-links the whole chain of generator frames under
the consumer's. Nothing returns between two allocations, so on Python 3.12+
the frame watch has no pop to go by (and its callback would run at every
level's yield): each allocation checks the chain's 34 cached frames. The
case of data pipelines built from generators and of async frameworks'
coroutine stacks.
"""

ITEMS = 400000
LEVELS = 30


def source(n):
    for i in range(n):
        yield {"v": i, "t": (i, i + 1)}


def mapper(items):
    for d in items:
        yield [d["v"], str(d["t"])]


def nested(items, depth):
    if depth == 0:
        yield from items
    else:
        yield from nested(items, depth - 1)


def main():
    total = 0
    for row in nested(mapper(source(ITEMS)), LEVELS):
        total += len(row[1])
    return total


if __name__ == "__main__":
    main()
