"""
What it shows: what a JoinSet adds over gather-style joining (anyio.gather,
asyncio.gather, or JoinSet.join_all itself), each point demonstrated live:
  1. results as completed, not all at the end;
  2. tasks added while results are being taken;
  3. unfinished tasks aborted when the block is left;
  4. one task cancelled without touching the others.

Run it:
  python examples/join_all_vs_joinset.py --backend asyncio
  python examples/join_all_vs_joinset.py --backend trio
"""

from __future__ import annotations

import argparse

import anyio

from anyio_joinset import JoinSet
from anyio_joinset.backends import BACKENDS, run


async def value_after(value: int, delay: float) -> int:
    await anyio.sleep(delay)
    return value


async def results_as_completed() -> tuple[float, float]:
    """Milliseconds until the first result can be used, each way."""
    tasks = ((1, 0.03), (2, 0.01), (3, 0.02))
    start = anyio.current_time()
    async with JoinSet[int]() as js:
        for value, delay in tasks:
            js.spawn(value_after, value, delay)
        await js.join_all()  # gather-style: every result at once, after the slowest
        gathered_first = anyio.current_time() - start
    start = anyio.current_time()
    async with JoinSet[int]() as js:
        for value, delay in tasks:
            js.spawn(value_after, value, delay)
        await js.join_next()  # the fastest result, as soon as it exists
        joinset_first = anyio.current_time() - start
    return gathered_first * 1000, joinset_first * 1000


async def dynamic_add() -> list[int]:
    seen: list[int] = []
    async with JoinSet[int]() as js:
        js.spawn(value_after, 1, 0.001)
        async for outcome in js:
            seen.append(outcome.result())
            if outcome.result() < 4:  # each result spawns a follow-up task
                js.spawn(value_after, outcome.result() + 1, 0.001)
    return seen


async def abort_on_exit() -> list[str]:
    log: list[str] = []

    async def slow() -> int:
        try:
            await anyio.sleep_forever()
        finally:
            log.append("slow task cleaned up at block exit")
        return 0  # never reached

    async with JoinSet[int]() as js:
        js.spawn(slow)
        js.spawn(value_after, 7, 0)
        outcome = await js.join_next()  # we only need the first answer
        assert outcome is not None
        log.append(f"first answer: {outcome.result()}")
    return log


async def cancel_one() -> dict[str, str]:
    states: dict[str, str] = {}
    async with JoinSet[int]() as js:
        keep = js.spawn(value_after, 1, 0.01, name="keep")
        drop = js.spawn(value_after, 2, 10, name="drop")
        drop.abort()
        async for outcome in js:
            states[outcome.name] = "cancelled" if outcome.cancelled() else "finished"
    assert keep.done()
    return states


async def main() -> None:
    gathered, as_completed = await results_as_completed()
    faster = "sooner" if as_completed < gathered else "NOT sooner"
    print(
        f"1. first result usable after {gathered:.0f} ms with gather-style joining, "
        f"after {as_completed:.0f} ms as completed ({faster})"
    )
    print(f"2. tasks spawned while joining: {await dynamic_add()}")
    print(f"3. {'; '.join(await abort_on_exit())}")
    print(f"4. one task cancelled, the other untouched: {await cancel_one()}")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--backend", choices=list(BACKENDS), default="asyncio", help="event loop")
    run(main, backend=cli.parse_args().backend)
