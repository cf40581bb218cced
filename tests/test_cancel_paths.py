"""Cancellation paths of issue 14 (S7, S11, S19) and reference cycles of issues 14/17."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import warnings
import weakref
from collections.abc import AsyncIterator, Generator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest

from anyio_joinset import JoinHandle, JoinMap, JoinSet, TaskCancelled
from helpers import ExceptionGroup, Recorder, forever, unwind_after, value_of


async def test_first_success_cancelled_while_draining_puts_every_loser_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S19/S11: cancelled during its drain, first_success loses nothing it drained."""
    release = anyio.Event()
    error = ValueError("raised while the drain aborted it")

    async def fails_when_aborted() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            raise error

    with caplog.at_level(logging.WARNING, logger="anyio_joinset"):
        async with JoinSet[str]() as js:
            js.spawn(unwind_after, release)
            js.spawn(fails_when_aborted)
            js.spawn(forever)
            await anyio.wait_all_tasks_blocked()
            js.spawn(value_of, "winner")
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:

                    async def run() -> None:
                        await js.first_success()

                    tg.start_soon(run)
                    await anyio.wait_all_tasks_blocked()  # drained two, one unwinds
                    assert js.stats().running == 1
                    scope.cancel()
            assert len(js) == 4
            first = js.try_join_next()
            assert first is not None
            assert first.result() == "winner"
            drained = [js.try_join_next(), js.try_join_next()]
            kinds = sorted(
                "failed" if o is not None and not o.cancelled() else "cancelled" for o in drained
            )
            assert kinds == ["cancelled", "failed"]
            release.set()
            last = await js.join_next()
            assert last is not None
            assert last.cancelled()
    assert not [r for r in caplog.records if r.name == "anyio_joinset"]  # all handed out


# -- reference cycles: every object of a task is freed by reference counting alone ------


class Payload:
    """A value or exception attribute we can hold a weak reference to."""


class Tracked(Exception):
    """An exception we can hold a weak reference to."""


