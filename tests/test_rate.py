"""JoinSet(rate=...) (S18): evenly spaced starts, with limit and backpressure."""

from __future__ import annotations

import math

import anyio
import pytest

from anyio_joinset import JoinSet, TaskState
from explore import EXPLORE_BACKENDS, explore_backend
from helpers import VIRTUAL_TIME, Gate, virtual_time_backends

# Virtual time (helpers.VIRTUAL_TIME): the start times below are exact and the tests
# take no real time, on asyncio (plain and eager) and on Trio.


@VIRTUAL_TIME
async def test_starts_are_evenly_spaced() -> None:
    """rate=(2, 1.0): a start every half second, the first at once."""
    start = anyio.current_time()
    starts: list[float] = []

    async def record() -> None:
        starts.append(anyio.current_time() - start)

    async with JoinSet[None](rate=(2, 1.0)) as js:
        for _ in range(6):
            js.spawn(record)
        assert len([o async for o in js]) == 6
    assert starts == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])


@VIRTUAL_TIME
async def test_rate_keeps_up_with_a_growing_set() -> None:
    """Tasks spawned later still get the next free turn, never a burst."""
    start = anyio.current_time()
    starts: list[float] = []

    async def record() -> None:
        starts.append(anyio.current_time() - start)

    async with JoinSet[None](rate=(4, 1.0)) as js:
        js.spawn(record)
        await anyio.sleep(10)  # idle: no credit is saved up for later
        for _ in range(3):
            js.spawn(record)
        _ = [o async for o in js]
    assert starts == pytest.approx([0.0, 10.0, 10.25, 10.5])


@VIRTUAL_TIME
async def test_rate_with_limit_and_backpressure() -> None:
    """rate and limit together: at most n running, starts spaced, producer held back."""
    running = 0
    peak = 0
    starts: list[float] = []
    start = anyio.current_time()

    async def work() -> None:
        nonlocal running, peak
        starts.append(anyio.current_time() - start)
        running += 1
        peak = max(peak, running)
        await anyio.sleep(3)
        running -= 1

    async with JoinSet[None](limit=2, rate=(10, 1.0)) as js, anyio.create_task_group() as tg:

        async def consume() -> None:
            async for outcome in js:
                outcome.result()

        for i in range(6):
            await js.wait_for_capacity()
            js.spawn(work)
            if i == 0:
                tg.start_soon(consume)
    assert peak == 2
    assert starts == pytest.approx([0.0, 0.1, 3.0, 3.1, 6.0, 6.1])


async def test_abort_while_waiting_for_the_rate_never_runs_the_body() -> None:
    """A task aborted while it waits for its turn never runs any of its body."""
    gate = Gate()
    async with JoinSet[object](rate=(1, 3600.0)) as js:
        js.spawn(anyio.sleep, 0)
        # Let the first task take the first turn (Trio starts a batch of new tasks
        # in random order), so the next turn is an hour away.
        await anyio.wait_all_tasks_blocked()
        handle = js.spawn(gate.wait)
        await anyio.wait_all_tasks_blocked()
        handle.abort()
        outcomes = {o.id: o.cancelled() async for o in js}
    assert outcomes == {1: False, 2: True}
    assert not gate.started


async def test_rate_on_every_backend() -> None:
    """S18 on every backend, in real time: start k comes no earlier than k intervals
    after the first (turns are on a grid; a turn is never taken early)."""
    interval = 0.05
    starts: list[float] = []

    async def record() -> None:
        starts.append(anyio.current_time())

    async with JoinSet[None](rate=(1, interval)) as js:
        for _ in range(4):
            js.spawn(record)
        assert len([o async for o in js]) == 4
    offsets = [t - starts[0] for t in starts]
    assert all(offset >= k * interval - 1e-6 for k, offset in enumerate(offsets)), offsets


@VIRTUAL_TIME
async def test_rate_as_starts_per_second() -> None:
    """S18: rate=4.0 means four starts a second, evenly spaced."""
    start = anyio.current_time()
    starts: list[float] = []

    async def record() -> None:
        starts.append(anyio.current_time() - start)

    async with JoinSet[None](rate=4.0) as js:
        for _ in range(5):
            js.spawn(record)
        assert len([o async for o in js]) == 5
    assert starts == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


@VIRTUAL_TIME
async def test_infinite_rate_means_no_limit() -> None:
    """S18: rate=math.inf (like None) starts every task at once."""
    start = anyio.current_time()
    starts: list[float] = []

    async def record() -> None:
        starts.append(anyio.current_time() - start)

    async with JoinSet[None](rate=math.inf) as js:
        for _ in range(5):
            js.spawn(record)
        assert len([o async for o in js]) == 5
    assert starts == [0.0] * 5


