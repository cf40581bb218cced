"""
What it shows: a worker pool fed from a stream. A producer sends jobs through an
AnyIO memory object stream; `js.map(process, jobs)` turns each job into a task as
soon as one of the --workers slots is free (limit), yields each result the moment
its job completes, and ends once the stream is closed and every job is handled.

No feeder task of your own, no sentinel values: map() takes the next job only
when there is room, so at most --workers jobs are in memory at once (S20).

Run it:
  python examples/worker_pool.py --backend asyncio --jobs 20 --workers 3
  python examples/worker_pool.py --backend trio
"""

from __future__ import annotations

import argparse
import random

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from anyio_joinset import JoinSet
from anyio_joinset.backends import BACKENDS, run


async def produce(send: MemoryObjectSendStream[int], jobs: int) -> None:
    async with send:  # closing the stream tells the pool no more jobs will come
        for job in range(jobs):
            await send.send(job)
            await anyio.sleep(0.001)


async def main(jobs: int, workers: int, seed: int) -> list[str]:
    rng = random.Random(seed)

    async def process(job: int) -> str:
        await anyio.sleep(rng.uniform(0, 0.01))
        return f"job {job} done"

    send, receive = anyio.create_memory_object_stream[int]()
    results: list[str] = []
    async with anyio.create_task_group() as tg, receive:
        tg.start_soon(produce, send, jobs)
        async with JoinSet[str](limit=workers) as js:
            async for _job, outcome in js.map(process, receive):
                results.append(outcome.result())
                print(f"{results[-1]} ({len(js)} still in the pool)")
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