@contextmanager
def no_collector() -> Generator[None, None, None]:
    """Run with the cyclic garbage collector off, so only reference counting frees."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


async def succeed_with(refs: list[weakref.ref[Any]]) -> Payload:
    await anyio.lowlevel.checkpoint()
    value = Payload()
    refs.append(weakref.ref(value))
    return value


async def fail_tracked(refs: list[weakref.ref[Any]]) -> None:
    await anyio.lowlevel.checkpoint()
    exc = Tracked("tracked")
    refs.append(weakref.ref(exc))
    try:
        raise exc
    finally:
        del exc


def assert_freed(refs: list[weakref.ref[Any]]) -> None:
    assert refs, "the test made nothing to watch"
    alive = [ref() for ref in refs if ref() is not None]
    assert alive == [], f"kept alive by a reference cycle: {alive}"


async def test_no_cycle_on_success_failure_and_cancellation() -> None:
    """No per-task cycle: joined outcomes and their payloads die by refcount (issue 17)."""
    refs: list[weakref.ref[Any]] = []
    with no_collector():
        async with JoinSet[Any]() as js:
            js.spawn(succeed_with, refs)
            js.spawn(fail_tracked, refs)
            aborted = js.spawn(forever)
            await anyio.wait_all_tasks_blocked()
            aborted.abort()
            handles = [weakref.ref(aborted)]
            del aborted
            async for outcome in js:
                handles.append(weakref.ref(outcome._handle))
                del outcome
        await anyio.lowlevel.checkpoint()
        assert_freed(refs)
        assert_freed(handles)


async def test_no_cycle_when_result_raises() -> None:
    """Outcome.result()/exception() raising leave no outcome/exception cycle (issue 14, 19)."""
    refs: list[weakref.ref[Any]] = []
    with no_collector():
        async with JoinSet[Any]() as js:
            js.spawn(fail_tracked, refs)
            outcome = await js.join_next()
            assert outcome is not None
            handles = [weakref.ref(outcome._handle)]
            with pytest.raises(Tracked):
                outcome.result()
            js.spawn(forever).abort()
            cancelled = await js.join_next()
            assert cancelled is not None
            handles.append(weakref.ref(cancelled._handle))
            with pytest.raises(TaskCancelled):
                cancelled.result()
            with pytest.raises(TaskCancelled):
                cancelled.exception()
            del outcome, cancelled
        assert_freed(handles)
        assert_freed(refs)


@pytest.mark.parametrize("fail_fast", [True, False])
async def test_no_cycle_when_join_all_raises(fail_fast: bool) -> None:
    """join_all raising keeps none of the values it took alive through the traceback."""
    refs: list[weakref.ref[Any]] = []
    with no_collector():
        async with JoinSet[Any]() as js:
            for _ in range(3):
                js.spawn(succeed_with, refs)
            await anyio.wait_all_tasks_blocked()
            js.spawn(fail_tracked, refs)
            with pytest.raises((Tracked, ExceptionGroup)):
                await js.join_all(fail_fast=fail_fast)
        assert_freed(refs)


async def test_no_cycle_in_first_success_shutdown_and_map(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """first_success, shutdown, map() and JoinMap free their outcomes by refcount."""
    refs: list[weakref.ref[Any]] = []
    # Logging off: a captured record would keep its exception alive on purpose.
    with no_collector(), caplog.at_level(logging.CRITICAL, logger="anyio_joinset"):
        async with JoinSet[Any]() as js:
            js.spawn(fail_tracked, refs)
            await anyio.wait_all_tasks_blocked()
            js.spawn(succeed_with, refs)
            winner = await js.first_success()
            del winner
            js.spawn(fail_tracked, refs)
            js.spawn(succeed_with, refs)
            await anyio.wait_all_tasks_blocked()
            await js.shutdown()
            async for _item, outcome in js.map(lambda _: succeed_with(refs), range(3)):
                del outcome
        async with JoinMap[int, Any]() as jm:
            jm.spawn(1, fail_tracked, refs)
            jm.spawn(2, succeed_with, refs)
            await anyio.wait_all_tasks_blocked()
            jm.spawn(1, succeed_with, refs)  # replaces a failed, finished task
            async for _key, outcome in jm:
                del outcome
        assert_freed(refs)


async def test_no_cycle_for_failures_discarded_at_block_exit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Failures dropped at block exit (and logged) are freed once the log record is."""
    refs: list[weakref.ref[Any]] = []
    with no_collector(), caplog.at_level(logging.CRITICAL, logger="anyio_joinset"):
        async with JoinSet[Any]() as js:
            js.spawn(fail_tracked, refs)
            js.spawn(fail_tracked, refs)
            await anyio.wait_all_tasks_blocked()
        caplog.clear()
        sys.last_exc = sys.last_value = sys.last_traceback = None  # type: ignore[assignment]
        assert_freed(refs)


# -- native asyncio cancellation combined with abort (issue 14 item 18, S7, S6) ---------


@pytest.fixture
def native_asyncio(anyio_backend: tuple[str, dict[str, Any]]) -> None:
    if anyio_backend[0] != "asyncio":
        pytest.skip("drives asyncio's native cancellation (Task.cancel)")


asyncio_only = pytest.mark.usefixtures("native_asyncio")


@asyncio_only
async def test_native_cancel_and_abort_of_one_task_cancel_only_that_task() -> None:
    """Task.cancel() and handle.abort() on one task: a cancelled outcome, nothing else cut."""
    victim: list[asyncio.Task[Any]] = []
    sibling_done = anyio.Event()
    body_ran_on: list[str] = []

    async def target() -> None:
        task = asyncio.current_task()
        assert task is not None
        victim.append(task)
        await anyio.sleep_forever()

    async def sibling() -> str:
        await sibling_done.wait()
        return "sibling"

    async with JoinSet[object]() as js:
        handle = js.spawn(target)
        js.spawn(sibling)
        await anyio.wait_all_tasks_blocked()
        victim[0].cancel()
        handle.abort()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.cancelled()
        await anyio.wait_all_tasks_blocked()
        body_ran_on.append("after the join")
        sibling_done.set()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == "sibling"  # the sibling was not cancelled
        body_ran_on.append("to the end")
    assert body_ran_on == ["after the join", "to the end"]