@pytest.mark.parametrize("bad", [0, -1.0, 0.0, math.nan, -math.inf])
def test_rate_per_second_that_allows_nothing_raises(bad: float) -> None:
    """S18: a starts-per-second rate must be positive (not NaN)."""
    with pytest.raises(
        ValueError, match=r"^JoinSet rate must be a positive number of starts per second"
    ):
        JoinSet[None](rate=bad)


@pytest.mark.parametrize(
    "bad", ["5", True, [1, 1.0], (1,), (1, 2, 3), ("1", 1.0), (1, "1"), (True, 1.0), (1, None)]
)
def test_rate_of_wrong_shape_raises(bad: object) -> None:
    """rate must be a number, a (count, per_seconds) tuple or None: TypeError otherwise."""
    with pytest.raises(
        TypeError,
        match=(
            r"^JoinSet rate must be None, starts per second as a number, "
            r"or a \(count, per_seconds\) tuple, got "
        ),
    ):
        JoinSet[None](rate=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [(0, 1.0), (1, 0), (1, -1.0), (1, float("inf")), (1, float("nan"))])
def test_rate_that_allows_nothing_raises(bad: tuple[int, float]) -> None:
    """A rate that allows no start is a ValueError naming the fix."""
    with pytest.raises(
        ValueError,
        match=r"^JoinSet rate must allow at least 1 start per a finite, positive number of",
    ):
        JoinSet[None](rate=bad)


async def test_a_task_waits_for_its_rate_turn_from_its_spawn() -> None:
    """S18, S23: right after spawn(), a task under ``rate`` reads RATE_TURN, as a snapshot says."""
    async with JoinSet[None](rate=(1, 3600.0)) as js:
        first = js.spawn(anyio.lowlevel.checkpoint)
        second = js.spawn(anyio.lowlevel.checkpoint)
        assert [first.state, second.state] == [TaskState.RATE_TURN] * 2
        assert [t.state for t in js.snapshot().tasks] == ["waiting_for_rate"] * 2
        await first.wait()  # its turn came at once; the second waits an hour
        assert second.state is TaskState.RATE_TURN
        js.abort_all()


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("backend", EXPLORE_BACKENDS)
def test_rate_turns_follow_spawn_order_in_any_schedule(backend: str, seed: int) -> None:
    """
    S18: turns are taken in spawn order, whatever order the loop first runs the tasks in.

    The tasks' first steps are shuffled (asyncio with a seeded ready queue,
    Trio's own shuffling, seeded). A task joins the line of turns when it is
    spawned, not when it first runs: the bodies start in spawn order.
    """
    started: list[int] = []

    async def record(index: int) -> int:
        started.append(index)
        return index

    async def main() -> list[int]:
        with anyio.fail_after(30):
            async with JoinSet[int](rate=(1, 0.001)) as js:
                for index in range(6):
                    js.spawn(record, index)
                return [outcome.result() async for outcome in js]

    name, options = explore_backend(backend, seed)
    finished = anyio.run(main, backend=name, backend_options=options)
    assert started == list(range(6))
    assert sorted(finished) == list(range(6))  # every task ended by itself


# asyncio runs timers that fire together in the order they were set; Trio runs a
# batch in any order, so there the turn may come first (and the body run, rightly).
ASYNCIO_VIRTUAL_TIME = pytest.mark.parametrize(
    "anyio_backend", [p for p in virtual_time_backends() if "asyncio" in str(p.id)]
)


@ASYNCIO_VIRTUAL_TIME
@pytest.mark.parametrize("how", ["abort", "abort_all", "shutdown", "outer scope"])
async def test_aborted_as_its_turn_comes_never_runs_the_body(how: str) -> None:
    """
    S7, S18: aborted in the very loop iteration its turn's timer fires, no body runs.

    On virtual time the abort's timer and the turn's fire together, the abort's
    first. asyncio then holds AnyIO's cancellation back (the task's sleep has
    already ended), so without a check after the turn the body ran up to its
    first checkpoint (an outside probe found it).
    """
    ran: list[str] = []

    async def victim() -> None:
        ran.append("body")
        await anyio.lowlevel.checkpoint()

    async def other() -> None:
        await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()
        js = JoinSet[None](rate=(1, 1.0))

        async def aborter() -> None:
            await anyio.sleep(1.0)  # when the second turn comes: this timer first
            if how == "abort":
                handle.abort()
            elif how == "abort_all":
                js.abort_all()
            elif how == "outer scope":
                scope.cancel()
            else:
                await js.shutdown()

        tg.start_soon(aborter)
        with scope:
            async with js:
                js.spawn(other)  # takes the turn at 0
                handle = js.spawn(victim)  # its turn comes at 1.0
                outcomes = [o async for o in js]
        assert ran == []
        if how in ("abort", "abort_all"):  # shutdown() takes the outcomes itself
            assert [o.cancelled() for o in outcomes] == [False, True]
        assert handle.aborted or how == "outer scope"
