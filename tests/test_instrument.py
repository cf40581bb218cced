"""Instrumentation hooks (API.md S31-S33), after Trio's Instrument, on every backend."""

from __future__ import annotations

import logging
import re
import types
from collections import Counter
from functools import partial
from typing import Any

import anyio
import pytest

from anyio_joinset import (
    AnyJoinSet,
    FinishKind,
    Instrument,
    JoinHandle,
    JoinMap,
    JoinSet,
    Outcome,
    add_instrument,
    remove_instrument,
    snapshot_sets,
)
from anyio_joinset.backends import BACKENDS, run
from helpers import (
    BaseExceptionGroup,
    ExceptionGroup,
    Gate,
    Recorder,
    fail_with,
    forever,
    value_of,
)


async def test_every_event_of_a_task_in_order() -> None:
    """S31: spawned, started, finished with its kind, handed out; aborted too."""
    rec = Recorder()
    async with JoinSet[object]() as js:
        js.add_instrument(rec)
        js.spawn(value_of, 1, name="ok")
        assert await js.join_next() is not None
        js.spawn(fail_with, ValueError(), name="bad")
        assert await js.join_next() is not None
        slow = js.spawn(forever, name="slow")
        await anyio.wait_all_tasks_blocked()
        slow.abort()
        assert await js.join_next() is not None
    assert rec.events == [
        ("spawned", "ok"),
        ("started", "ok"),
        ("finished", "ok", "succeeded"),
        ("handed_out", "ok"),
        ("spawned", "bad"),
        ("started", "bad"),
        ("finished", "bad", "failed"),
        ("handed_out", "bad"),
        ("spawned", "slow"),
        ("started", "slow"),
        ("aborted", "slow"),
        ("finished", "slow", "cancelled"),
        ("handed_out", "slow"),
    ]


async def test_waiting_tasks_start_when_their_slot_frees() -> None:
    """S31 with S14: a task waiting for a slot starts (the hook) only when it gets one."""
    rec = Recorder()
    release = anyio.Event()
    async with JoinSet[object](limit=1) as js:
        js.add_instrument(rec)
        js.spawn(release.wait, name="first")
        js.spawn(value_of, 2, name="second")
        await anyio.wait_all_tasks_blocked()
        assert rec.events == [("spawned", "first"), ("spawned", "second"), ("started", "first")]
        release.set()
        await js.join_all()
    later = [event for event in rec.events[3:] if event[0] != "handed_out"]
    assert later == [
        ("finished", "first", "succeeded"),
        ("started", "second"),
        ("finished", "second", "succeeded"),
    ]


async def test_tasks_aborted_before_they_start() -> None:
    """S31: tasks aborted while waiting for a slot, or spawned during shutdown."""
    rec = Recorder()
    async with JoinSet[object](limit=1) as js:
        js.add_instrument(rec)
        js.spawn(forever, name="running")
        js.spawn(forever, name="queued")
        await anyio.wait_all_tasks_blocked()
        js.abort_all()
        await js.shutdown()
    assert ("aborted", "running") in rec.events
    assert ("aborted", "queued") in rec.events
    assert ("started", "queued") not in rec.events
    assert ("finished", "queued", "cancelled") in rec.events


async def test_process_wide_instrument_reaches_live_and_new_sets() -> None:
    """S31: add_instrument() reaches sets already open and sets opened later."""
    rec = Recorder()
    async with JoinSet[object]() as before:
        add_instrument(rec)
        add_instrument(rec)  # twice: once
        try:
            before.spawn(value_of, 1, name="before")
            async with JoinMap[str, object]() as after:
                after.spawn("k", value_of, 2, name="after")
                await after.join_all()
            await before.join_all()
        finally:
            remove_instrument(rec)
        before.spawn(value_of, 3, name="unseen")
        await before.join_all()
    remove_instrument(rec)  # not registered any more: nothing happens
    names = {event[1] for event in rec.events}
    assert names == {"before", "after"}
    assert rec.events.count(("spawned", "before")) == 1


