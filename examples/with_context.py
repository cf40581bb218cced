"""
What it shows: keeping track of which input each result belongs to. Results
arrive in completion order; each Outcome carries the id of its JoinHandle, so a
dict from handle id to input index puts every result back in its place (a list
filled by index, like asyncio.gather's), while each result can still be used
the moment it arrives. Keyed inputs work the same way with a dict of keys.

Run it:
  python examples/with_context.py --backend asyncio
  python examples/with_context.py --backend trio
"""

from __future__ import annotations

import argparse

import anyio

from anyio_joinset import JoinSet
from anyio_joinset.backends import BACKENDS, run

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon"]


async def measure(word: str) -> int:
    await anyio.sleep(0.002 * (len(WORDS) - WORDS.index(word)))  # work of varying length
    return len(word)


async def main() -> list[int | None]:
    lengths: list[int | None] = [None] * len(WORDS)
    async with JoinSet[int]() as js:
        index_of = {js.spawn(measure, word).id: i for i, word in enumerate(WORDS)}
        async for outcome in js:
            i = index_of.pop(outcome.id)
            lengths[i] = outcome.result()
            print(f"{WORDS[i]!r} (input #{i}) -> {lengths[i]}")
    print(f"by input order: {lengths}")
    return lengths


if __name__ == "__main__":
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--backend", choices=list(BACKENDS), default="asyncio", help="event loop")
    run(main, backend=cli.parse_args().backend)
