"""
What it shows: a worker pool with tasks added while it runs. A producer sends
jobs through an AnyIO memory object stream; the pool runs at most --workers of
them at once (limit + wait_for_capacity), handles each result the moment it
completes while still accepting jobs, and exits once the stream is closed and
every job has been handled.

The trick: the feeder that turns jobs into tasks runs inside the same JoinSet,
so the set is never empty while jobs may still arrive, and one `async for`
loop over the set is the whole consumer.

Run it:
  python examples/worker_pool.py --backend asyncio --jobs 20 --workers 3
  python examples/worker_pool.py --backend trio
"""

from __future__ import annotations

import argparse
import random

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from anyio_joinset import JoinSet
from anyio_joinset.backends import BACKENDS, run


async def produce(send: MemoryObjectSendStream[int], jobs: int) -> None:
    async with send:  # closing the stream tells the pool no more jobs will come
        for job in range(jobs):
            await send.send(job)
            await anyio.sleep(0.001)


async def process(job: int, delay: float) -> str:
    await anyio.sleep(delay)
    return f"job {job} done"


async def feed(receive: MemoryObjectReceiveStream[int], js: JoinSet[str | None], seed: int) -> None:
    rng = random.Random(seed)
    async with receive:
        async for job in receive:
            await js.wait_for_capacity()  # backpressure: never more than the limit
            js.spawn(process, job, rng.uniform(0, 0.01), name=f"job-{job}")


async def main(jobs: int, workers: int, seed: int) -> list[str]:
    send, receive = anyio.create_memory_object_stream[int]()
    results: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(produce, send, jobs)
        # One slot more than the workers: the feeder itself is a task of the set.
        async with JoinSet[str | None](limit=workers + 1) as js:
            js.spawn(feed, receive, js, seed, name="feeder")
            async for outcome in js:  # ends when the feeder is done and no job is left
                value = outcome.result()
                if value is not None:
                    results.append(value)
                    print(f"{value} ({len(js)} still in the pool)")
    print(f"pool finished: {len(results)} of {jobs} jobs")
    return results


if __name__ == "__main__":
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--backend", choices=list(BACKENDS), default="asyncio", help="event loop")
    cli.add_argument("--jobs", type=int, default=20)
    cli.add_argument("--workers", type=int, default=3)
    cli.add_argument("--seed", type=int, default=1)
    args = cli.parse_args()
    run(main, args.jobs, args.workers, args.seed, backend=args.backend)