async def test_a_set_keeps_its_own_instrument_after_process_wide_removal() -> None:
    """S31: removing a process-wide instrument leaves a set's own registration."""
    rec = Recorder()
    js = JoinSet[object]()
    js.add_instrument(rec)  # before the block: fine
    add_instrument(rec)
    remove_instrument(rec)
    async with js:
        js.spawn(value_of, 1, name="own")
        await js.join_all()
        js.remove_instrument(rec)
        js.remove_instrument(rec)  # absent: nothing happens
        js.spawn(value_of, 2, name="after")
        await js.join_all()
    assert {event[1] for event in rec.events} == {"own"}


async def test_a_duck_typed_instrument_with_one_hook() -> None:
    """S31: any object with some of the hooks works; only those are called."""
    kinds: list[tuple[str, float]] = []

    class OnlyFinished:
        def task_finished(self, joinset: Any, handle: Any, kind: str, run_time: float) -> None:
            kinds.append((kind, run_time))

    class OnlySpawned:
        def task_spawned(self, joinset: Any, handle: Any) -> None:
            kinds.append(("spawned", 0.0))

    only_finished = OnlyFinished()
    async with JoinSet[object]() as js:
        js.add_instrument(only_finished)
        js.add_instrument(only_finished)  # twice: once
        js.spawn(value_of, 1)
        await js.join_all()
    async with JoinSet[object]() as js:
        js.add_instrument(OnlySpawned())
        js.spawn(value_of, 1)
        await js.join_all()
    assert [kind for kind, _ in kinds] == ["succeeded", "spawned"]
    assert kinds[0][1] >= 0


async def test_an_object_without_hooks_is_refused() -> None:
    """S31: an instrument with none of the hooks is a TypeError naming the fix."""
    msg = (
        r"^JoinSet\.add_instrument\(\) was given an instrument of type object with none of "
        r"the hooks task_spawned, task_started, task_finished, task_handed_out, task_aborted; "
        r"define at least one of them \(override it in a subclass of anyio_joinset\.Instrument, "
        r"or give the object a method of that name\)\.$"
    )
    async with JoinSet[object]() as js:
        with pytest.raises(TypeError, match=msg):
            js.add_instrument(object())
    with pytest.raises(
        TypeError,
        match=r"^anyio_joinset\.add_instrument\(\) was given an instrument of type Instrument ",
    ):
        add_instrument(Instrument())