@asyncio_only
async def test_shutdown_during_a_natively_cancelled_tasks_cleanup_returns() -> None:
    """shutdown() while a natively cancelled task awaits its cleanup ends, with it drained."""
    victim: list[asyncio.Task[Any]] = []
    cleaning = anyio.Event()
    cleaned = anyio.Event()

    async def target() -> None:
        task = asyncio.current_task()
        assert task is not None
        victim.append(task)
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                cleaning.set()
                await cleaned.wait()

    async with JoinSet[object]() as js, anyio.create_task_group() as tg:
        js.spawn(target)
        await anyio.wait_all_tasks_blocked()
        victim[0].cancel()
        await cleaning.wait()

        async def release_after_shutdown_started() -> None:
            await anyio.wait_all_tasks_blocked()
            cleaned.set()

        tg.start_soon(release_after_shutdown_started)
        await js.shutdown()
        assert len(js) == 0


def _new_native_task(before: set[asyncio.Task[Any]]) -> asyncio.Task[Any]:
    """The one asyncio task that is not in ``before``: the one just spawned."""
    (task,) = asyncio.all_tasks() - before
    return task


@contextmanager
def no_never_awaited() -> Generator[None, None, None]:
    """Fail if a coroutine is dropped unawaited inside the block (S7: it ends cleanly)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


@asyncio_only
@pytest.mark.parametrize("abort_too", [False, True], ids=["native", "native+abort"])
async def test_native_cancel_before_the_first_step_gives_a_cancelled_outcome(
    abort_too: bool,
) -> None:
    """S7: Task.cancel() before a task's first step: its cancelled outcome; the set goes on."""
    started: list[str] = []
    release = anyio.Event()

    async def target() -> None:
        started.append("target")  # never: cancelled before its first step

    async def sibling() -> str:
        await release.wait()
        return "sibling"

    body_ran_on: list[str] = []
    with no_never_awaited():
        async with JoinSet[object]() as js:
            js.spawn(sibling)
            before = asyncio.all_tasks()
            handle = js.spawn(target)
            _new_native_task(before).cancel()
            if abort_too:
                handle.abort()
            outcome = await js.join_next()
            assert outcome is not None
            assert outcome.id == handle.id
            assert outcome.cancelled()
            assert handle.done()
            body_ran_on.append("after the join")
            await anyio.wait_all_tasks_blocked()
            release.set()
            outcome = await js.join_next()
            assert outcome is not None
            assert outcome.result() == "sibling"  # not cancelled with the victim
            assert await js.join_next() is None
            body_ran_on.append("to the end")
    assert started == []
    assert body_ran_on == ["after the join", "to the end"]
    assert js.stats().cancelled == 1


@asyncio_only
async def test_native_cancel_before_the_first_step_frees_its_slot() -> None:
    """S7/S18: a task natively cancelled before its first step frees its slot for the queue."""
    with no_never_awaited():
        async with JoinSet[str](limit=1) as js:
            before = asyncio.all_tasks()
            victim = js.spawn(value_of, "victim")
            _new_native_task(before).cancel()
            js.spawn(value_of, "queued")  # waits for the victim's slot
            outcome = await js.join_next()
            assert outcome is not None
            assert outcome.id == victim.id
            assert outcome.cancelled()
            outcome = await js.join_next()
            assert outcome is not None
            assert outcome.result() == "queued"


@asyncio_only
async def test_native_cancel_before_the_first_step_of_a_face_task() -> None:
    """S7/S25: through the task-group face too, and AnyIO's TaskHandle reads cancelled."""
    async with JoinSet[object]() as js:
        tg = js.task_group
        before = asyncio.all_tasks()
        task = tg.create_task(value_of("face"))
        _new_native_task(before).cancel()
        with no_never_awaited():
            outcome = await js.join_next()
        assert outcome is not None
        assert outcome.cancelled()
        assert task.status is task.Status.CANCELLED
        with pytest.raises(anyio.TaskCancelled):
            await task
        js.spawn(value_of, "after")  # the set still runs tasks
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == "after"


