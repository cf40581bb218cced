"""S14 limit and backpressure."""

from __future__ import annotations

import contextvars

import anyio
import pytest

from anyio_joinset import JoinSet
from helpers import Gate, value_of

tag: contextvars.ContextVar[str] = contextvars.ContextVar("tag", default="unset")


@pytest.mark.parametrize("bad", [0, -1])
def test_limit_below_one_raises(bad: int) -> None:
    """S14: an integer limit below 1 raises ValueError at construction."""
    with pytest.raises(
        ValueError,
        match=rf"^JoinSet limit must be at least 1, got {bad}; use limit=None for no limit\.$",
    ):
        JoinSet[int](limit=bad)


@pytest.mark.parametrize("bad", [1.5, "2", True])
def test_limit_of_wrong_type_raises(bad: object) -> None:
    """S14: a limit that is not an int raises TypeError at construction."""
    with pytest.raises(TypeError, match=r"^JoinSet limit must be an int or None, not \w+\.$"):
        JoinSet[int](limit=bad)  # type: ignore[arg-type]


async def test_limit_caps_concurrency_and_starts_in_spawn_order() -> None:
    """S14: at most n tasks run; waiting tasks start in spawn order as slots free."""
    running = 0
    peak = 0
    started: list[int] = []
    gates = [Gate() for _ in range(6)]

    async def work(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        started.append(i)
        await gates[i].wait()
        running -= 1
        return i

    async with JoinSet[int](limit=2) as js:
        for i in range(6):
            js.spawn(work, i)
        assert len(js) == 6
        await anyio.wait_all_tasks_blocked()
        assert sorted(started) == [0, 1]
        for i in (1, 0, 2, 3, 4, 5):
            gates[i].release.set()
            await anyio.wait_all_tasks_blocked()
        values = [o.result() async for o in js]
    assert peak == 2
    assert started[:2] in ([0, 1], [1, 0])
    assert started[2:] == [2, 3, 4, 5]
    assert values == [1, 0, 2, 3, 4, 5]
    assert js.limit == 2


async def test_waiting_task_can_be_aborted_and_never_runs() -> None:
    """S14: a waiting task counts in len, can be aborted, then never runs."""
    blocker = Gate()
    waiting = Gate()
    async with JoinSet[object](limit=1) as js:
        js.spawn(blocker.wait, "blocker")
        handle = js.spawn(waiting.wait, "waiting")
        assert len(js) == 2
        handle.abort()
        assert handle.done()  # ended at once, without running
        assert len(js) == 2
        outcome = js.try_join_next()
        assert outcome is not None
        assert outcome.cancelled()
        assert outcome.id == handle.id
        blocker.release.set()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == "blocker"
    assert not waiting.started


async def test_abort_all_ends_waiting_tasks_without_running_them() -> None:
    """S14/S8: abort_all ends waiting tasks without running them; later spawns run."""
    gates = [Gate() for _ in range(4)]
    async with JoinSet[object](limit=1) as js:
        for gate in gates:
            js.spawn(gate.wait)
        await anyio.wait_all_tasks_blocked()
        js.abort_all()
        outcomes = [o async for o in js]
        assert all(o.cancelled() for o in outcomes)
        assert [o.id for o in outcomes[:3]] == [2, 3, 4]  # the waiting ones, at once
        js.spawn(value_of, "later")
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == "later"
    assert gates[0].started
    assert not any(g.started for g in gates[1:])


async def test_waiting_task_runs_in_context_of_its_spawn_call() -> None:
    """S14/S2: a task that waited for a slot runs in a copy of its spawn context."""
    gate = Gate()

    async def read() -> str:
        return tag.get()

    async with JoinSet[object](limit=1) as js:
        js.spawn(gate.wait, "first")
        tag.set("spawn-a")
        js.spawn(read)
        tag.set("spawn-b")
        js.spawn(read)
        tag.set("later")
        gate.release.set()
        values = [o.result() async for o in js]
    assert values == ["first", "spawn-a", "spawn-b"]


async def test_wait_for_capacity_without_limit_is_immediate_checkpoint() -> None:
    """S14: without a limit, wait_for_capacity returns at once, but is a checkpoint."""
    async with JoinSet[object]() as js:
        for i in range(10):
            js.spawn(value_of, i)
        await js.wait_for_capacity()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await js.wait_for_capacity()
        assert scope.cancelled_caught


async def test_wait_for_capacity_blocks_until_a_slot_frees() -> None:
    """S14: wait_for_capacity waits while n tasks are running or waiting."""
    gates = [Gate() for _ in range(3)]
    passed: list[str] = []
    async with JoinSet[object](limit=2) as js, anyio.create_task_group() as tg:
        await js.wait_for_capacity()
        js.spawn(gates[0].wait)
        await js.wait_for_capacity()
        js.spawn(gates[1].wait)
        js.spawn(gates[2].wait)  # spawning past the limit is allowed: it waits

        async def producer() -> None:
            await js.wait_for_capacity()
            passed.append("capacity")

        tg.start_soon(producer)
        await anyio.wait_all_tasks_blocked()
        assert passed == []
        gates[0].release.set()  # 1 running + 1 waiting -> still 2
        await anyio.wait_all_tasks_blocked()
        assert passed == []
        gates[1].release.set()  # now only 1 running
        await anyio.wait_all_tasks_blocked()
        assert passed == ["capacity"]
        gates[2].release.set()


async def test_backpressure_keeps_at_most_n_tasks() -> None:
    """S14: a producer awaiting wait_for_capacity never has more than n unfinished tasks."""
    peak = 0
    limit = 3

    async def work(i: int) -> int:
        await anyio.lowlevel.checkpoint()
        return i

    async with JoinSet[int](limit=limit) as js, anyio.create_task_group() as tg:

        async def consumer() -> None:
            async for outcome in js:
                outcome.result()

        for i in range(100):
            await js.wait_for_capacity()
            js.spawn(work, i)
            stats = js.stats()
            unfinished = stats.running + stats.waiting
            peak = max(peak, unfinished)
            if i == 0:
                tg.start_soon(consumer)
    assert peak <= limit


async def test_capacity_waiters_are_woken_when_the_block_ends() -> None:
    """S14: a producer waiting for capacity is released when the set closes."""
    returned: list[str] = []
    async with anyio.create_task_group() as tg, JoinSet[object](limit=1) as js:
        js.spawn(anyio.sleep_forever)

        async def producer() -> None:
            await js.wait_for_capacity()
            returned.append("released")

        tg.start_soon(producer)
        await anyio.wait_all_tasks_blocked()
    assert returned == ["released"]


async def test_several_producers_share_one_capacity_wait() -> None:
    """S14: several producers waiting for capacity are all released when a slot frees."""
    gate = Gate()
    released: list[int] = []
    async with JoinSet[object](limit=1) as js, anyio.create_task_group() as tg:
        js.spawn(gate.wait)

        async def producer(i: int) -> None:
            await js.wait_for_capacity()
            released.append(i)

        tg.start_soon(producer, 1)
        tg.start_soon(producer, 2)
        await anyio.wait_all_tasks_blocked()
        assert released == []
        gate.release.set()
    assert sorted(released) == [1, 2]