@pytest.mark.parametrize("where", ["set", "process"])
async def test_a_hook_that_raises_is_logged_and_removed(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    """S32: a raising hook is logged at ERROR and removed; the set carries on."""

    class Broken(Instrument):
        calls = 0

        def task_started(self, joinset: Any, handle: Any) -> None:
            Broken.calls += 1
            raise RuntimeError("hook bug")

    rec = Recorder()
    broken = Broken()
    async with JoinSet[int]() as js:
        js.add_instrument(rec)
        if where == "set":
            js.add_instrument(broken)
        else:
            add_instrument(broken)
        try:
            for i in range(3):
                js.spawn(value_of, i)  # type: ignore[arg-type]
            with caplog.at_level(logging.ERROR, logger="anyio_joinset"):
                values = sorted(await js.join_all())
        finally:
            remove_instrument(broken)
    assert values == [0, 1, 2]
    assert Broken.calls == 1
    (record,) = caplog.records
    assert re.match(
        r"^Instrument <.*Broken object at 0x[0-9a-f]+> raised in task_started and was "
        r"removed; the JoinSet carries on$",
        record.getMessage(),
    )
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "hook bug"
    assert [e[0] for e in rec.events].count("started") == 3


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_uncaptured_exception_finishes_as_uncaptured(backend: str) -> None:
    """S31 with S6: a task ended by KeyboardInterrupt & co. finishes as "uncaptured"."""
    rec = Recorder()

    async def main() -> None:
        async with JoinSet[object]() as js:
            js.add_instrument(rec)
            js.spawn(fail_with, SystemExit(), name="exit")
            await anyio.sleep_forever()

    with pytest.raises((SystemExit, BaseExceptionGroup)):
        anyio.run(main, backend=backend)
    assert ("finished", "exit", "uncaptured") in rec.events


class Interrupt(BaseException):
    """A BaseException of the user's own, neither an Exception nor KeyboardInterrupt."""


HOOKS = ["task_spawned", "task_started", "task_finished", "task_handed_out", "task_aborted"]


def raising(hook: str, exc: type[BaseException]) -> Instrument:
    """An instrument whose one hook raises ``exc`` every time it is called."""

    def hook_raises(self: Any, *_: object) -> None:
        self.calls += 1
        raise exc(hook)

    instrument: Any = type("Raising", (Instrument,), {hook: hook_raises})()
    instrument.calls = 0
    return instrument  # type: ignore[no-any-return]


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, Interrupt])
@pytest.mark.parametrize("hook", HOOKS)
def test_a_hook_that_raises_a_base_exception_is_caught(
    hook: str, exc: type[BaseException], backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """S32: a hook raising KeyboardInterrupt & co. is logged and removed, as in Trio.

    Its own event loop (on every loop of BACKENDS), so that a BaseException let
    out of the loop fails this test instead of stopping pytest.
    """
    raiser = raising(hook, exc)
    rec = Recorder()
    outcomes: list[tuple[str, bool]] = []

    async def main() -> None:
        # A set left waiting for a task nobody cancels fails instead of hanging.
        with anyio.fail_after(10):
            await instrumented()
        assert not snapshot_sets()

    async def instrumented() -> None:
        async with JoinSet[object]() as js:
            js.add_instrument(raiser)
            js.add_instrument(rec)
            js.spawn(value_of, 1, name="ok")
            slow = js.spawn(forever, name="slow")
            await anyio.wait_all_tasks_blocked()
            slow.abort()
            for _ in range(2):
                outcome = await js.join_next()
                assert outcome is not None
                outcomes.append((outcome.name, outcome.cancelled()))
            assert len(js) == 0
            assert js.stats().joined == 2

    with caplog.at_level(logging.ERROR, logger="anyio_joinset"):
        try:
            run(main, backend=backend)
        except BaseException as error:  # the test must fail, not stop pytest
            pytest.fail(f"the set let the hook's exception out: {error!r}")
    assert sorted(outcomes) == [("ok", False), ("slow", True)]
    assert raiser.calls == 1  # type: ignore[attr-defined]
    (record,) = caplog.records
    assert record.getMessage().startswith("Instrument <")
    assert record.exc_info is not None
    assert type(record.exc_info[1]) is exc
    names = Counter(event[0] for event in rec.events)
    assert names == {"spawned": 2, "started": 2, "finished": 2, "handed_out": 2, "aborted": 1}


async def test_a_duck_with_hooks_as_attributes() -> None:
    """S31: hooks held as instance attributes count; an attribute that is None does not."""
    spawned: list[str] = []
    duck = types.SimpleNamespace(task_spawned=lambda _, handle: spawned.append(handle.name))
    async with JoinMap[str, object]() as jm:
        jm.add_instrument(duck)
        jm.spawn("k", value_of, 1, name="seen")
        await jm.join_all()
    assert spawned == ["seen"]
    with pytest.raises(TypeError, match=r"^anyio_joinset\.add_instrument\(\) was given an "):
        add_instrument(types.SimpleNamespace(task_spawned=None))


async def test_a_subclass_that_overrides_nothing_is_told_what_it_lacks() -> None:
    """S31: an Instrument subclass with no hook of its own: the message names the hooks."""

    class Nothing(Instrument):
        pass

    msg = (
        r"^JoinMap\.add_instrument\(\) was given an instrument of type Nothing with none of "
        r"the hooks task_spawned, .*; define at least one of them \(override it in a subclass"
    )
    async with JoinMap[str, object]() as jm:
        with pytest.raises(TypeError, match=msg):
            jm.add_instrument(Nothing())


async def test_public_names_annotate_an_override() -> None:
    """S31: AnyJoinSet and FinishKind are the public types of the hooks' parameters."""
    seen: list[tuple[bool, str]] = []

    class Typed(Instrument):
        def task_finished(
            self, joinset: AnyJoinSet, handle: JoinHandle[Any], kind: FinishKind, run_time: float
        ) -> None:
            seen.append((isinstance(joinset, JoinSet), kind))

    async with JoinSet[object]() as js:
        js.add_instrument(Typed())
        js.spawn(value_of, 1)
        await js.join_all()
    assert seen == [(True, "succeeded")]


async def test_registered_twice_over_gets_each_event_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S31: an instrument both process-wide and on the set is called once; S32: logged once."""

    class Flaky(Instrument):
        calls = 0

        def task_spawned(self, joinset: Any, handle: Any) -> None:
            Flaky.calls += 1
            raise ValueError("flaky")

    rec, flaky = Recorder(), Flaky()
    add_instrument(rec)
    add_instrument(flaky)
    try:
        async with JoinSet[object]() as js:
            js.add_instrument(rec)
            js.add_instrument(flaky)
            with caplog.at_level(logging.ERROR, logger="anyio_joinset"):
                js.spawn(value_of, 1, name="once")
                js.spawn(value_of, 2, name="twice")
            await js.join_all()
    finally:
        remove_instrument(rec)
        remove_instrument(flaky)
    counts = Counter(rec.events)
    assert set(counts.values()) == {1}
    assert len(counts) == 8
    assert Flaky.calls == 1
    assert len(caplog.records) == 1


async def test_registering_from_another_thread_is_refused() -> None:
    """S2, S31: add_instrument and remove_instrument belong to the set's event loop."""
    rec = Recorder()
    async with JoinSet[object]() as js:
        for method in (js.add_instrument, js.remove_instrument):
            name = method.__name__
            msg = (
                rf"^JoinSet\.{name}\(\) was called from another thread or event loop than the "
                r"one that entered the JoinSet \(S2\); call it from that event loop"
            )
            with pytest.raises(RuntimeError, match=msg):
                await anyio.to_thread.run_sync(method, rec)
        js.spawn(value_of, 1)
        await js.join_all()
    assert rec.events == []


async def test_registering_after_the_block_is_refused() -> None:
    """S31: instruments are registered before or inside the block; after it, RuntimeError."""
    rec = Recorder()
    async with JoinMap[str, object]() as jm:
        pass
    for method in (jm.add_instrument, jm.remove_instrument):
        msg = (
            rf"^This JoinMap is closed; call {method.__name__}\(\) before or inside its "
            r"async with block\.$"
        )
        with pytest.raises(RuntimeError, match=msg):
            method(rec)


async def test_the_faces_task_handle_cancel_is_an_abort() -> None:
    """S31 with S25: the task-group face's TaskHandle.cancel() calls task_aborted once."""
    seen: list[tuple[str, bool]] = []

    class Aborts(Recorder):
        def task_aborted(self, joinset: Any, handle: JoinHandle[Any]) -> None:
            seen.append((handle.name, handle.aborted))
            super().task_aborted(joinset, handle)

    rec = Aborts()
    async with JoinSet[object]() as js:
        js.add_instrument(rec)
        task = js.task_group.create_task(forever(), name="face")
        await anyio.wait_all_tasks_blocked()
        task.cancel()
        task.cancel()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.cancelled()
        js.task_group.start_soon(value_of, 1, name="other")
        await js.join_all()
    assert seen == [("face", True)]
    face = [event for event in rec.events if event[1] == "face"]
    assert face == [
        ("spawned", "face"),
        ("started", "face"),
        ("aborted", "face"),
        ("finished", "face", "cancelled"),
        ("handed_out", "face"),
    ]
    assert ("aborted", "other") not in rec.events


@pytest.mark.parametrize("combinator", ["join_all", "first_success"])
async def test_an_outcome_put_back_is_handed_out_once(combinator: str) -> None:
    """S31 with S11, S19: an outcome a cancelled combinator put back is reported once."""
    rec = Recorder()
    release = anyio.Event()
    async with JoinSet[object]() as js:
        js.add_instrument(rec)
        join = js.join_all if combinator == "join_all" else js.first_success
        js.spawn(fail_with, ValueError("early"), name="early")
        js.spawn(release.wait, name="late")
        await anyio.wait_all_tasks_blocked()
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(join, fail_fast=False) if combinator == "join_all" else join)
            await anyio.wait_all_tasks_blocked()  # it took "early" and waits for "late"
            assert js.stats().finished == 0
            tg.cancel_scope.cancel()
        assert js.stats().finished == 1  # put back
        release.set()
        if combinator == "join_all":
            with pytest.raises(ExceptionGroup):
                await js.join_all(fail_fast=False)
        else:
            assert await js.first_success() is None
    handed = [event[1] for event in rec.events if event[0] == "handed_out"]
    assert sorted(handed) == ["early", "late"]


