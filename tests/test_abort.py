"""S7 abort one, S8 abort all, S9 shutdown, S11 join_all."""

from __future__ import annotations

import logging

import anyio
import pytest

from anyio_joinset import JoinSet, TaskCancelled
from helpers import Gate, fail_with, forever, value_of


async def test_abort_running_task_gives_cancelled_outcome() -> None:
    """S7: aborting a running task cancels it; its outcome is cancelled; cleanup runs."""
    gate = Gate()
    async with JoinSet[object]() as js:
        handle = js.spawn(gate.wait)
        other = js.spawn(value_of, "other")
        await anyio.wait_all_tasks_blocked()
        assert gate.started
        handle.abort()
        outcomes = {o.id: o async for o in js}
    assert outcomes[handle.id].cancelled()
    assert outcomes[other.id].result() == "other"
    assert gate.cleaned_up
    assert not gate.finished
    assert handle.done()


async def test_abort_before_start_never_runs_body() -> None:
    """S7: a task aborted before it started never runs any of its body."""
    gate = Gate()
    async with JoinSet[object]() as js:
        handle = js.spawn(gate.wait)
        handle.abort()
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.cancelled()
    assert not gate.started


async def test_abort_is_idempotent_and_never_waits() -> None:
    """S7: abort can be called many times, is sync, and is not a checkpoint."""
    async with JoinSet[object]() as js:
        handle = js.spawn(forever)
        await anyio.wait_all_tasks_blocked()
        with anyio.CancelScope() as scope:
            scope.cancel()
            handle.abort()
            handle.abort()
        assert not scope.cancelled_caught
        assert len(js) == 1
        assert [o.cancelled() async for o in js] == [True]
        handle.abort()  # after it was joined: still nothing happens


async def test_finished_task_keeps_real_outcome_when_aborted_late() -> None:
    """S7: aborting a task that already finished keeps its real outcome."""
    async with JoinSet[object]() as js:
        ok = js.spawn(value_of, 1)
        bad = js.spawn(fail_with, ValueError("real"))
        await anyio.wait_all_tasks_blocked()
        assert ok.done()
        assert bad.done()
        ok.abort()
        bad.abort()
        js.abort_all()
        outcomes = {o.id: o async for o in js}
    assert outcomes[ok.id].result() == 1
    assert isinstance(outcomes[bad.id].exception(), ValueError)


async def test_task_that_swallows_cancellation_yields_its_value() -> None:
    """S7: a task that catches the cancellation and returns a value yields that value."""

    async def stubborn() -> str:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            return "swallowed"
        return "unreachable"  # pragma: no cover

    async with JoinSet[str]() as js:
        handle = js.spawn(stubborn)
        await anyio.wait_all_tasks_blocked()
        handle.abort()
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.result() == "swallowed"


async def test_task_that_raises_on_cancellation_yields_its_exception() -> None:
    """S7: a task that turns its cancellation into an error yields that error."""

    async def converts() -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            raise LookupError("converted") from None

    async with JoinSet[None]() as js:
        handle = js.spawn(converts)
        await anyio.wait_all_tasks_blocked()
        handle.abort()
        outcome = await js.join_next()
    assert outcome is not None
    assert isinstance(outcome.exception(), LookupError)


async def test_abort_from_inside_the_task() -> None:
    """S7: a task may abort itself; it ends cancelled at its next checkpoint."""
    handles = []

    async def self_abort() -> None:
        handles[0].abort()
        await anyio.lowlevel.checkpoint()

    async with JoinSet[None]() as js:
        handles.append(js.spawn(self_abort))
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.cancelled()


async def test_abort_tasks_like_tokio() -> None:
    """S7 (tokio abort_tasks): abort the odd tasks of 16; 8 cancelled, 8 completed."""
    gates = [Gate() for _ in range(16)]
    async with JoinSet[object]() as js:
        for i, gate in enumerate(gates):
            handle = js.spawn(gate.wait, i)
            if i % 2:
                handle.abort()
        await anyio.wait_all_tasks_blocked()
        for gate in gates:
            gate.release.set()
        cancelled = completed = 0
        async for outcome in js:
            if outcome.cancelled():
                cancelled += 1
            else:
                assert outcome.result() % 2 == 0  # type: ignore[operator]
                completed += 1
    assert (cancelled, completed) == (8, 8)
    assert not any(g.started for i, g in enumerate(gates) if i % 2)


