"""
What it shows: the three ways tasks are aborted, and that each task's cleanup
(its `finally:` block) runs.
  1. Leaving the `async with` block aborts every task still running.
  2. `abort_all()` aborts every task but keeps the set open for new ones.
  3. `handle.abort()` aborts one task; the others carry on.

Run it:
  python examples/abort.py --backend asyncio
  python examples/abort.py --backend trio
"""

from __future__ import annotations

import argparse

import anyio
import anyio.lowlevel

from anyio_joinset import JoinSet
from anyio_joinset.backends import BACKENDS, run


async def worker(name: str, log: list[str]) -> str:
    try:
        await anyio.sleep_forever()
    finally:
        log.append(f"{name} cleaned up")
    return name  # never reached: the task is always aborted here


async def quick(name: str) -> str:
    await anyio.lowlevel.checkpoint()
    return name


async def main() -> list[str]:
    log: list[str] = []

    print("1. leaving the block aborts what still runs")
    async with JoinSet[str]() as js:
        js.spawn(worker, "a", log)
        js.spawn(worker, "b", log)
        await anyio.wait_all_tasks_blocked()
    print(f"   after the block: {sorted(log)}")

    print("2. abort_all() aborts everything, the set stays usable")
    log.clear()
    async with JoinSet[str]() as js:
        for name in ("c", "d"):
            js.spawn(worker, name, log, name=name)
        await anyio.wait_all_tasks_blocked()
        js.abort_all()
        cancelled = [o.name async for o in js if o.cancelled()]
        print(f"   cancelled: {sorted(cancelled)}; cleanups: {sorted(log)}")
        js.spawn(quick, "e", name="e")
        outcome = await js.join_next()
        assert outcome is not None
        print(f"   spawned afterwards, ran normally: {outcome.result()}")

    print("3. handle.abort() aborts one task")
    log.clear()
    async with JoinSet[str]() as js:
        slow = js.spawn(worker, "f", log, name="f")
        js.spawn(quick, "g", name="g")
        await anyio.wait_all_tasks_blocked()
        slow.abort()
        async for outcome in js:
            state = "aborted" if outcome.cancelled() else f"returned {outcome.result()!r}"
            print(f"   {outcome.name}: {state}")
    print(f"   cleanups: {log}")
    return log


if __name__ == "__main__":
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--backend", choices=list(BACKENDS), default="asyncio", help="event loop")
    run(main, backend=cli.parse_args().backend)