async def test_every_way_out_hands_an_outcome_out_once() -> None:
    """S31: task_handed_out fires once per outcome that leaves, taken or discarded."""
    rec = Recorder()
    async with JoinMap[str, object]() as jm:
        jm.add_instrument(rec)
        for name in ("joined", "tried", "iterated", "all", "first", "shut"):
            jm.spawn(name, value_of, name, name=name)
            await anyio.wait_all_tasks_blocked()
            if name == "joined":
                await jm.join_next()
            elif name == "tried":
                assert jm.try_join_next() is not None
            elif name == "iterated":
                async for _ in jm:
                    pass
            elif name == "all":
                await jm.join_all()
            elif name == "first":
                await jm.first_success()
            else:
                await jm.shutdown()
        detached = jm.spawn("detached", value_of, 0, name="detached")
        await anyio.wait_all_tasks_blocked()
        detached.detach()
        for name in ("detach_all", "replaced"):
            jm.spawn(name, value_of, 0, name=name)
        await anyio.wait_all_tasks_blocked()
        jm.detach_all()
        jm.spawn("replaced", value_of, 0, name="old")
        await anyio.wait_all_tasks_blocked()
        jm.spawn("replaced", value_of, 0, name="new")
        jm.spawn("left", value_of, 0, name="left")
        await anyio.wait_all_tasks_blocked()
    handed = Counter(event[1] for event in rec.events if event[0] == "handed_out")
    finished = Counter(event[1] for event in rec.events if event[0] == "finished")
    assert handed == finished
    assert set(handed.values()) == {1}
    assert len(handed) == 12


