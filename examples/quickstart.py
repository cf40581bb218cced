"""
What it shows: the JoinSet basics end to end. Ten "downloads" with random
latency run concurrently (at most four at a time); each result is printed the
moment its task finishes, a failing task comes back as a value instead of
tearing down its siblings, and one slow task is aborted through its handle.

Run it:
  python examples/quickstart.py                   # asyncio
  python examples/quickstart.py --backend trio    # Trio
  python examples/quickstart.py --backend asyncio --seed 7
"""

from __future__ import annotations

import argparse
import random

import anyio

from anyio_joinset import JoinSet
from anyio_joinset.backends import BACKENDS, run


async def download(page: int, latency: float) -> int:
    """Pretend to download a page: wait, then return its size (page 7 is broken)."""
    await anyio.sleep(latency)
    if page == 7:
        msg = f"page {page}: HTTP 500"
        raise RuntimeError(msg)
    return 1000 + page


async def main(seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    counts = {"ok": 0, "failed": 0, "cancelled": 0}
    async with JoinSet[int](limit=4) as js:
        for page in range(10):
            handle = js.spawn(download, page, rng.uniform(0.0, 0.05), name=f"page-{page}")
            if page == 9:
                handle.abort()  # changed our mind: this one never runs
        async for outcome in js:  # in completion order
            if outcome.cancelled():
                counts["cancelled"] += 1
                print(f"{outcome.name}: aborted")
            elif (error := outcome.exception()) is not None:
                counts["failed"] += 1
                print(f"{outcome.name}: failed with {error}")
            else:
                counts["ok"] += 1
                print(f"{outcome.name}: {outcome.result()} bytes")
    print(f"done: {counts['ok']} ok, {counts['failed']} failed, {counts['cancelled']} aborted")
    return counts


if __name__ == "__main__":
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--backend", choices=list(BACKENDS), default="asyncio", help="event loop")
    cli.add_argument("--seed", type=int, default=1, help="seed of the random latencies")
    args = cli.parse_args()
    run(main, args.seed, backend=args.backend)
