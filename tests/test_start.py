"""Long-lived sets (API.md S21-S23): start(), follow(), detach, handle.wait() and state."""

from __future__ import annotations

import gc
import logging
import weakref
from typing import Any

import anyio
import pytest
from anyio.abc import TaskStatus

from anyio_joinset import Instrument, JoinHandle, JoinMap, JoinSet, TaskCancelled, TaskState
from helpers import fail_with, forever, value_of


async def serve(
    port: int, release: anyio.Event, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED
) -> str:
    """Say ready with ``port``, then wait for ``release``."""
    await anyio.lowlevel.checkpoint()
    task_status.started(port)
    await release.wait()
    return f"served {port}"


async def fail_before_ready(
    error: Exception,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,  # noqa: ARG001
) -> None:
    """Fail before calling started()."""
    await anyio.lowlevel.checkpoint()
    raise error


async def never_ready(
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,  # noqa: ARG001
) -> str:
    """Return without calling started()."""
    await anyio.lowlevel.checkpoint()
    return "done"


async def wait_forever_unready(
    started: anyio.Event,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,  # noqa: ARG001
) -> None:
    """Never ready: wait until aborted."""
    started.set()
    await anyio.sleep_forever()


async def test_start_returns_the_started_value_and_the_task_joins_the_set() -> None:
    """S21: start() returns started()'s value; the outcome then comes through join_next once."""
    release = anyio.Event()
    async with JoinSet[str]() as js:
        port = await js.start(serve, 8080, release)
        assert port == 8080
        assert len(js) == 1
        release.set()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == "served 8080"
        assert await js.join_next() is None


async def test_a_task_being_started_is_not_in_the_set_yet() -> None:
    """S21: until started(), the task is not in len and no join_next can take its outcome."""
    got: list[object] = []
    started = anyio.Event()
    async with JoinSet[None]() as js, anyio.create_task_group() as tg:

        async def starter() -> None:
            with pytest.raises(TaskCancelled):
                await js.start(wait_forever_unready, started)

        tg.start_soon(starter)
        await started.wait()
        assert len(js) == 0
        got.append(await js.join_next())  # an empty set: None at once (S5)
        assert js.stats().running == 1
        js.abort_all()
    assert got == [None]
    assert len(js) == 0


async def test_a_failure_before_started_is_raised_by_start_only() -> None:
    """S21: the task's own exception comes out of start(); nothing comes through join_next."""
    error = ValueError("could not bind")
    async with JoinSet[None]() as js:
        with pytest.raises(ValueError, match=r"^could not bind$") as caught:
            await js.start(fail_before_ready, error)
        assert caught.value is error
        assert len(js) == 0
        assert await js.join_next() is None
        assert js.stats().joined == 1


async def test_returning_without_started_is_a_runtime_error() -> None:
    """S21: a task that ends without started() makes start() raise RuntimeError, as AnyIO."""
    async with JoinSet[str]() as js:
        with pytest.raises(
            RuntimeError, match=r"^Task 'never_ready' \(id 1\) ended without calling task_status"
        ):
            await js.start(never_ready)
        assert await js.join_next() is None


async def test_start_cancelled_while_waiting_aborts_the_task() -> None:
    """S21: a cancelled start() aborts its task, which never joins the set; nothing leaks."""
    started = anyio.Event()
    async with JoinSet[None]() as js:
        with anyio.CancelScope() as scope:

            async def cancel_once_running() -> None:
                await started.wait()
                scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_once_running)
                await js.start(wait_forever_unready, started, return_handle=True)
        assert scope.cancelled_caught
        await anyio.wait_all_tasks_blocked()
        stats = js.stats()
        assert (len(js), stats.running, stats.cancelled) == (0, 0, 1)
        assert await js.join_next() is None


async def test_start_waits_for_a_slot_under_limit() -> None:
    """S21/S14: under limit, start() waits until its task gets a slot and says ready."""
    release, gate = anyio.Event(), anyio.Event()
    order: list[str] = []
    async with JoinSet[object](limit=1) as js, anyio.create_task_group() as tg:
        js.spawn(gate.wait)

        async def starter() -> None:
            order.append(f"ready on {await js.start(serve, 1, release)}")

        tg.start_soon(starter)
        await anyio.wait_all_tasks_blocked()
        assert order == []
        assert js.stats().waiting == 1
        order.append("slot freed")
        gate.set()
        await anyio.wait_all_tasks_blocked()
        assert order == ["slot freed", "ready on 1"]
        release.set()
        assert sorted([str(o.result()) async for o in js]) == ["None", "served 1"]


