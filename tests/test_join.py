"""S4 len, S5 join_next, S6 errors are values, S10 try_join_next, S12 iteration."""

from __future__ import annotations

import anyio
import pytest

from anyio_joinset import JoinSet, Outcome, TaskCancelled
from helpers import BaseExceptionGroup, ExceptionGroup, Gate, fail_with, value_of


async def release_in_order(gates: list[Gate]) -> None:
    """Release each gate and let its task finish before the next (completion order)."""
    for gate in gates:
        gate.release.set()
        await anyio.wait_all_tasks_blocked()


async def test_outcomes_come_in_completion_order() -> None:
    """S5: join_next returns outcomes in completion order, not spawn order."""
    gates = [Gate() for _ in range(5)]
    order = [3, 0, 4, 1, 2]
    async with JoinSet[object]() as js:
        for i, gate in enumerate(gates):
            js.spawn(gate.wait, i)
        await anyio.wait_all_tasks_blocked()
        await release_in_order([gates[i] for i in order])
        got = [o.result() for o in [await js.join_next() for _ in range(5)] if o]
    assert got == order


async def test_join_next_on_empty_set_returns_none_at_once() -> None:
    """S5: an empty set returns None without waiting (before, during, after use)."""
    js = JoinSet[int]()
    assert await js.join_next() is None
    async with js:
        assert await js.join_next() is None
        js.spawn(value_of, 1)  # type: ignore[arg-type]
        assert await js.join_next() is not None
        assert await js.join_next() is None
    assert await js.join_next() is None


async def test_join_next_is_a_checkpoint_even_when_empty() -> None:
    """S5: join_next lets other tasks run and raises a pending cancellation, set empty."""
    async with JoinSet[int]() as js:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await js.join_next()
            pytest.fail("join_next did not raise the cancellation")  # pragma: no cover
        assert scope.cancelled_caught


async def test_join_next_is_a_checkpoint_when_an_outcome_is_ready() -> None:
    """S5: a ready outcome stays in the set if the caller is already cancelled."""
    async with JoinSet[object]() as js:
        js.spawn(value_of, 1)
        await anyio.wait_all_tasks_blocked()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await js.join_next()
        assert scope.cancelled_caught
        assert len(js) == 1
        outcome = js.try_join_next()
        assert outcome is not None
        assert outcome.result() == 1


async def test_draining_ready_outcomes_lets_other_tasks_run() -> None:
    """S5 (tokio join_set_coop): draining many ready outcomes yields to other tasks."""
    ticks = 0
    stop = anyio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with JoinSet[object]() as js, anyio.create_task_group() as tg:
        for i in range(200):
            js.spawn(value_of, i)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(ticker)
        count = 0
        while await js.join_next() is not None:
            count += 1
        stop.set()
    assert count == 200
    assert ticks >= 100


async def test_join_next_waits_for_a_task() -> None:
    """S5: join_next waits until a task finishes."""
    gate = Gate()
    async with JoinSet[object]() as js, anyio.create_task_group() as tg:
        js.spawn(gate.wait, "late")
        got: list[Outcome[object] | None] = []

        async def joiner() -> None:
            got.append(await js.join_next())

        tg.start_soon(joiner)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        gate.release.set()
    assert got[0] is not None
    assert got[0].result() == "late"


async def test_join_next_is_cancel_safe() -> None:
    """S5: cancelling a waiting join_next loses nothing; a later call returns it."""
    gate = Gate()
    async with JoinSet[object]() as js:
        js.spawn(gate.wait, "kept")
        await anyio.wait_all_tasks_blocked()
        with anyio.move_on_after(0):
            await js.join_next()
        assert len(js) == 1

        async with anyio.create_task_group() as tg:

            async def cancel_waiting_joiner() -> None:
                with anyio.CancelScope() as scope:
                    tg.start_soon(_cancel_after_blocked, scope)
                    await js.join_next()

            tg.start_soon(cancel_waiting_joiner)
        gate.release.set()
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.result() == "kept"


async def _cancel_after_blocked(scope: anyio.CancelScope) -> None:
    await anyio.wait_all_tasks_blocked()
    scope.cancel()


async def test_join_next_cancelled_in_same_step_as_delivery_keeps_outcome() -> None:
    """S5: a joiner cancelled right as its outcome arrives loses nothing."""
    gate = Gate()
    got: list[Outcome[object] | None] = []
    async with JoinSet[object]() as js:
        js.spawn(gate.wait, "raced")
        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()

            async def joiner() -> None:
                with scope:
                    got.append(await js.join_next())

            tg.start_soon(joiner)
            await anyio.wait_all_tasks_blocked()
            # The task finishes (delivering its outcome) and the joiner is
            # cancelled before either gets to run again.
            gate.release.set()
            await anyio.wait_all_tasks_blocked()
            scope.cancel()
        remaining = [o async for o in js]
    delivered = got + remaining
    assert [o.result() for o in delivered if o is not None] == ["raced"]


