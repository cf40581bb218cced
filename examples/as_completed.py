"""
What it shows: the difference between gathering results in spawn order and
taking them as they complete. Five tasks finish in the reverse of the order
they were started. The "gather" way (a list of task handles awaited one by one)
can only handle the first result once the slowest task is done; the JoinSet
way handles each result the moment its task finishes.

Run it:
  python examples/as_completed.py --backend asyncio
  python examples/as_completed.py --backend trio
"""

from __future__ import annotations

import argparse

import anyio

from anyio_joinset import JoinSet
from anyio_joinset.backends import BACKENDS, run

TASKS = 5
STEP = 0.01  # seconds between one task finishing and the next


async def work(i: int, finished: list[anyio.Event]) -> int:
    """Finish STEP after task i + 1 does: task 4 after 10 ms, task 0 (the slowest) after 50."""
    if i + 1 < TASKS:
        # Chained, not five sleeps of different lengths: sleeps a few ms apart
        # race on a busy machine, and Trio starts a batch of tasks in any order.
        await finished[i + 1].wait()
    await anyio.sleep(STEP)
    finished[i].set()
    return i


async def gather_in_spawn_order() -> tuple[list[int], float]:
    """The usual way: keep the handles, wait for each in turn."""
    start = anyio.current_time()
    handled: list[int] = []
    first_handled_at = 0.0
    finished = [anyio.Event() for _ in range(TASKS)]
    async with anyio.create_task_group() as tg:
        handles = [tg.start_soon(work, i, finished) for i in range(TASKS)]
        for handle in handles:
            handled.append(await handle)  # blocks on task 0, the slowest, first
            first_handled_at = first_handled_at or anyio.current_time() - start
    return handled, first_handled_at


async def joinset_as_completed() -> tuple[list[int], float]:
    """The JoinSet way: each result as soon as its task is done."""
    start = anyio.current_time()
    handled: list[int] = []
    first_handled_at = 0.0
    finished = [anyio.Event() for _ in range(TASKS)]
    async with JoinSet[int]() as js:
        for i in range(TASKS):
            js.spawn(work, i, finished)
        async for outcome in js:
            handled.append(outcome.result())
            first_handled_at = first_handled_at or anyio.current_time() - start
    return handled, first_handled_at


async def main() -> None:
    order, first = await gather_in_spawn_order()
    print(f"gather in spawn order: {order}  (first result handled after {first * 1000:.0f} ms)")
    order, first = await joinset_as_completed()
    print(f"JoinSet as completed:  {order}  (first result handled after {first * 1000:.0f} ms)")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--backend", choices=list(BACKENDS), default="asyncio", help="event loop")
    run(main, backend=cli.parse_args().backend)
