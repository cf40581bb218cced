"""S1 scope and S13 leaving the block."""

from __future__ import annotations

import logging
import traceback

import anyio
import pytest

from anyio_joinset import JoinSet
from helpers import ExceptionGroup, Gate, fail_with, forever, value_of


async def test_entering_twice_raises() -> None:
    """S1: a JoinSet is single-use; entering it again raises RuntimeError."""
    js = JoinSet[object]()
    async with js:
        pass
    with pytest.raises(
        RuntimeError,
        match=(
            r"^This JoinSet has already been used; create a new JoinSet for each "
            r"async with block \(S1\)\.$"
        ),
    ):
        async with js:
            pass  # pragma: no cover


async def test_entering_while_open_raises() -> None:
    """S1: entering an open JoinSet again (nested) raises RuntimeError."""
    async with JoinSet[object]() as js:
        with pytest.raises(RuntimeError, match=r"^This JoinSet has already been used"):
            await js.__aenter__()


async def test_leaving_aborts_running_tasks_and_waits_for_cleanup() -> None:
    """S13 (tokio test_abort_on_drop): leaving the block aborts tasks and awaits cleanup."""
    gates = [Gate() for _ in range(16)]
    async with JoinSet[object]() as js:
        for gate in gates:
            js.spawn(gate.wait)
        await anyio.wait_all_tasks_blocked()
    assert all(g.started and g.cleaned_up and not g.finished for g in gates)
    assert len(js) == 0


async def test_leaving_never_runs_unstarted_tasks() -> None:
    """S7/S13: tasks spawned but not started when the block ends never run their body."""
    gates = [Gate() for _ in range(4)]
    async with JoinSet[object]() as js:
        for gate in gates:
            js.spawn(gate.wait)
    assert not any(g.started for g in gates)


async def test_no_task_outlives_the_block_even_if_cleanup_is_slow() -> None:
    """S13: leaving waits for every task to finish unwinding."""
    finished: list[str] = []

    async def slow_cleanup() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                for _ in range(5):
                    await anyio.lowlevel.checkpoint()
                finished.append("cleanup")

    async with JoinSet[None]() as js:
        js.spawn(slow_cleanup)
        await anyio.wait_all_tasks_blocked()
    assert finished == ["cleanup"]


async def test_body_exception_propagates_unchanged() -> None:
    """S13: the body's exception is the same object, unwrapped, with no chained context."""
    error = LookupError("from the body")
    gate = Gate()
    with pytest.raises(LookupError) as info:
        async with JoinSet[object]() as js:
            js.spawn(gate.wait)
            js.spawn(fail_with, ValueError("a task's"))
            await anyio.wait_all_tasks_blocked()
            raise error
    assert info.value is error
    assert error.__context__ is None
    assert error.__cause__ is None
    assert gate.cleaned_up
    text = "".join(traceback.format_exception(error))
    assert "During handling" not in text
    assert "ExceptionGroup" not in text


async def test_body_base_exception_propagates_unchanged() -> None:
    """S13: a non-Exception BaseException of the body also propagates as itself."""

    class Stop(BaseException):
        pass

    stop = Stop()
    with pytest.raises(Stop) as info:
        async with JoinSet[object]() as js:
            js.spawn(forever)
            raise stop
    assert info.value is stop
    assert stop.__context__ is None


async def test_leaving_never_swallows_what_the_body_raised() -> None:
    """S13: __aexit__ returns None for every exit, so it never swallows an exception."""
    error = LookupError("from the body")
    for exc in (None, error):
        js = JoinSet[object]()
        await js.__aenter__()
        js.spawn(forever)
        await anyio.wait_all_tasks_blocked()
        assert await js.__aexit__(None if exc is None else type(exc), exc, None) is None
        assert len(js) == 0


async def test_body_cancellation_leaves_as_the_same_object() -> None:
    """S13: the body's cancellation leaves the block as itself; its own scope catches it."""
    cancelled = anyio.get_cancelled_exc_class()
    raised: list[BaseException] = []
    left: list[BaseException] = []
    with anyio.CancelScope() as scope:
        try:
            async with JoinSet[object]() as js:
                js.spawn(forever)
                await anyio.wait_all_tasks_blocked()
                scope.cancel()
                try:
                    await anyio.sleep_forever()
                except cancelled as exc:
                    raised.append(exc)
                    raise
        except cancelled as exc:
            left.append(exc)
            raise
    assert scope.cancelled_caught
    assert len(raised) == len(left) == 1
    assert left[0] is raised[0]


async def test_stale_cancellation_of_the_body_is_not_swallowed() -> None:
    """S13: a cancellation the body re-raises after its scope ended goes on out.

    No live scope claims it, and the set's task group would (its scope is
    cancelled as the body's exception reaches it): the set does not let it, so
    the block behaves as if the set were not there.
    """
    cancelled = anyio.get_cancelled_exc_class()
    stale: list[BaseException] = []
    gate = Gate()
    with pytest.raises(cancelled) as info:
        async with JoinSet[object]() as js:
            js.spawn(gate.wait)
            await anyio.wait_all_tasks_blocked()
            with anyio.CancelScope() as inner:
                inner.cancel()
                try:
                    await anyio.sleep_forever()
                except cancelled as exc:
                    stale.append(exc)
            assert inner.cancelled_caught is False
            raise stale[0]
    assert info.value is stale[0]
    assert gate.cleaned_up
    assert not gate.finished


async def test_body_cancelled_by_outer_scope_aborts_tasks() -> None:
    """S13: leaving by cancellation aborts the tasks and the cancellation is absorbed."""
    gate = Gate()
    with anyio.CancelScope() as scope:
        async with JoinSet[object]() as js:
            js.spawn(gate.wait)
            await anyio.wait_all_tasks_blocked()
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert gate.cleaned_up
    assert not gate.finished


