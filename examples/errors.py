"""
What it shows: errors are values. One task fails, one is aborted, the others
succeed; the loop tells each kind apart and logs failures with their traceback,
and no failure stops the other tasks.

Run it:
  python examples/errors.py --backend asyncio
  python examples/errors.py --backend trio
"""

from __future__ import annotations

import argparse
import logging

import anyio

from anyio_joinset import JoinSet
from anyio_joinset.backends import BACKENDS, run

logger = logging.getLogger("errors-example")


async def fetch(item: str) -> str:
    await anyio.sleep(0.001)
    if item == "broken":
        msg = f"cannot fetch {item!r}"
        raise ConnectionError(msg)
    if item == "slow":
        await anyio.sleep_forever()
    return item.upper()


async def main() -> dict[str, str]:
    summary: dict[str, str] = {}
    async with JoinSet[str]() as js:
        handles = {item: js.spawn(fetch, item, name=item) for item in ("a", "broken", "slow", "b")}
        await anyio.wait_all_tasks_blocked()
        handles["slow"].abort()
        async for outcome in js:
            if outcome.cancelled():
                summary[outcome.name] = "cancelled"
                logger.info("%s was cancelled", outcome.name)
            elif (error := outcome.exception()) is not None:
                summary[outcome.name] = f"failed: {type(error).__name__}"
                logger.error("%s failed", outcome.name, exc_info=error)
            else:
                summary[outcome.name] = f"ok: {outcome.result()}"
    for name in sorted(summary):
        print(f"{name}: {summary[name]}")
    return summary


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--backend", choices=list(BACKENDS), default="asyncio", help="event loop")
    run(main, backend=cli.parse_args().backend)
