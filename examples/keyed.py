"""
What it shows: keyed tasks with JoinMap, and a graceful shutdown. A cache
refresher keeps one refresh task per key: asking again for a key replaces its
task (the old one is aborted and its result never shows up), results come back
as (key, outcome) pairs, and `shutdown(grace=...)` lets the refreshes still
running finish for a moment before aborting whatever is left. The set's
stats() snapshot reports what happened.

Run it:
  python examples/keyed.py --backend asyncio
  python examples/keyed.py --backend trio
"""

from __future__ import annotations

import argparse

import anyio

from anyio_joinset import JoinMap
from anyio_joinset.backends import BACKENDS, run


async def refresh(key: str, seconds: float) -> str:
    await anyio.sleep(seconds)
    return f"{key} refreshed after {seconds * 1000:.0f} ms"


async def main() -> dict[str, str]:
    report: dict[str, str] = {}
    async with JoinMap[str, str]() as jm:
        jm.spawn("users", refresh, "users", 0.01)
        jm.spawn("orders", refresh, "orders", 10.0)  # too slow...
        jm.spawn("orders", refresh, "orders", 0.02)  # ...so replace it
        jm.spawn("stock", refresh, "stock", 0.03)
        jm.spawn("archive", refresh, "archive", 60.0)
        print(f"refreshing {sorted(jm.keys())}")
        for _ in range(3):  # take the three quick ones as they finish
            pair = await jm.join_next()
            assert pair is not None
            key, outcome = pair
            report[key] = outcome.result()
            print(report[key])
        await jm.shutdown(grace=0.05)  # "archive" does not make it: aborted
        stats = jm.stats()
    print(
        f"spawned {stats.spawned}, joined {stats.joined}, cancelled {stats.cancelled} "
        "(the replaced task and the one aborted at shutdown)"
    )
    return report


if __name__ == "__main__":
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--backend", choices=list(BACKENDS), default="asyncio", help="event loop")
    run(main, backend=cli.parse_args().backend)
