"""
What it shows: long-running workers and a clean shutdown. Workers loop over
units of work until a shutdown signal: an anyio.Event (set by Ctrl-C / SIGINT /
SIGTERM, or by --stop-after) is the cancellation token each worker checks
between units. On the signal, `shutdown(grace=...)` gives the workers --grace
seconds to finish their current unit on their own, then aborts whoever is still
busy and waits for it, so every worker is accounted for (by the set's stats())
and nothing outlives the block.

Run it (press Ctrl-C to stop, or let --stop-after do it):
  python examples/shutdown_signal.py --backend asyncio
  python examples/shutdown_signal.py --backend trio --stop-after 0.5
"""

from __future__ import annotations

import argparse
import signal
import sys

import anyio
import anyio.abc

from anyio_joinset import JoinSet
from anyio_joinset.backends import BACKENDS, run


async def worker(number: int, stop: anyio.Event, unit: float, done: list[int]) -> None:
    """Do units of work until asked to stop, counting each one in ``done``."""
    while not stop.is_set():
        await anyio.sleep(unit * (1 + number % 3))  # one unit of work
        done[number] += 1


async def wait_for_signal(
    stop: anyio.Event, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    signals = [signal.SIGINT, signal.SIGTERM]
    with anyio.open_signal_receiver(*signals) as received:
        task_status.started()  # from here on, Ctrl-C is ours to handle
        async for signum in received:
            print(f"received {signal.Signals(signum).name}, shutting down", flush=True)
            stop.set()
            return


async def main(workers: int, stop_after: float | None, grace: float) -> dict[str, int]:
    stop = anyio.Event()
    done = [0] * workers  # units of work done, per worker
    # Filled in the block: AnyIO types a task group's __aexit__ -> bool (it may
    # swallow), so a type checker calls a name first bound in it possibly unbound.
    counts: dict[str, int] = {}
    async with anyio.create_task_group() as tg:
        if sys.platform != "win32":
            await tg.start(wait_for_signal, stop)
        async with JoinSet[None]() as js:
            for number in range(workers):
                js.spawn(worker, number, stop, 0.01, done, name=f"worker-{number}")
            print(f"{workers} workers running", flush=True)
            with anyio.move_on_after(stop_after):
                await stop.wait()
            stop.set()
            # Graceful first: the workers see the token and finish their unit.
            # Whoever is still busy after `grace` seconds is aborted; either way
            # shutdown() waits for every worker to end.
            await js.shutdown(grace=grace)
            stats = js.stats()
        counts["finished"] = stats.joined - stats.cancelled - stats.failed
        counts["aborted"] = stats.cancelled
        tg.cancel_scope.cancel()  # stop listening for signals
    counts["units"] = sum(done)
    print(
        f"shutdown complete: {counts['finished']} finished, {counts['aborted']} aborted, "
        f"{counts['units']} units of work done",
        flush=True,
    )
    return counts


if __name__ == "__main__":
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--backend", choices=list(BACKENDS), default="asyncio", help="event loop")
    cli.add_argument("--workers", type=int, default=5)
    cli.add_argument("--stop-after", type=float, default=None, help="seconds (default: never)")
    cli.add_argument("--grace", type=float, default=0.015)
    args = cli.parse_args()
    run(main, args.workers, args.stop_after, args.grace, backend=args.backend)