async def test_a_hook_may_abort_tasks() -> None:
    """S31: a hook may abort tasks; the events that causes are reported at once."""

    class Aborting(Recorder):
        def task_started(self, joinset: Any, handle: JoinHandle[Any]) -> None:
            super().task_started(joinset, handle)
            if handle.name == "stopped":
                handle.abort()

        def task_handed_out(self, joinset: Any, outcome: Outcome[Any]) -> None:
            super().task_handed_out(joinset, outcome)
            joinset.abort_all()

    rec = Aborting()
    async with JoinSet[object]() as js:
        js.add_instrument(rec)
        js.spawn(forever, name="stopped")
        first = await js.join_next()
        assert first is not None
        assert first.cancelled()
        js.spawn(value_of, 1, name="quick")
        js.spawn(forever, name="rest")
        await anyio.wait_all_tasks_blocked()
        outcomes = [outcome async for outcome in js]
    assert sorted((o.name, o.cancelled()) for o in outcomes) == [("quick", False), ("rest", True)]
    assert rec.events[:4] == [
        ("spawned", "stopped"),
        ("started", "stopped"),
        ("aborted", "stopped"),
        ("finished", "stopped", "cancelled"),
    ]
    assert rec.events.count(("aborted", "rest")) == 1


class RunTimes(Instrument):
    """Records which tasks started and each one's run time as task_finished reports it (S31)."""

    def __init__(self) -> None:
        self.started: set[int] = set()
        self.run_times: dict[int, float] = {}

    def task_started(self, joinset: object, handle: JoinHandle[Any]) -> None:
        self.started.add(handle.id)

    def task_finished(
        self, joinset: object, handle: JoinHandle[Any], kind: str, run_time: float
    ) -> None:
        self.run_times[handle.id] = run_time


@pytest.mark.parametrize("rate", [None, (1, 60.0)])
async def test_run_time_of_a_task_aborted_after_its_slot_counts_from_its_spawn(
    rate: tuple[int, float] | None,
) -> None:
    """S31: a task given a slot (and, under rate, waiting for its turn) but aborted
    before its body ran never started: its run time counts from its spawn."""
    gate = Gate()
    times = RunTimes()
    async with JoinSet[object](limit=1, rate=rate) as js:
        js.add_instrument(times)
        js.spawn(gate.wait)  # takes the slot (and the first rate turn)
        later = js.spawn(value_of, 1)
        await anyio.sleep(0.05)  # time to count: at least this since its spawn
        gate.release.set()
        first = await js.join_next()
        assert first is not None
        later.abort()  # it has the slot now; under rate it waits for its turn
        last = await js.join_next()
        assert last is not None
        assert last.cancelled()
    # Without rate, Trio may run its body's first step before join_next returns
    # (a batch runs in any order): then it started, and its run time is its own.
    if later.id not in times.started:
        assert times.run_times[later.id] >= 0.05
    else:
        assert rate is None