async def test_return_handle_gives_the_start_value() -> None:
    """S21/S23: start(return_handle=True) returns the handle; start_value holds the value."""
    release = anyio.Event()
    async with JoinSet[str]() as js:
        handle = await js.start(serve, 9, release, return_handle=True)
        assert handle.start_value == 9
        assert handle.state is TaskState.RUNNING
        plain = js.spawn(value_of, "x")
        with pytest.raises(RuntimeError, match=r"^Task 'value_of' \(id 2\) has no start value"):
            _ = plain.start_value
        release.set()
        await js.shutdown()


async def test_started_twice_is_an_error() -> None:
    """S21: calling started() twice raises RuntimeError in the task, as AnyIO does."""

    async def twice(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        task_status.started()

    async with JoinSet[None]() as js:
        await js.start(twice)
        outcome = await js.join_next()
        assert outcome is not None
        exc = outcome.exception()
        assert isinstance(exc, RuntimeError)
        assert str(exc) == "called 'started' twice on the same task status"


async def test_joinmap_start_replaces_the_old_task_only_when_ready() -> None:
    """S21/S16: JoinMap.start(key) keeps the key's old task until the new one is ready."""
    old_release, new_release = anyio.Event(), anyio.Event()
    async with JoinMap[str, str]() as jm:
        old = await jm.start("web", serve, 1, old_release, return_handle=True)
        with pytest.raises(ValueError, match=r"^boom$"):
            await jm.start("web", fail_before_ready, ValueError("boom"))
        assert not old.aborted
        assert list(jm.keys()) == ["web"]
        assert await jm.start("web", serve, 2, new_release) == 2
        assert old.aborted
        new_release.set()
        pairs = [(key, outcome.result()) async for key, outcome in jm]
    assert pairs == [("web", "served 2")]


async def test_follow_waits_on_an_empty_set_and_ends_when_the_block_is_left() -> None:
    """S22: a follower started before any task takes every outcome and ends by itself."""
    seen: list[object] = []
    ended = anyio.Event()
    # The follower's task group encloses the set: the block's end ends the follower.
    async with anyio.create_task_group() as tg:  # noqa: SIM117
        async with JoinSet[object]() as js:

            async def reaper() -> None:
                async for outcome in js.follow():
                    seen.append(outcome.result())  # noqa: PERF401 - seen as they come
                ended.set()

            tg.start_soon(reaper)
            await anyio.wait_all_tasks_blocked()
            assert seen == []  # still following an empty set
            for i in range(3):
                js.spawn(value_of, i)
                await anyio.wait_all_tasks_blocked()
            assert sorted(seen) == [0, 1, 2]
            assert not ended.is_set()
    assert ended.is_set()  # ended by itself, not cancelled


async def test_follow_is_cancel_safe() -> None:
    """S22/S5: cancelling a follower loses no outcome."""
    async with JoinSet[object]() as js:
        with anyio.move_on_after(0):
            async for _ in js.follow():
                pytest.fail("nothing to take")
        js.spawn(value_of, 1)
        await anyio.wait_all_tasks_blocked()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == 1


async def test_detach_keeps_the_task_running_without_its_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S22: a detached task leaves len at once; its failure is logged, not kept."""
    release = anyio.Event()
    error = ValueError("nobody joins me")

    async def fail_later() -> None:
        await release.wait()
        raise error

    with caplog.at_level(logging.WARNING, logger="anyio_joinset"):
        async with JoinSet[None]() as js:
            handle = js.spawn(fail_later)
            handle.detach()
            assert len(js) == 0
            assert await js.join_next() is None
            release.set()
            await handle.wait()
            assert handle.state is TaskState.DETACHED
            assert js.stats().failed == 1
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert logged == [error]


async def test_detach_all_empties_the_set_and_block_exit_still_aborts() -> None:
    """S22: detach_all drops ready outcomes, len is 0, and leaving the block aborts the rest."""
    async with JoinSet[object]() as js:
        done = js.spawn(value_of, 1)
        running = js.spawn(forever)
        await anyio.wait_all_tasks_blocked()
        js.detach_all()
        assert len(js) == 0
        assert done.state is TaskState.DETACHED
        assert js.try_join_next() is None
    assert running.done()
    assert running.state is TaskState.DETACHED


async def test_many_detached_tasks_keep_memory_flat() -> None:
    """S22: fire-and-forget tasks leave nothing behind: outcomes are freed as they end."""
    refs: list[weakref.ref[Any]] = []

    class Payload:
        pass

    async def work() -> Payload:
        await anyio.lowlevel.checkpoint()
        payload = Payload()
        refs.append(weakref.ref(payload))
        return payload

    async with JoinSet[Payload](limit=10) as js:
        for _ in range(200):
            await js.wait_for_capacity()
            js.spawn(work).detach()
        await anyio.wait_all_tasks_blocked()
        assert len(js) == 0
        assert js.stats().finished == 0
        gc.collect()
        assert all(ref() is None for ref in refs)


async def test_wait_returns_when_the_task_ends_and_leaves_its_outcome() -> None:
    """S23: handle.wait() waits for the end and does not take the outcome."""
    release = anyio.Event()
    order: list[str] = []
    async with JoinSet[str]() as js, anyio.create_task_group() as tg:
        handle = js.spawn(serve, 3, release)

        async def waiter() -> None:
            await handle.wait()
            order.append("waited")

        tg.start_soon(waiter)
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert order == []
        assert handle.state is TaskState.RUNNING
        release.set()
        await anyio.wait_all_tasks_blocked()
        assert order == ["waited", "waited"]
        assert handle.state is TaskState.FINISHED
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == "served 3"
        assert handle.state is TaskState.HANDED_OUT
        await handle.wait()  # at once now


async def test_state_follows_a_waiting_and_a_rate_limited_task() -> None:
    """S23: WAITING under limit, RATE_TURN under rate, aborted flagged while unwinding."""
    async with JoinSet[object](limit=1) as js:
        first = js.spawn(forever)
        second = js.spawn(forever)
        assert second.state is TaskState.WAITING
        second.abort()
        assert second.aborted
        assert second.state is TaskState.FINISHED
        first.abort()
    async with JoinSet[object](rate=(1, 3600)) as js:
        js.spawn(value_of, 1)
        await anyio.wait_all_tasks_blocked()  # it took the turn (Trio may start later ones first)
        late = js.spawn(value_of, 2)
        await anyio.wait_all_tasks_blocked()
        assert late.state is TaskState.RATE_TURN
        late.abort()
        await late.wait()
        assert late.state is TaskState.FINISHED


async def test_state_inside_the_spawn_hook_agrees_with_a_snapshot() -> None:
    """S23/S28: seen from task_spawned, a task about to run is RUNNING, one about
    to join the limit's queue WAITING, as the snapshot reads them."""
    seen: list[tuple[TaskState, str]] = []

    class Look(Instrument):
        def task_spawned(self, joinset: Any, handle: JoinHandle[Any]) -> None:
            (task,) = [t for t in joinset.snapshot().tasks if t.id == handle.id]
            seen.append((handle.state, task.state))

    async with JoinSet[object]() as js:
        js.add_instrument(Look())
        js.spawn(value_of, 1)
        await js.join_all()
    async with JoinSet[object](limit=1) as js:
        js.add_instrument(Look())
        js.spawn(forever)
        js.spawn(forever)
        js.abort_all()
    assert seen == [
        (TaskState.RUNNING, "running"),
        (TaskState.RUNNING, "running"),
        (TaskState.WAITING, "waiting_for_slot"),
    ]


async def test_wait_for_a_task_aborted_while_queued() -> None:
    """S23: wait() on a task waiting for a slot returns once it is aborted."""
    async with JoinSet[object](limit=1) as js, anyio.create_task_group() as tg:
        js.spawn(forever)
        queued = js.spawn(forever)
        waited = anyio.Event()

        async def waiter() -> None:
            await queued.wait()
            waited.set()

        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        queued.abort()
        await waited.wait()
        js.abort_all()


async def test_failed_start_after_abandon_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """S21/S13: a task whose start() was cancelled and then fails is logged, never silent."""
    error = KeyError("late")
    ready = anyio.Event()

    async def fail_on_abort(
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,  # noqa: ARG001
    ) -> None:
        ready.set()
        try:
            await anyio.sleep_forever()
        finally:
            raise error

    with caplog.at_level(logging.WARNING, logger="anyio_joinset"):
        async with JoinSet[None]() as js:
            with anyio.CancelScope() as scope:

                async def cancel() -> None:
                    await ready.wait()
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel)
                    await js.start(fail_on_abort)
            await anyio.wait_all_tasks_blocked()
            assert len(js) == 0
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert logged == [error]