async def test_task_cancelled_by_enclosing_scope_has_cancelled_outcome() -> None:
    """S7: a task cancelled by a scope enclosing the set, not by abort, ends cancelled."""
    outcome = None
    with anyio.CancelScope() as outer:
        async with JoinSet[None]() as js:
            handle = js.spawn(forever)
            with anyio.CancelScope(shield=True):
                await anyio.wait_all_tasks_blocked()
                outer.cancel()
                outcome = await js.join_next()
    assert outcome is not None
    assert outcome.cancelled()
    assert outcome.id == handle.id


async def test_deadline_inside_task_is_the_tasks_own_error() -> None:
    """S6: a TimeoutError from a task's own fail_after is an error value, not a cancel."""

    async def times_out() -> None:
        with anyio.fail_after(0):
            await anyio.sleep_forever()

    async with JoinSet[None]() as js:
        js.spawn(times_out)
        outcome = await js.join_next()
    assert outcome is not None
    assert isinstance(outcome.exception(), TimeoutError)


async def test_abort_all_like_tokio() -> None:
    """S8 (tokio abort_all): 5 pending + 5 finished; abort_all; len stays 10; all come out."""
    async with JoinSet[object]() as js:
        for _ in range(5):
            js.spawn(forever)
        for i in range(5):
            js.spawn(value_of, i)
        await anyio.wait_all_tasks_blocked()
        js.abort_all()
        assert len(js) == 10
        outcomes = [o async for o in js]
        assert len(js) == 0
    assert len(outcomes) == 10
    assert sum(o.cancelled() for o in outcomes) == 5
    assert sorted(o.result() for o in outcomes if not o.cancelled()) == list(range(5))  # type: ignore[type-var]


async def test_abort_all_keeps_body_and_later_tasks_run() -> None:
    """S8: abort_all does not cancel the body; tasks spawned afterwards run normally."""
    gate = Gate()
    async with JoinSet[object]() as js:
        js.spawn(forever)
        js.spawn(gate.wait, "never")
        js.abort_all()
        await anyio.lowlevel.checkpoint()  # the body is not cancelled
        js.spawn(value_of, "after")
        outcomes = [o async for o in js]
    assert not gate.started
    assert [o.result() for o in outcomes if not o.cancelled()] == ["after"]


async def test_shutdown_aborts_drains_and_set_is_reusable() -> None:
    """S9 (tokio spawn_then_shutdown): shutdown aborts all, waits, discards; set reusable."""
    gates = [Gate() for _ in range(8)]
    async with JoinSet[object]() as js:
        for gate in gates:
            js.spawn(gate.wait)
        await anyio.wait_all_tasks_blocked()
        assert js.try_join_next() is None
        await js.shutdown()
        assert len(js) == 0
        assert all(g.cleaned_up and not g.finished for g in gates)
        assert await js.join_next() is None
        js.spawn(value_of, "again")
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == "again"


async def test_shutdown_is_a_checkpoint_when_empty() -> None:
    """S9: shutdown of an empty set is still a checkpoint."""
    async with JoinSet[object]() as js:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await js.shutdown()
        assert scope.cancelled_caught


async def test_shutdown_waits_for_stubborn_tasks() -> None:
    """S9: shutdown waits for tasks that finish their cleanup after the abort."""
    cleaned: list[str] = []

    async def slow_cleanup() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.lowlevel.checkpoint()
                await anyio.lowlevel.checkpoint()
                cleaned.append("done")

    async with JoinSet[None]() as js:
        js.spawn(slow_cleanup)
        await anyio.wait_all_tasks_blocked()
        await js.shutdown()
        assert cleaned == ["done"]


async def test_shutdown_logs_unretrieved_failures(caplog: pytest.LogCaptureFixture) -> None:
    """S9/S13: a failure discarded by shutdown is logged, not silent."""
    error = ValueError("lost")
    async with JoinSet[object]() as js:
        js.spawn(fail_with, error, name="failing")
        await anyio.wait_all_tasks_blocked()
        with caplog.at_level(logging.WARNING, logger="anyio_joinset"):
            await js.shutdown()
    records = [r for r in caplog.records if r.name == "anyio_joinset"]
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert records[0].exc_info[1] is error