async def test_concurrent_joiners_each_get_distinct_outcomes_then_none() -> None:
    """S5: several join_next callers get distinct outcomes; the extra ones get None."""
    gates = [Gate() for _ in range(3)]
    got: list[Outcome[object] | None] = []
    async with JoinSet[object]() as js:
        for i, gate in enumerate(gates):
            js.spawn(gate.wait, i)
        async with anyio.create_task_group() as tg:

            async def joiner() -> None:
                got.append(await js.join_next())

            for _ in range(5):
                tg.start_soon(joiner)
            await anyio.wait_all_tasks_blocked()
            for gate in gates:
                gate.release.set()
    values = sorted(o.result() for o in got if o is not None)  # type: ignore[type-var]
    assert values == [0, 1, 2]
    assert got.count(None) == 2
    assert len(js) == 0


async def test_waiting_joiners_get_none_when_block_is_left() -> None:
    """S5/S13: join_next callers waiting in other tasks return when the block ends."""
    got: list[Outcome[object] | None] = []
    async with anyio.create_task_group() as tg, JoinSet[object]() as js:
        js.spawn(anyio.sleep_forever)

        async def joiner() -> None:
            got.append(await js.join_next())

        tg.start_soon(joiner)
        tg.start_soon(joiner)
        await anyio.wait_all_tasks_blocked()
    # One of them may receive the aborted task's outcome; the other gets None.
    assert None in got
    assert len(got) == 2
    assert all(o is None or o.cancelled() for o in got)


async def test_errors_are_values_and_do_not_cancel_siblings() -> None:
    """S6: a failing task does not cancel its siblings, the body or the task group."""
    sibling = Gate()
    error = ValueError("boom")
    async with JoinSet[object]() as js:
        js.spawn(sibling.wait, "ok")
        js.spawn(fail_with, error)
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.exception() is error
        with pytest.raises(ValueError, match=r"^boom$") as info:
            outcome.result()
        assert info.value is error
        assert not outcome.cancelled()
        await anyio.lowlevel.checkpoint()  # the body is not cancelled
        assert sibling.started
        assert not sibling.cleaned_up
        sibling.release.set()
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.result() == "ok"


async def test_exception_group_from_a_task_is_a_value() -> None:
    """S6: an ExceptionGroup raised by a task comes back as its outcome."""
    group = ExceptionGroup("many", [ValueError(1), KeyError(2)])
    async with JoinSet[object]() as js:
        js.spawn(fail_with, group)
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.exception() is group


class CustomBaseError(BaseException):
    """A BaseException that is neither an Exception nor a cancellation."""


@pytest.mark.parametrize("exc_type", [CustomBaseError, GeneratorExit])
async def test_base_exceptions_propagate(exc_type: type[BaseException]) -> None:
    """S6: BaseExceptions that are not cancellations propagate as out of a task group."""
    sibling = Gate()
    with pytest.raises(BaseExceptionGroup) as info:
        async with JoinSet[object]() as js:
            js.spawn(fail_with, exc_type())
            js.spawn(sibling.wait)
            await anyio.sleep_forever()
    assert info.group_contains(exc_type)
    assert sibling.cleaned_up


async def _interrupted_set(exc_type: type[BaseException]) -> None:
    async with JoinSet[object]() as js:
        js.spawn(fail_with, exc_type())
        js.spawn(anyio.sleep_forever)
        await anyio.sleep_forever()


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_keyboard_interrupt_and_system_exit_propagate(
    backend: str, exc_type: type[BaseException]
) -> None:
    """S6: KeyboardInterrupt and SystemExit in a task end the run, uncaptured."""
    with pytest.raises((exc_type, BaseExceptionGroup)) as info:
        anyio.run(_interrupted_set, exc_type, backend=backend)
    exc = info.value
    if isinstance(exc, BaseExceptionGroup):
        assert exc.split(exc_type)[0] is not None


async def test_success_outcome_api() -> None:
    """Outcome: result, exception, cancelled, id and name of a successful task."""
    async with JoinSet[int]() as js:
        handle = js.spawn(value_of, 5, name="five")  # type: ignore[arg-type]
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.result() == 5
    assert outcome.exception() is None
    assert not outcome.cancelled()
    assert (outcome.id, outcome.name) == (handle.id, "five")
    assert repr(outcome) == "<Outcome id=1 name='five' value=5>"


