"""Beyond the contract: shutdown(grace=...), stats() and first_success()."""

from __future__ import annotations

import math

import anyio
import pytest

from anyio_joinset import JoinSet, JoinSetStats, TaskCancelled
from helpers import ExceptionGroup, Gate, fail_with, forever, value_of


async def test_shutdown_grace_lets_tasks_finish_on_their_own() -> None:
    """shutdown(grace=...) waits for tasks that finish within the grace period."""
    gates = [Gate() for _ in range(3)]
    async with JoinSet[object]() as js, anyio.create_task_group() as tg:
        for gate in gates:
            js.spawn(gate.wait)

        async def release_when_waiting() -> None:
            await anyio.wait_all_tasks_blocked()
            for gate in gates:
                gate.release.set()

        tg.start_soon(release_when_waiting)
        await js.shutdown(grace=math.inf)
        assert len(js) == 0
        stats = js.stats()
    assert all(g.finished for g in gates)  # none was aborted
    assert stats.cancelled == 0


async def test_shutdown_grace_then_aborts_the_rest() -> None:
    """After the grace period, the tasks still running are aborted and drained."""
    quick = Gate()
    async with JoinSet[object]() as js:
        js.spawn(quick.wait)
        js.spawn(forever)
        quick.release.set()
        await js.shutdown(grace=0.01)
        assert len(js) == 0
        assert js.stats().cancelled == 1
    assert quick.finished


async def test_shutdown_grace_none_or_zero_aborts_at_once() -> None:
    """grace=None (the default) and grace=0 abort at once, as shutdown() always did."""
    for grace in (None, 0):
        gate = Gate()
        async with JoinSet[object]() as js:
            js.spawn(gate.wait)
            await anyio.wait_all_tasks_blocked()
            await js.shutdown(grace=grace)
            assert len(js) == 0
        assert gate.cleaned_up
        assert not gate.finished


async def test_shutdown_rejects_negative_grace() -> None:
    """A negative grace period is a ValueError naming the fix."""
    async with JoinSet[object]() as js:
        with pytest.raises(
            ValueError,
            match=r"^JoinSet\.shutdown\(\) grace must be None or at least 0 seconds, got -1\.$",
        ):
            await js.shutdown(grace=-1)


async def test_stats_track_every_stage() -> None:
    """stats(): spawned, waiting, running, finished, joined, failed, cancelled."""
    gates = [Gate() for _ in range(3)]
    js = JoinSet[object](limit=2)
    assert js.stats() == JoinSetStats(0, 0, 0, 0, 0, 0, 0)
    async with js:
        for gate in gates:
            js.spawn(gate.wait)
        js.spawn(fail_with, ValueError("x"))
        aborted = js.spawn(value_of, 1)
        await anyio.wait_all_tasks_blocked()
        stats = js.stats()
        assert (stats.spawned, stats.running, stats.waiting) == (5, 2, 3)
        aborted.abort()  # a waiting task: ends at once, cancelled
        gates[0].release.set()
        gates[1].release.set()
        await anyio.wait_all_tasks_blocked()
        # gate 2 and the failing task took the two free slots; the failure finished.
        assert js.stats() == JoinSetStats(
            spawned=5, waiting=0, running=1, finished=4, joined=0, failed=1, cancelled=1
        )
        assert js.try_join_next() is not None
        assert js.stats().joined == 1
        gates[2].release.set()
        await js.shutdown()
        stats = js.stats()
    assert stats == JoinSetStats(
        spawned=5, waiting=0, running=0, finished=0, joined=5, failed=1, cancelled=1
    )
    assert stats.spawned == stats.waiting + stats.running + stats.finished + stats.joined
    assert js.stats() == stats  # after the block, still readable


async def test_stats_without_a_limit_count_every_unfinished_task() -> None:
    """
    stats() without a limit: running is every task not finished yet (S14).

    A set without a limit counts them from its list of tasks, which drops
    finished ones from time to time (here: 100 finish at once); after the
    block nothing is running.
    """
    release = anyio.Event()
    js = JoinSet[object]()
    async with js:
        for i in range(100):
            js.spawn(value_of, i)
        for _ in range(3):
            js.spawn(release.wait)
        await anyio.wait_all_tasks_blocked()
        assert js.stats() == JoinSetStats(
            spawned=103, waiting=0, running=3, finished=100, joined=0, failed=0, cancelled=0
        )
        for _ in range(60):
            await js.join_next()
        release.set()
        await anyio.wait_all_tasks_blocked()
        assert js.stats() == JoinSetStats(
            spawned=103, waiting=0, running=0, finished=43, joined=60, failed=0, cancelled=0
        )
        js.spawn(release.wait)  # aborted by the block's end before its first step
        assert js.stats().running == 1
    after = js.stats()  # the unjoined outcomes were dropped with the block
    assert after == JoinSetStats(
        spawned=104, waiting=0, running=0, finished=0, joined=104, failed=0, cancelled=1
    )
    async with JoinSet[object]() as few:  # fewer finished tasks than a compaction waits for
        for i in range(5):
            few.spawn(value_of, i)
        await anyio.wait_all_tasks_blocked()
        assert few.stats().running == 0
    assert few.stats() == JoinSetStats(
        spawned=5, waiting=0, running=0, finished=0, joined=5, failed=0, cancelled=0
    )


async def test_stats_is_immutable_snapshot() -> None:
    """stats() returns a new immutable snapshot each call."""
    async with JoinSet[object]() as js:
        before = js.stats()
        js.spawn(value_of, 1)
        assert js.stats() != before
        with pytest.raises(AttributeError):
            before.spawned = 3  # type: ignore[misc]


async def test_first_success_returns_the_first_value_and_aborts_the_rest() -> None:
    """first_success: failures before it are skipped, the rest aborted, set emptied."""
    slow = Gate()
    async with JoinSet[object]() as js:
        js.spawn(fail_with, ValueError("first to finish, but failed"))
        js.spawn(value_of, "winner")
        js.spawn(slow.wait, "too slow")
        assert await js.first_success() == "winner"
        assert len(js) == 0
    assert slow.cleaned_up
    assert not slow.finished


async def test_first_success_when_every_task_fails() -> None:
    """first_success raises an ExceptionGroup of every failure, cancellations included."""
    errors = [ValueError("a"), KeyError("b")]
    async with JoinSet[object]() as js:
        for error in errors:
            js.spawn(fail_with, error)
        js.spawn(forever, name="aborted").abort()
        with pytest.raises(ExceptionGroup) as info:
            await js.first_success()
    assert str(info.value).startswith("no task of the JoinSet succeeded")
    got = list(info.value.exceptions)
    assert len(got) == 3
    assert {type(e) for e in got} == {ValueError, KeyError, TaskCancelled}
    assert [e for e in got if not isinstance(e, TaskCancelled)] in (errors, errors[::-1])


async def test_first_success_of_an_empty_set() -> None:
    """first_success of an empty set is a LookupError naming the fix."""
    async with JoinSet[object]() as js:
        with pytest.raises(
            LookupError, match=r"^This JoinSet has no tasks; spawn some before first_success\(\)\.$"
        ):
            await js.first_success()