async def test_start_refuses_bad_arguments() -> None:
    """S3: start() checks its function, name and return_handle at the call."""
    async with JoinSet[None]() as js:
        expected = r"^JoinSet\.start\(\) return_handle must be True or False, got 'yes'\.$"
        with pytest.raises(TypeError, match=expected):
            await js.start(never_ready, return_handle="yes")  # type: ignore[call-overload]
        with pytest.raises(
            TypeError, match=r"^JoinSet\.start\(\) name must be a str or None, got int\.$"
        ):
            await js.start(never_ready, name=5)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await js.start(print)
        assert len(js) == 0
    with pytest.raises(RuntimeError, match=r"^This JoinSet is closed"):
        await js.start(never_ready)
    with pytest.raises(RuntimeError, match=r"^This JoinSet is closed"):
        js.follow()


async def test_fail_with_is_still_joined_after_follow_ends() -> None:
    """S22: follow() hands out failures as outcomes; it never raises them."""
    async with anyio.create_task_group() as tg:  # noqa: SIM117 - the group encloses the set
        async with JoinSet[None]() as js:
            kinds: list[bool] = []

            async def reaper() -> None:
                kinds.extend([outcome.exception() is not None async for outcome in js.follow()])

            tg.start_soon(reaper)
            js.spawn(fail_with, ValueError("x"))
            await anyio.wait_all_tasks_blocked()
    assert kinds == [True]


