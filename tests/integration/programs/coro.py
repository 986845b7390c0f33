"""Allocations inside coroutines run by asyncio: 300 bytes(3000) at the
CORO line, from a coroutine awaited by another."""
import asyncio

HELD = []


async def fetch(i):
    await asyncio.sleep(0)
    HELD.append(bytes(3000))  # MARK:CORO


async def gather_all():
    await asyncio.gather(*(fetch(i) for i in range(300)))  # MARK:GATHER


asyncio.run(gather_all())
print(len(HELD))
