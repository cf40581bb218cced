# What it measures: the wall time of a snapshot (JoinSet.snapshot) and of the
# text dump (dump_sets) of one set of N tasks all waiting in anyio.sleep_forever,
# on each backend (issue 15). Best of --repeat runs, in CPU seconds of this
# process (time.process_time: on a shared machine, wall time counts the others).
#
# Run it:
#   python benchmarks/snapshot.py
#   python benchmarks/snapshot.py --tasks 10000 --backends trio
from __future__ import annotations

import argparse
import time

import anyio

from anyio_joinset import JoinSet, dump_sets
from anyio_joinset.backends import BACKENDS


async def measure(n: int, repeat: int) -> tuple[float, float, int]:
    async with JoinSet[None]() as js:
        for _ in range(n):
            js.spawn(anyio.sleep_forever)
        await anyio.wait_all_tasks_blocked()
        snap_best = dump_best = float("inf")
        lines = 0
        for _ in range(repeat):
            start = time.process_time()
            snap = js.snapshot()
            snap_best = min(snap_best, time.process_time() - start)
            start = time.process_time()
            text = dump_sets()
            dump_best = min(dump_best, time.process_time() - start)
            lines = len(text.splitlines())
        assert len(snap.tasks) == n
        js.abort_all()
    return snap_best, dump_best, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["asyncio", "trio"])
    args = parser.parse_args()
    print(
        f"snapshot of one set of {args.tasks:,} waiting tasks (CPU seconds, best of {args.repeat})"
    )
    print("| backend | snapshot() | dump_sets() | dump lines |")
    print("|---|---|---|---|")
    for backend in args.backends:
        name, options = BACKENDS[backend]
        snap, dump, lines = anyio.run(
            measure, args.tasks, args.repeat, backend=name, backend_options=options
        )
        print(f"| {backend} | {snap:.2f} s | {dump:.2f} s | {lines} |", flush=True)


if __name__ == "__main__":
    main()