async def test_started_after_start_was_cancelled_keeps_the_task_out() -> None:
    """S21: a task calling started() after its start() was cancelled stays out of the set."""
    ready = anyio.Event()

    async def late(*, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        ready.set()
        try:
            await anyio.sleep_forever()
        finally:
            task_status.started(1)  # too late: start() gave up

    async with JoinSet[None]() as js:
        with anyio.CancelScope() as scope:

            async def cancel() -> None:
                await ready.wait()
                scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel)
                await js.start(late)
        await anyio.wait_all_tasks_blocked()
        assert len(js) == 0
        assert await js.join_next() is None


async def test_start_cancelled_after_started_leaves_the_task_in_the_set() -> None:
    """S21: start() cancelled once its task said ready: the task stays, its outcome comes out."""
    scope = anyio.CancelScope()

    async def ready_then_cancel(*, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> str:
        scope.cancel()  # the starter's scope, then ready, in the same step
        task_status.started(7)
        await anyio.lowlevel.checkpoint()
        return "stayed"

    async with JoinSet[str]() as js:
        with scope:
            await js.start(ready_then_cancel)
        assert scope.cancelled_caught
        assert len(js) == 1
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == "stayed"


async def test_started_while_the_block_is_left_returns_without_joining() -> None:
    """S21/S13: a task that says ready while the block is being left does not join the set."""
    got: list[object] = []
    entered = anyio.Event()

    async def ready_on_abort(*, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED) -> None:
        entered.set()
        try:
            await anyio.sleep_forever()
        finally:
            task_status.started("late")

    async with anyio.create_task_group() as tg:
        async with JoinSet[None]() as js:

            async def starter() -> None:
                got.append(await js.start(ready_on_abort))

            tg.start_soon(starter)
            await entered.wait()
        assert len(js) == 0
    assert got == ["late"]


async def test_joinmap_start_under_a_key_whose_eq_raises_fails_start() -> None:
    """S21/S16: a key whose __eq__ raises at started(): start() raises it, the map unchanged."""

    class Clash:
        def __init__(self, raises: bool) -> None:
            self.raises = raises

        def __hash__(self) -> int:
            return 1

        def __eq__(self, other: object) -> bool:
            if self.raises or getattr(other, "raises", False):
                msg = "cannot compare"
                raise ArithmeticError(msg)
            return self is other

    release = anyio.Event()
    async with JoinMap[Clash, str]() as jm:
        first = Clash(raises=False)
        await jm.start(first, serve, 1, release)
        before = (len(jm), list(jm.keys()))
        with pytest.raises(ArithmeticError, match=r"^cannot compare$"):
            await jm.start(Clash(raises=True), serve, 2, release)
        assert (len(jm), list(jm.keys())) == before
        release.set()
        pairs = [(key, outcome.result()) async for key, outcome in jm]
    assert pairs == [(first, "served 1")]


class Interrupt(BaseException):
    """A BaseException that is not an Exception (S6), like KeyboardInterrupt."""


async def test_a_base_exception_before_started_is_raised_by_start_once() -> None:
    """S21/S6: start() raises the task's own BaseException; the block raises it once."""
    interrupt = Interrupt("stop")

    async def interrupted(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:  # noqa: ARG001
        await anyio.lowlevel.checkpoint()
        raise interrupt

    with pytest.raises(Interrupt) as caught:
        async with JoinSet[None]() as js:
            await js.start(interrupted)
    assert caught.value is interrupt


async def test_follow_may_start_while_the_block_is_left() -> None:
    """S22: follow() called while the block is being left takes what is left, then ends."""
    release = anyio.Event()
    seen: list[object] = []
    async with anyio.create_task_group() as tg, JoinSet[object]() as js:

        async def late_follower() -> None:
            await release.wait()  # set while the block's exit waits for a task
            async for outcome in js.follow():
                seen.append(outcome.cancelled())  # noqa: PERF401

        async def unwinding() -> None:
            try:
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    release.set()
                    await anyio.wait_all_tasks_blocked()

        tg.start_soon(late_follower)
        js.spawn(unwinding)
        await anyio.wait_all_tasks_blocked()
    assert seen in ([True], [])  # taken by the follower, or dropped at exit: never an error
