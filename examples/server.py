"""
What it shows: a TCP server whose connection handlers are the tasks of a
JoinSet, the way nursery code writes servers. `js.start(run_server, ...)`
returns once the server listens, with its port (task_status.started(port)).
The listener's `serve()` gets `js.task_group`, an anyio.abc.TaskGroup that
spawns into the set, so every connection's handler is a task of the set; a
follower (`js.follow()`) takes each handler's outcome as it ends, so memory
follows the live connections. On Ctrl-C (or, with --demo, once a load of
--clients connections is served and a few more are still talking) the server
stops accepting and `shutdown(grace=...)` gives the handlers still talking
--grace seconds to finish, then aborts the rest: every connection is
accounted for and nothing outlives the block.

The protocol: each line a client sends comes back in upper case.

Run it (Ctrl-C to stop; meanwhile try `nc 127.0.0.1 PORT`):
  python examples/server.py --backend asyncio
  python examples/server.py --backend trio --demo
"""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import dataclass

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskGroup, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from anyio_joinset import JoinSet
from anyio_joinset.backends import BACKENDS, run

MAX_LINE = 1024


@dataclass
class Tally:
    """What the handlers did, counted by the handlers themselves."""

    connections: int = 0
    lines: int = 0
    aborted: int = 0


async def handle(stream: SocketStream, tally: Tally) -> int:
    """Answer each line in upper case until the client hangs up; return the lines answered."""
    tally.connections += 1
    answered = 0
    async with stream:
        lines = BufferedByteReceiveStream(stream)
        try:
            while True:
                try:
                    line = await lines.receive_until(b"\n", MAX_LINE)
                except (anyio.IncompleteRead, anyio.EndOfStream):
                    return answered  # the client hung up
                await stream.send(line.upper() + b"\n")
                answered += 1
                tally.lines += 1
        except anyio.get_cancelled_exc_class():
            tally.aborted += 1  # still talking when the grace period ran out
            raise


async def run_server(
    tally: Tally, task_group: TaskGroup, port: int, *, task_status: TaskStatus[int]
) -> None:
    """Listen on 127.0.0.1, say on which port, and serve each connection in ``task_group``."""

    async def handle_connection(stream: SocketStream) -> int:
        return await handle(stream, tally)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    async with listener:
        port = listener.extra(SocketAttribute.local_port)  # noqa: S610 - AnyIO's, not Django's
        task_status.started(port)
        await listener.serve(handle_connection, task_group=task_group)


async def follow_handlers(js: JoinSet[int | None]) -> None:
    """Take each outcome as it comes, for as long as the set is open."""
    async for outcome in js.follow():
        if not outcome.cancelled() and outcome.exception() is not None:
            print(f"{outcome.name} failed: {outcome.exception()!r}", flush=True)


async def talk(port: int, lines: list[bytes]) -> int:
    """One client: send each line and check the answer; return the answers."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        answers = BufferedByteReceiveStream(stream)
        for line in lines:
            await stream.send(line + b"\n")
            assert await answers.receive_until(b"\n", MAX_LINE) == line.upper()
    return len(lines)


async def talk_through_shutdown(port: int, ready: anyio.Event, stop: anyio.Event) -> int:
    """A client still talking when the server shuts down: it finishes in the grace period."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        answers = BufferedByteReceiveStream(stream)
        await stream.send(b"hello\n")
        assert await answers.receive_until(b"\n", MAX_LINE) == b"HELLO"
        ready.set()
        await stop.wait()
        await stream.send(b"goodbye\n")
        assert await answers.receive_until(b"\n", MAX_LINE) == b"GOODBYE"
    return 2


async def demo_load(
    port: int, clients: int, in_flight: int, stop: anyio.Event, done: anyio.Event
) -> None:
    """--demo: a load of clients, then a few still talking when ``stop`` is set."""
    async with JoinSet[int](limit=100) as load:  # at most 100 clients connected at once
        for number in range(clients):
            await load.wait_for_capacity()
            load.spawn(talk, port, [b"client %d line %d" % (number, i) for i in range(3)])
        answers = sum(await load.join_all())
    print(f"{clients} clients served: {answers} answers", flush=True)
    async with JoinSet[int]() as talking:
        ready = [anyio.Event() for _ in range(in_flight)]
        for event in ready:
            talking.spawn(talk_through_shutdown, port, event, stop)
        for event in ready:
            await event.wait()
        print(f"{in_flight} clients still talking: shutting down", flush=True)
        stop.set()
        answers = sum(await talking.join_all())
    print(f"{in_flight} clients finished during the grace period: {answers} answers", flush=True)
    done.set()


async def wait_for_signal(stop: anyio.Event, *, task_status: TaskStatus[None]) -> None:
    """Set ``stop`` on Ctrl-C (SIGINT) or SIGTERM."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
        task_status.started()  # from here on, Ctrl-C is ours to handle
        async for signum in received:
            print(f"received {signal.Signals(signum).name}, shutting down", flush=True)
            stop.set()
            return


async def main(port: int, grace: float, demo: bool, clients: int, in_flight: int) -> Tally:
    stop = anyio.Event()
    load_done = anyio.Event()
    tally = Tally()
    async with anyio.create_task_group() as tg:
        if sys.platform != "win32":
            await tg.start(wait_for_signal, stop)
        async with JoinSet[int | None]() as js:
            server = await js.start(run_server, tally, js.task_group, port, return_handle=True)
            listening = server.start_value
            assert isinstance(listening, int)
            print(f"listening on 127.0.0.1:{listening}", flush=True)
            tg.start_soon(follow_handlers, js)
            if demo:
                tg.start_soon(demo_load, listening, clients, in_flight, stop, load_done)
            await stop.wait()
            server.abort()  # stop accepting connections
            # Handlers still talking get `grace` seconds to finish on their own;
            # whoever is still busy then is aborted. Either way shutdown() waits
            # for every handler to end.
            await js.shutdown(grace=grace)
        if demo:
            await load_done.wait()
        tg.cancel_scope.cancel()  # stop listening for signals
    print(
        f"shutdown complete: {tally.connections} connections, {tally.lines} lines answered, "
        f"{tally.aborted} aborted",
        flush=True,
    )
    return tally


if __name__ == "__main__":
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--backend", choices=list(BACKENDS), default="asyncio", help="event loop")
    cli.add_argument("--port", type=int, default=0, help="default: any free port")
    cli.add_argument("--grace", type=float, default=5.0, help="seconds (default: 5)")
    cli.add_argument("--demo", action="store_true", help="run a client load, then stop")
    cli.add_argument("--clients", type=int, default=300, help="with --demo (default: 300)")
    cli.add_argument("--in-flight", type=int, default=5, help="with --demo (default: 5)")
    args = cli.parse_args()
    run(main, args.port, args.grace, args.demo, args.clients, args.in_flight, backend=args.backend)