async def test_body_timeout_aborts_tasks() -> None:
    """S13: a body that timed out and leaves the block normally still aborts its
    tasks: leaving aborts them itself (no enclosing scope does it here).

    A watchdog outside the block checks, once everything is blocked after the body
    has started to leave, that the task was aborted; if not, it fails the test and
    releases the task, so a regression fails instead of hanging.
    """
    gate = Gate()
    leaving = anyio.Event()
    still_running: list[bool] = []
    async with anyio.create_task_group() as outer:

        async def watchdog() -> None:
            await leaving.wait()
            await anyio.wait_all_tasks_blocked()
            still_running.append(not gate.cleaned_up)
            gate.release.set()

        outer.start_soon(watchdog)
        async with JoinSet[object]() as js:
            js.spawn(gate.wait)
            await anyio.wait_all_tasks_blocked()
            assert gate.started
            with anyio.move_on_after(0) as scope:
                await anyio.sleep_forever()
            assert scope.cancelled_caught
            assert len(js) == 1
            leaving.set()
    assert still_running == [False]
    assert gate.cleaned_up
    assert not gate.finished


async def test_timeout_around_the_block_aborts_tasks() -> None:
    """S13: move_on_after around the block ends the tasks with the block."""
    gate = Gate()
    with anyio.move_on_after(0) as scope:
        async with JoinSet[object]() as js:
            js.spawn(gate.wait)
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert not gate.finished  # aborted (on Trio, maybe before it even started)


async def test_unjoined_failures_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """S13: the failures never retrieved at block exit are one WARNING record, each once."""
    errors = [ValueError("one"), KeyError("two")]
    with caplog.at_level(logging.DEBUG, logger="anyio_joinset"):
        async with JoinSet[object]() as js:
            for i, error in enumerate(errors):
                js.spawn(fail_with, error, name=f"failing-{i}")
            js.spawn(value_of, "fine")
            js.spawn(forever)  # aborted at exit: a cancellation is not a failure
            await anyio.wait_all_tasks_blocked()
    records = [r for r in caplog.records if r.name == "anyio_joinset"]
    assert [r.levelno for r in records] == [logging.WARNING]
    (record,) = records
    assert record.exc_info is not None
    group = record.exc_info[1]
    assert isinstance(group, ExceptionGroup)
    assert sorted(group.exceptions, key=id) == sorted(errors, key=id)  # completion order varies
    lines = record.getMessage().splitlines()
    assert lines[0] == "2 tasks failed and their outcomes were never joined:"
    assert sorted(lines[1:]) == [
        "  'failing-0' (id 1): ValueError: one",
        "  'failing-1' (id 2): KeyError: 'two'",
    ]


async def test_many_unjoined_failures_make_one_short_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S13: 100 failures left at block exit log one record naming 20 and counting the rest."""
    with caplog.at_level(logging.DEBUG, logger="anyio_joinset"):
        async with JoinSet[object]() as js:
            for i in range(100):
                js.spawn(fail_with, ValueError(i))
            await anyio.wait_all_tasks_blocked()
    (record,) = [r for r in caplog.records if r.name == "anyio_joinset"]
    lines = record.getMessage().splitlines()
    assert len(lines) == 22
    assert lines[-1] == "  ... and 80 more"
    assert record.exc_info is not None
    assert len(record.exc_info[1].exceptions) == 100  # type: ignore[union-attr]
    assert len(logging.Formatter().format(record).splitlines()) < 250


async def test_joined_failures_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """S13: a failure that was handed out is the caller's; it is not logged at exit."""
    with caplog.at_level(logging.DEBUG, logger="anyio_joinset"):
        async with JoinSet[object]() as js:
            js.spawn(fail_with, ValueError("seen"))
            assert await js.join_next() is not None
    assert not [r for r in caplog.records if r.name == "anyio_joinset"]


async def test_spawning_while_the_block_unwinds_is_refused() -> None:
    """S3/S13: a task that spawns while the block is being left gets RuntimeError."""
    errors: list[BaseException] = []

    async def spawner(js: JoinSet[object]) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            try:
                js.spawn(value_of, 1)
            except RuntimeError as exc:
                errors.append(exc)

    async with JoinSet[object]() as js:
        js.spawn(spawner, js)
        await anyio.wait_all_tasks_blocked()
    assert len(errors) == 1
    assert str(errors[0]) == "This JoinSet is closed; spawn() can no longer start tasks."


async def test_aexit_without_aenter_raises() -> None:
    """S1: calling __aexit__ on a set that is not open raises RuntimeError."""
    with pytest.raises(
        RuntimeError,
        match=r"^This JoinSet is not open; __aexit__ must follow __aenter__ once \(S1\)\.$",
    ):
        await JoinSet[object]().__aexit__(None, None, None)


async def test_repr() -> None:
    """JoinSet and JoinHandle have informative reprs."""
    js = JoinSet[object](limit=1)
    assert repr(js) == "<JoinSet new len=0 running=0 waiting=0 limit=1>"
    async with js:
        first = js.spawn(forever, name="a")
        second = js.spawn(forever, name="b")
        assert repr(js) == "<JoinSet open len=2 running=1 waiting=1 limit=1>"
        assert repr(first) == "<JoinHandle id=1 name='a' running>"
        assert repr(second) == "<JoinHandle id=2 name='b' waiting>"
        first.abort()
        assert repr(first) == "<JoinHandle id=1 name='a' running aborted>"
    assert repr(js) == "<JoinSet closed len=0 running=0 waiting=0 limit=1>"
    assert repr(first) == "<JoinHandle id=1 name='a' detached>"