@asyncio_only
async def test_native_cancel_before_the_first_step_of_two_tasks_at_once() -> None:
    """S7: two tasks natively cancelled in one batch both end cancelled; the set goes on."""
    with no_never_awaited():
        async with JoinSet[str]() as js:
            before = asyncio.all_tasks()
            first = js.spawn(value_of, "first")
            second = js.spawn(value_of, "second")
            for task in asyncio.all_tasks() - before:
                task.cancel()
            got = [await js.join_next(), await js.join_next()]
            assert {o.id for o in got if o is not None and o.cancelled()} == {first.id, second.id}
            js.spawn(value_of, "after")
            outcome = await js.join_next()
            assert outcome is not None
            assert outcome.result() == "after"


@asyncio_only
async def test_native_cancel_before_the_first_step_of_a_started_task() -> None:
    """S7/S21: start() of a task natively cancelled before its first step raises TaskCancelled."""

    async def starter(*, task_status: anyio.abc.TaskStatus[str]) -> None:
        task_status.started("never")  # pragma: no cover - cancelled before its first step

    with no_never_awaited():
        async with JoinSet[None]() as js:
            before = asyncio.all_tasks()

            def cancel_the_new_task() -> None:
                _new_native_task(before).cancel()

            # Runs before the new task's first step: scheduled before it was.
            asyncio.get_running_loop().call_soon(cancel_the_new_task)
            with pytest.raises(TaskCancelled, match=r"before it called started\(\)"):
                await js.start(starter)
            assert len(js) == 0
            js.spawn(anyio.lowlevel.checkpoint)
            outcome = await js.join_next()
            assert outcome is not None
            assert outcome.result() is None


@asyncio_only
async def test_native_cancel_before_the_first_step_gives_back_its_rate_turn() -> None:
    """S7/S18: a task natively cancelled before its first step never owes its rate turn."""
    with no_never_awaited():
        async with JoinSet[str](rate=(1, 3600)) as js:  # one start an hour
            before = asyncio.all_tasks()
            victim = js.spawn(value_of, "victim")
            _new_native_task(before).cancel()
            outcome = await js.join_next()
            assert outcome is not None
            assert (outcome.id, outcome.cancelled()) == (victim.id, True)
            # The hour's one turn was never taken: a new task could start at once.
            with anyio.fail_after(10):  # else it waits forever for the victim's turn
                await js.wait_for_capacity()
            js.spawn(value_of, "next")
            with anyio.fail_after(10):
                outcome = await js.join_next()
            assert outcome is not None
            assert outcome.result() == "next"


@asyncio_only
async def test_native_cancel_before_the_first_step_in_a_shielded_drain_of_a_cancelled_set() -> None:
    """S7/S9: a scope around the set cancelled, a shielded drain still gets the outcome.

    AnyIO does not call for its task group to be cancelled then (it already is),
    which is where the set heard of such a task: the drain waited for ever.
    """
    with no_never_awaited(), anyio.CancelScope() as outer:
        async with JoinSet[str]() as js:
            outer.cancel()
            try:
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    before = asyncio.all_tasks()
                    victim = js.spawn(value_of, "victim")
                    _new_native_task(before).cancel()
                    with anyio.fail_after(10):
                        outcome = await js.join_next()
                    assert outcome is not None
                    assert (outcome.id, outcome.cancelled()) == (victim.id, True)
                    assert len(js) == 0
    assert outer.cancelled_caught


@asyncio_only
async def test_native_cancel_before_the_first_step_as_the_host_is_cancelled() -> None:
    """S7/S23/S31: the host cancelled in the same step: the task still ends, hooks and all."""
    recorder = Recorder()
    handles: list[JoinHandle[None]] = []

    async def host() -> None:
        async with JoinSet[None]() as js:
            js.add_instrument(recorder)
            before = asyncio.all_tasks()
            handles.append(js.spawn(forever))
            _new_native_task(before).cancel()
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await anyio.sleep_forever()

    with no_never_awaited(), pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(host())
    (handle,) = handles
    assert handle.done()
    # Aborted as the block was left, and ended.
    assert recorder.events == [
        ("spawned", "forever"),
        ("aborted", "forever"),
        ("finished", "forever", "cancelled"),
        ("handed_out", "forever"),  # discarded as the block was left
    ]
    with anyio.fail_after(10):
        await handle.wait()