async def test_join_all_returns_values_in_completion_order() -> None:
    """S11 (tokio join_all): join_all returns every value, in completion order."""
    gates = [Gate() for _ in range(5)]
    async with JoinSet[object]() as js, anyio.create_task_group() as tg:
        for i, gate in enumerate(gates):
            js.spawn(gate.wait, i)
        result: list[object] = []

        async def run() -> None:
            result.extend(await js.join_all())

        tg.start_soon(run)
        await anyio.wait_all_tasks_blocked()
        for i in (4, 2, 0, 1, 3):
            gates[i].release.set()
            await anyio.wait_all_tasks_blocked()
    assert result == [4, 2, 0, 1, 3]
    assert len(js) == 0


async def test_join_all_empty() -> None:
    """S11: join_all of an empty set returns an empty list."""
    async with JoinSet[int]() as js:
        assert await js.join_all() == []


async def test_join_all_fails_fast_with_the_task_exception() -> None:
    """S11 (tokio task_panics): the first failure aborts the rest and is raised."""
    survivor = Gate()
    error = ValueError("first failure")
    async with JoinSet[object]() as js:
        js.spawn(survivor.wait)
        js.spawn(fail_with, error)
        with pytest.raises(ValueError, match=r"^first failure$") as info:
            await js.join_all()
        assert info.value is error
        assert len(js) == 0
    assert survivor.cleaned_up
    assert not survivor.finished


async def test_join_all_raises_task_cancelled_for_aborted_task() -> None:
    """S11: an aborted task makes join_all raise TaskCancelled."""
    async with JoinSet[object]() as js:
        handle = js.spawn(forever, name="aborted")
        js.spawn(forever)
        handle.abort()
        with pytest.raises(TaskCancelled, match=r"^Task 'aborted' \(id 1\) was cancelled\.$"):
            await js.join_all()
        assert len(js) == 0


async def test_join_all_fail_fast_never_runs_unstarted_bodies() -> None:
    """S7/S11: tasks not started when join_all fails fast never run any of their body."""
    gates = [Gate() for _ in range(3)]
    async with JoinSet[object](limit=1) as js:
        js.spawn(fail_with, ValueError("x"))
        for gate in gates:
            js.spawn(gate.wait)
        with pytest.raises(ValueError, match=r"^x$"):
            await js.join_all()
    # The failure freed the only slot, so the first waiting task may have
    # started before join_all saw it; the others were still waiting.
    assert not gates[1].started
    assert not gates[2].started


async def test_join_all_is_interruptible_without_losing_the_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S11: if join_all is cancelled while draining, the failure is logged, not lost."""
    error = ValueError("while draining")

    async def stubborn() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await release.wait()

    release = anyio.Event()
    with caplog.at_level(logging.WARNING, logger="anyio_joinset"):
        async with JoinSet[object]() as js:
            js.spawn(stubborn)
            js.spawn(fail_with, error)
            with anyio.CancelScope() as scope:

                async def cancel_soon() -> None:
                    await anyio.wait_all_tasks_blocked()
                    scope.cancel()
                    release.set()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_soon)
                    await js.join_all()
            assert scope.cancelled_caught
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert logged == [error]


@pytest.mark.parametrize("limit", [None, 1])
async def test_shutdown_also_aborts_tasks_spawned_while_it_waits(limit: int | None) -> None:
    """S9: a task spawned while shutdown drains (by an unwinding task) is aborted
    before it starts: its body never runs, and shutdown still ends."""
    ran: list[str] = []

    async def late() -> None:
        ran.append("late")  # returns at once: a regression fails, never hangs

    async def spawns_on_the_way_out(js: JoinSet[object]) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            js.spawn(late)
            ran.append("spawned")

    async with JoinSet[object](limit=limit) as js:
        js.spawn(spawns_on_the_way_out, js)
        await anyio.wait_all_tasks_blocked()
        await js.shutdown()
        assert len(js) == 0
        stats = js.stats()
        assert (stats.spawned, stats.cancelled, stats.joined) == (2, 2, 2)
        # Usable again as if new (S9): the next task runs.
        js.spawn(late)
        assert await js.join_next() is not None
    assert ran == ["spawned", "late"]


async def test_shutdown_with_a_concurrent_joiner() -> None:
    """S9/S5: a joiner waiting during shutdown may get an outcome; shutdown still ends."""
    got: list[object] = []
    async with JoinSet[object]() as js, anyio.create_task_group() as tg:
        js.spawn(forever)

        async def joiner() -> None:
            got.append(await js.join_next())

        tg.start_soon(joiner)
        await anyio.wait_all_tasks_blocked()
        await js.shutdown()
        assert len(js) == 0
    assert len(got) == 1