async def test_outcome_is_immutable() -> None:
    """Outcome: public attributes cannot be rebound."""
    async with JoinSet[object]() as js:
        js.spawn(value_of, 1)
        outcome = await js.join_next()
    assert outcome is not None
    with pytest.raises(AttributeError):
        outcome.id = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        outcome.extra = 3  # type: ignore[attr-defined]


async def test_cancelled_outcome_raises_task_cancelled() -> None:
    """Outcome: result() and exception() raise TaskCancelled for a cancelled task."""
    async with JoinSet[object]() as js:
        handle = js.spawn(anyio.sleep_forever, name="sleeper")
        handle.abort()
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.cancelled()
    with pytest.raises(TaskCancelled, match=r"^Task 'sleeper' \(id 1\) was cancelled\.$"):
        outcome.result()
    with pytest.raises(TaskCancelled):
        outcome.exception()
    assert repr(outcome) == "<Outcome id=1 name='sleeper' cancelled>"
    assert issubclass(TaskCancelled, Exception)
    assert not issubclass(TaskCancelled, anyio.get_cancelled_exc_class())


async def test_outcome_repr_survives_broken_exception_repr() -> None:
    """Outcome: repr() never raises, even if the task's exception repr is broken."""

    class BrokenError(Exception):
        def __repr__(self) -> str:
            raise RuntimeError

        def __str__(self) -> str:
            raise RuntimeError

    async with JoinSet[object]() as js:
        js.spawn(fail_with, BrokenError())
        outcome = await js.join_next()
    assert outcome is not None
    assert (
        repr(outcome)
        == "<Outcome id=1 name='fail_with' exception=<BrokenError object (repr failed)>>"
    )


async def test_len_counts_unjoined_tasks() -> None:
    """S4: len counts running, finished-not-joined; goes down only on hand-out."""
    gate = Gate()
    async with JoinSet[object]() as js:
        assert len(js) == 0
        js.spawn(gate.wait)
        js.spawn(value_of, 1)
        assert len(js) == 2
        await anyio.wait_all_tasks_blocked()
        assert len(js) == 2  # one finished, not joined
        js.abort_all()
        assert len(js) == 2  # abort_all does not change len
        await anyio.wait_all_tasks_blocked()
        assert len(js) == 2
        assert js.try_join_next() is not None
        assert len(js) == 1
        assert await js.join_next() is not None
        assert len(js) == 0


async def test_alternating_spawn_and_join() -> None:
    """S4 (tokio alternating): len stays exact while spawning and joining alternately."""
    async with JoinSet[object]() as js:
        js.spawn(value_of, None)
        js.spawn(value_of, None)
        assert len(js) == 2
        for _ in range(16):
            assert await js.join_next() is not None
            assert len(js) == 1
            js.spawn(value_of, None)
            assert len(js) == 2


async def test_try_join_next_never_waits_and_is_not_a_checkpoint() -> None:
    """S10: try_join_next returns None when nothing is ready, without yielding."""
    gate = Gate()
    async with JoinSet[object]() as js:
        assert js.try_join_next() is None  # empty
        js.spawn(gate.wait, 1)
        with anyio.CancelScope() as scope:
            scope.cancel()
            assert js.try_join_next() is None  # not a checkpoint: no cancellation
        assert not scope.cancelled_caught
        assert not gate.started  # and no other task ran
        await anyio.wait_all_tasks_blocked()
        assert js.try_join_next() is None  # running, nothing ready
        gate.release.set()
        await anyio.wait_all_tasks_blocked()
        outcome = js.try_join_next()
        assert outcome is not None
        assert outcome.result() == 1
        assert js.try_join_next() is None


async def test_try_join_next_many() -> None:
    """S10 (tokio try_join_next): 1000 blocked tasks; none ready, then all of them."""
    release = anyio.Event()
    async with JoinSet[None]() as js:
        for _ in range(1000):
            js.spawn(release.wait)
        await anyio.wait_all_tasks_blocked()
        assert js.try_join_next() is None
        release.set()
        await anyio.wait_all_tasks_blocked()
        count = 0
        while (outcome := js.try_join_next()) is not None:
            outcome.result()
            count += 1
    assert count == 1000


async def test_try_join_next_does_not_starve_a_waiting_joiner() -> None:
    """S10: an outcome promised to a waiting join_next is never taken by try_join_next."""
    gate = Gate()
    got: list[Outcome[object] | None] = []
    async with JoinSet[object]() as js:
        js.spawn(gate.wait, "mine")
        async with anyio.create_task_group() as tg:

            async def joiner() -> None:
                got.append(await js.join_next())

            tg.start_soon(joiner)
            await anyio.wait_all_tasks_blocked()
            gate.release.set()
            await anyio.wait_all_tasks_blocked()
            assert js.try_join_next() is None or got  # either it is the joiner's...
        assert got[0] is not None
        assert got[0].result() == "mine"