@asyncio_only
async def test_face_cancel_then_native_cancel_before_the_first_step_counts_as_aborted() -> None:
    """S25/S31: TaskHandle.cancel() and then Task.cancel(): aborted, and task_aborted runs."""
    recorder = Recorder()
    async with JoinSet[None]() as js:
        js.add_instrument(recorder)
        before = asyncio.all_tasks()
        task = js.task_group.create_task(forever())
        task.cancel()  # AnyIO's TaskHandle.cancel(): the set counts it as an abort
        _new_native_task(before).cancel()
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.cancelled()
    assert recorder.handles[0].aborted
    assert [event[0::2] for event in recorder.events[1:]] == [
        ("aborted",),
        ("finished", "cancelled"),
        ("handed_out",),
    ]
    assert task.status is task.Status.CANCELLED


def _feeder_task() -> asyncio.Task[Any]:
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == "JoinSet.map() feeder"]
    return task


@asyncio_only
@pytest.mark.parametrize("when", ["before its first step", "while it feeds"])
async def test_a_natively_cancelled_feeder_stops_the_feed_with_an_error(when: str) -> None:
    """S20: a Task.cancel() of a Feed's feeder stops feeding, and a step says so, not hangs."""
    release = anyio.Event()
    taken = anyio.Event()

    async def inputs() -> AsyncIterator[str]:
        yield "first"
        taken.set()
        await release.wait()
        yield "never"  # pragma: no cover - cancelled before

    got: list[str] = []
    with no_never_awaited():
        async with JoinSet[str]() as js:
            # A bare Feed, whose feeder starts at the first step: the callback,
            # scheduled before it, runs before the feeder's first step.
            feed = js.map(value_of, inputs())
            if when == "before its first step":
                asyncio.get_running_loop().call_soon(lambda: _feeder_task().cancel())
            try:
                with anyio.fail_after(10):
                    async for item, outcome in feed:
                        got.append(f"{item}: {outcome.result()}")
                        if when == "while it feeds":
                            await taken.wait()
                            await anyio.wait_all_tasks_blocked()
                            _feeder_task().cancel()
            except RuntimeError as exc:
                got.append(str(exc))
            except TimeoutError:  # pragma: no cover - the failure this test looks for
                got.append("hung")  # (no aclose(): it would wait for the feeder for ever)
    assert got[:-1] == ([] if when == "before its first step" else ["first: first"])
    assert "The feeder task of JoinSet.map() was cancelled natively" in got[-1]


@asyncio_only
async def test_native_cancel_before_the_first_step_leaves_a_running_feed_alone() -> None:
    """S7/S20: a task cancelled so, next to a Feed that feeds: the Feed feeds on."""
    release = anyio.Event()

    async def inputs() -> AsyncIterator[str]:
        await release.wait()
        yield "fed"

    got: list[object] = []
    with no_never_awaited():
        async with JoinSet[str]() as js, js.map(value_of, inputs()) as feed:
            await anyio.wait_all_tasks_blocked()  # the feeder waits for its input
            before = asyncio.all_tasks()
            victim = js.spawn(value_of, "victim")
            _new_native_task(before).cancel()
            with anyio.fail_after(10):
                async for item, outcome in feed:
                    got.append((item, outcome.cancelled() and outcome.id == victim.id))
                    release.set()
    assert got == [(None, True), ("fed", False)]


