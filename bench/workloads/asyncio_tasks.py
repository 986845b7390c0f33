"""asyncio_tasks: 200 coroutines on one event loop, each allocating small
dicts and strings and yielding to the loop every 10 of them.

A coroutine's frame is resumed by the loop under a different chain each
time (the loop's run_once, a handle's _run, the task's step), and tasks
interleave at every await: the stack cache sees a chain that changes under
the coroutine between most allocations. The case of asyncio services.
"""
import asyncio

TASKS = 200
ITEMS = 3000


async def worker(n, done):
    kept = []
    for i in range(n):
        kept.append({"i": i, "s": str(i)})
        if i % 10 == 0:
            await asyncio.sleep(0)
        if len(kept) > 50:
            kept.clear()
    done.append(len(kept))


async def run():
    done = []
    await asyncio.gather(*(worker(ITEMS, done) for _ in range(TASKS)))
    return len(done)


def main():
    return asyncio.run(run())


if __name__ == "__main__":
    main()
