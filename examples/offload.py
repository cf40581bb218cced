"""
What it shows: one JoinSet for work that does not run on the event loop.
Blocking calls go to worker threads (spawn_thread), CPU work to worker
processes (spawn_process), and futures from any concurrent.futures executor
(spawn_future, spawn_submit) join the same set, so results from all of them
come back in one completion-order loop, with abort and limit as usual. With
--dask, the same code submits to a real local Dask cluster
(pip install -e ".[dask]"). A rate limit spaces the task starts.

Run it:
  python examples/offload.py --backend asyncio
  python examples/offload.py --backend trio --dask
"""

from __future__ import annotations

import argparse
import hashlib
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import ExitStack

from anyio_joinset import JoinSet
from anyio_joinset.backends import BACKENDS, run


def blocking_io(seconds: float) -> str:
    time.sleep(seconds)  # stands for a blocking client library
    return f"slept {seconds}s in a thread"


def cpu_work(rounds: int) -> str:
    digest = b""
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return f"hashed {rounds} rounds in a process: {digest.hex()[:8]}"


def executor_work(n: int) -> str:
    return f"sum(range({n})) = {sum(range(n))} in an executor"


async def main(use_dask: bool) -> list[str]:
    results: list[str] = []
    with ExitStack() as stack:
        executor: Executor
        if use_dask:
            import distributed  # noqa: PLC0415 - optional

            # A free loopback port for the scheduler's web server: the default
            # (even with dashboard_address=None) is 8787, taken by any other cluster.
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=2, processes=False, dashboard_address="127.0.0.1:0"
                )
            )
            executor = stack.enter_context(distributed.Client(cluster)).get_executor()
        else:
            executor = stack.enter_context(ThreadPoolExecutor(2))
        # At most 4 tasks at once, and at most 50 starts per second.
        async with JoinSet[str](limit=4, rate=(50, 1.0)) as js:
            js.spawn_thread(blocking_io, 0.05)
            js.spawn_process(cpu_work, 20_000)
            js.spawn_submit(executor, executor_work, 1000)  # submitted when it starts
            future = executor.submit(executor_work, 10)  # already submitted
            js.spawn_future(future, name="adopted future")
            js.spawn_thread(blocking_io, 60).abort()  # aborted before it starts
            async for outcome in js:
                line = "aborted" if outcome.cancelled() else outcome.result()
                results.append(line)
                print(f"{outcome.name}: {line}")
    return results


if __name__ == "__main__":
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--backend", choices=list(BACKENDS), default="asyncio", help="event loop")
    cli.add_argument("--dask", action="store_true", help="use a local Dask cluster")
    args = cli.parse_args()
    run(main, args.dask, backend=args.backend)
