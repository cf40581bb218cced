"""
What it shows: how to see where the tasks of a stuck set wait. This set hangs
on purpose: two tasks wait for each other, and a third waits for a lock that
main() holds and never releases. After --timeout seconds, while main() still
waits in join_all(), a watchdog task prints the dump of every open set
(`anyio_joinset.dump_sets`): each stuck task with the function and line it
waits at, tasks at the same place grouped with a count. The how-to
"Debugging a stuck set" walks through it.

Run it:
  python examples/stuck.py --backend asyncio
  python examples/stuck.py --backend trio
  python examples/stuck.py --json          # the form for tools
  python examples/stuck.py --timeout 60    # then, on POSIX: kill -USR1 <pid>
"""

from __future__ import annotations

import argparse
import os
import sys

import anyio

from anyio_joinset import JoinSet, dump_on_signal, dump_sets
from anyio_joinset.backends import BACKENDS, run


async def hand_over(mine: anyio.Event, theirs: anyio.Event) -> None:
    await theirs.wait()  # each waits for the other to go first: neither ever does
    mine.set()


async def update_cache(lock: anyio.Lock) -> None:
    async with lock:  # main() holds the lock and never lets go
        pass


async def main(dump_after: float, as_json: bool) -> None:
    restore = dump_on_signal() if sys.platform != "win32" else None  # Windows: no SIGUSR1
    lock = anyio.Lock()
    ping_done, pong_done = anyio.Event(), anyio.Event()
    try:
        async with JoinSet[None]() as js:
            await lock.acquire()
            js.spawn(hand_over, ping_done, pong_done, name="ping")
            js.spawn(hand_over, pong_done, ping_done, name="pong")
            js.spawn(update_cache, lock)
            if restore is not None:
                hint = f"stuck on purpose; for the dump now: kill -USR1 {os.getpid()}"
                print(hint, file=sys.stderr, flush=True)
            async with anyio.create_task_group() as watch:

                async def watchdog() -> None:
                    # While join_all() still waits: print where everything is stuck.
                    await anyio.sleep(dump_after)
                    print(dump_sets("json" if as_json else "text"))
                    watch.cancel_scope.cancel()

                watch.start_soon(watchdog)
                await js.join_all()
            # Leaving the block aborts the stuck tasks (S13).
    finally:
        if restore is not None:
            restore()


if __name__ == "__main__":
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--backend", choices=list(BACKENDS), default="asyncio", help="event loop")
    cli.add_argument("--timeout", type=float, default=0.5, help="seconds before the dump")
    cli.add_argument("--json", action="store_true", help="print the dump as JSON")
    args = cli.parse_args()
    run(main, args.timeout, args.json, backend=args.backend)
