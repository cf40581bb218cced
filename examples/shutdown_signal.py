# What it shows: long-running workers and a clean shutdown. Workers loop over
# units of work until a shutdown signal: an anyio.Event (set by Ctrl-C / SIGINT /
# SIGTERM, or by --stop-after) is the cancellation token each worker checks
# between units. On the signal, the workers get --grace seconds to finish their
# current unit; then `abort_all()` cancels the rest and the set is drained, so
# every worker is accounted for and nothing outlives the block.
#
# Run it (press Ctrl-C to stop, or let --stop-after do it):
#   python examples/shutdown_signal.py --backend asyncio
#   python examples/shutdown_signal.py --backend trio --stop-after 0.5
from __future__ import annotations

import signal
import sys

import anyio
import anyio.abc
from _cli import parser, run

from anyio_joinset import JoinSet


async def worker(number: int, stop: anyio.Event, unit: float) -> int:
    """Do units of work until asked to stop; return how many were done."""
    done = 0
    while not stop.is_set():
        await anyio.sleep(unit * (1 + number % 3))  # one unit of work
        done += 1
    return done


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
    counts = {"finished": 0, "aborted": 0, "units": 0}
    async with anyio.create_task_group() as tg:
        if sys.platform != "win32":
            await tg.start(wait_for_signal, stop)
        async with JoinSet[int]() as js:
            for number in range(workers):
                js.spawn(worker, number, stop, 0.01, name=f"worker-{number}")
            print(f"{workers} workers running", flush=True)
            with anyio.move_on_after(stop_after):
                await stop.wait()
            stop.set()
            # Graceful first: workers see the token and finish their unit.
            with anyio.move_on_after(grace):
                async for outcome in js:
                    counts["finished"] += 1
                    counts["units"] += outcome.result()
            # Then forceful: whoever is still busy is aborted, and drained.
            js.abort_all()
            async for outcome in js:
                if outcome.cancelled():
                    counts["aborted"] += 1
                else:
                    counts["finished"] += 1
                    counts["units"] += outcome.result()
        tg.cancel_scope.cancel()  # stop listening for signals
    print(
        f"shutdown complete: {counts['finished']} finished, {counts['aborted']} aborted, "
        f"{counts['units']} units of work done",
        flush=True,
    )
    return counts


if __name__ == "__main__":
    cli = parser(__doc__)
    cli.add_argument("--workers", type=int, default=5)
    cli.add_argument("--stop-after", type=float, default=None, help="seconds (default: never)")
    cli.add_argument("--grace", type=float, default=0.015)
    args = cli.parse_args()
    run(main, args, args.workers, args.stop_after, args.grace)