async def test_iteration_yields_outcomes_until_empty() -> None:
    """S12: async for yields every outcome, failures included, and never raises them."""
    async with JoinSet[object]() as js:
        js.spawn(value_of, 1)
        js.spawn(fail_with, ValueError("x"))
        js.spawn(value_of, 2)
        outcomes = [o async for o in js]
        assert len(js) == 0
        assert [o async for o in js] == []
    assert sorted(o.id for o in outcomes) == [1, 2, 3]
    assert sum(o.exception() is not None for o in outcomes) == 1


async def test_with_sleep_like_tokio() -> None:
    """S5 (tokio test_with_sleep): spawn 10, see all 10, twice over, None when empty."""
    for _round in range(2):
        async with JoinSet[int]() as js:
            gates = [Gate() for _ in range(10)]
            for i, gate in enumerate(gates):
                js.spawn(gate.wait, i)  # type: ignore[arg-type]
                assert len(js) == i + 1
            await anyio.wait_all_tasks_blocked()
            await release_in_order(gates)
            seen = [o.result() async for o in js]
            assert seen == list(range(10))
            assert await js.join_next() is None


async def test_woken_joiner_cancelled_before_it_runs_passes_the_outcome_on() -> None:
    """S5/S10: a joiner cancelled in the same step its outcome arrives takes nothing;
    the outcome goes to the other waiting joiner, and try_join_next never sees a
    phantom outcome."""
    gate = Gate()
    got: list[object] = []
    async with JoinSet[object]() as js, anyio.create_task_group() as tg:
        js.spawn(gate.wait, "real")
        scope = anyio.CancelScope()

        async def cancelled_joiner() -> None:
            with scope:
                got.append(await js.join_next())

        async def joiner() -> None:
            got.append(await js.join_next())

        tg.start_soon(cancelled_joiner)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(joiner)
        await anyio.wait_all_tasks_blocked()
        gate.release.set()  # the first joiner is woken ...
        scope.cancel()  # ... and cancelled before it can run
        assert js.try_join_next() is None  # not finished yet: nothing to take
        await anyio.wait_all_tasks_blocked()
        assert len(got) == 1
        outcome = got[0]
        assert isinstance(outcome, Outcome)
        assert outcome.result() == "real"
        assert len(js) == 0
        assert js.try_join_next() is None


async def test_joiner_waiting_when_the_block_ends_gets_none() -> None:
    """S4/S5/S13: a join_next still waiting when the block ends returns by itself:
    the aborted task's outcome if it took it while the block unwound, else None
    (discarded); len stays 0 afterwards either way."""
    gate = Gate()
    got: list[object] = []
    async with anyio.create_task_group() as tg:
        async with JoinSet[object]() as js:
            js.spawn(gate.wait, "late")

            async def joiner() -> None:
                got.append(await js.join_next())

            tg.start_soon(joiner)
            await anyio.wait_all_tasks_blocked()
        await anyio.wait_all_tasks_blocked()
        assert len(got) == 1  # the joiner ended by itself
        assert got[0] is None or (isinstance(got[0], Outcome) and got[0].cancelled())
        assert len(js) == 0
        assert js.stats().finished == 0
        assert js.try_join_next() is None


async def test_failed_task_start_leaves_no_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    """S3: if the backend refuses to start a task, spawn raises, len is unchanged and
    the coroutine is closed (no 'never awaited' warning)."""
    async with JoinSet[object]() as js:

        def refuse(coro: object, **_options: object) -> None:
            coro.close()  # type: ignore[attr-defined]
            msg = "refused"
            raise RuntimeError(msg)

        monkeypatch.setattr(js._tg, "create_task", refuse)
        with pytest.raises(RuntimeError, match=r"^refused$"):
            js.spawn(value_of, 1)
        assert len(js) == 0
        assert js._running == 0
        monkeypatch.undo()
        js.spawn(value_of, 2)
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == 2


async def test_joiner_waiting_when_a_task_tears_the_set_down_gets_none() -> None:
    """S6/S13: if a BaseException tears the set down, a waiting join_next returns None."""
    got: list[object] = ["not yet"]
    with pytest.raises(BaseExceptionGroup):
        async with anyio.create_task_group() as tg, JoinSet[object]() as js:
            gate = Gate()

            async def joiner() -> None:
                got[0] = await js.join_next()

            tg.start_soon(joiner)
            js.spawn(gate.wait)
            await anyio.wait_all_tasks_blocked()
            js.spawn(fail_with, CustomBaseError())
            await anyio.sleep_forever()
    assert got[0] is None or (isinstance(got[0], Outcome) and got[0].cancelled())