def count_sweeps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the sweeps for tasks natively cancelled before their first step."""
    import anyio_joinset._engine as engine_module  # noqa: PLC0415 - patched below

    sweeps: list[int] = []
    sweep = engine_module.unstepped_tasks

    def counted(tg: Any) -> Any:
        sweeps.append(1)
        return sweep(tg)

    monkeypatch.setattr(engine_module, "unstepped_tasks", counted)
    return sweeps


@asyncio_only
async def test_tasks_cancelled_by_a_scope_around_the_set_cost_no_sweep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """S7: tasks that end cancelled by a scope around the set cost no sweep of the set."""
    sweeps = count_sweeps(monkeypatch)
    with anyio.CancelScope() as outer:
        async with JoinSet[None]() as js:
            for _ in range(50):
                js.spawn(forever)
            await anyio.wait_all_tasks_blocked()
            outer.cancel()
            try:
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    outcomes = [outcome async for outcome in js]
    assert len(outcomes) == 50
    assert all(outcome.cancelled() for outcome in outcomes)
    assert sweeps == []


@asyncio_only
async def test_many_tasks_natively_cancelled_at_once_cost_one_sweep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """S7: 200 tasks cancelled so in one step are found by one sweep of the set, not 200."""
    sweeps = count_sweeps(monkeypatch)
    with no_never_awaited():
        async with JoinSet[int]() as js:
            before = asyncio.all_tasks()
            for i in range(200):
                js.spawn(value_of, i)
            for task in asyncio.all_tasks() - before:
                task.cancel()
            outcomes = [outcome async for outcome in js]
    assert len(outcomes) == 200
    assert all(outcome.cancelled() for outcome in outcomes)
    assert len(sweeps) == 1  # each later done callback finds its task already swept


@asyncio_only
async def test_a_feed_stopped_as_its_feeder_is_natively_cancelled_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S20/S13: aclose() and a native cancel of the feeder in one step: no inputs error logged."""
    with caplog.at_level(logging.WARNING, logger="anyio_joinset"), no_never_awaited():
        async with JoinSet[int]() as js:
            async with js.map(value_of, range(3)) as feed:
                _feeder_task().cancel()  # before the feeder's first step
                await feed.aclose()
            await js.shutdown()
    assert caplog.records == []


@asyncio_only
async def test_a_task_factory_that_wraps_coroutines_leaves_live_tasks_alone() -> None:
    """S6/S7: where the set cannot see AnyIO's wrapper, it never ends a task that lives.

    A task factory that wraps each coroutine (as tracing tools do) hides AnyIO's
    wrapper from the sweep: a native cancel before a first step is then answered
    as AnyIO answers it (the task group is cancelled), and no task spawned
    meanwhile is ended in its place.
    """

    async def traced(coro: Any) -> Any:
        return await coro

    def wrapping(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        return asyncio.Task(traced(coro), loop=loop, **kwargs)

    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()
    loop.set_task_factory(wrapping)
    ended_by: list[str] = []
    try:
        # The victim's coroutines are dropped unawaited, as under AnyIO alone.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                async with JoinSet[str]() as js:
                    before = asyncio.all_tasks()
                    js.spawn(value_of, "victim")
                    _new_native_task(before).cancel()
                    later = js.spawn(anyio.sleep_forever)
                    with anyio.move_on_after(10):  # else the test would wait for ever
                        await anyio.sleep_forever()  # cancelled with the task group
            except asyncio.CancelledError:
                ended_by.append("the task group's cancellation")  # AnyIO's own answer
            # Before: ExceptionGroup([RuntimeError("cannot reuse already awaited
            # coroutine")]), the live task's wrapper having been closed in its place.
            gc.collect()
    finally:
        loop.set_task_factory(factory)
    assert ended_by == ["the task group's cancellation"]
    assert later.done()


@asyncio_only
async def test_a_sweep_leaves_a_task_yet_to_step_alone() -> None:
    """S7: a task spawned after the victim's step, before its sweep, still runs (not swept)."""
    later: list[JoinHandle[str]] = []

    async def spawner() -> str:
        # Runs in the same loop iteration as the victim's step, so the task it
        # spawns has not stepped when the victim's done callback sweeps the set.
        later.append(js.spawn(value_of, "later"))
        return "spawner"

    with no_never_awaited():
        async with JoinSet[str]() as js:
            before = asyncio.all_tasks()
            victim = js.spawn(value_of, "victim")
            _new_native_task(before).cancel()
            js.spawn(spawner)
            with anyio.fail_after(10):
                outcomes = {o.id: o for o in [await js.join_next() for _ in range(3)] if o}
    assert outcomes[victim.id].cancelled()
    assert outcomes[later[0].id].result() == "later"
    assert sorted(o.result() for o in outcomes.values() if not o.cancelled()) == [
        "later",
        "spawner",
    ]
