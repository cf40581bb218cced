"""Instrumentation hooks (API.md S31-S33), after Trio's Instrument, on every backend."""

from __future__ import annotations

import logging
import re
from typing import Any

import anyio
import pytest

from anyio_joinset import (
    Instrument,
    JoinHandle,
    JoinMap,
    JoinSet,
    Outcome,
    add_instrument,
    remove_instrument,
)
from helpers import BaseExceptionGroup, fail_with, forever, value_of


class Recorder(Instrument):
    """Records every event as a tuple."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def task_spawned(self, joinset: Any, handle: JoinHandle[Any]) -> None:
        self.events.append(("spawned", handle.name))

    def task_started(self, joinset: Any, handle: JoinHandle[Any]) -> None:
        self.events.append(("started", handle.name))

    def task_finished(
        self, joinset: Any, handle: JoinHandle[Any], kind: str, run_time: float
    ) -> None:
        assert run_time >= 0
        self.events.append(("finished", handle.name, kind))

    def task_handed_out(self, joinset: Any, outcome: Outcome[Any]) -> None:
        self.events.append(("handed_out", outcome.name))

    def task_aborted(self, joinset: Any, handle: JoinHandle[Any]) -> None:
        self.events.append(("aborted", handle.name))


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
        js.add_instrument(only_finished)  # type: ignore[arg-type]
        js.add_instrument(only_finished)  # type: ignore[arg-type]  # twice: once
        js.spawn(value_of, 1)
        await js.join_all()
    async with JoinSet[object]() as js:
        js.add_instrument(OnlySpawned())  # type: ignore[arg-type]
        js.spawn(value_of, 1)
        await js.join_all()
    assert [kind for kind, _ in kinds] == ["succeeded", "spawned"]
    assert kinds[0][1] >= 0


async def test_an_object_without_hooks_is_refused() -> None:
    """S31: an instrument with none of the hooks is a TypeError naming the fix."""
    msg = (
        r"^JoinSet\.add_instrument\(\) expects an instrument with at least one of the hooks "
        r"task_spawned, task_started, task_finished, task_handed_out, task_aborted, got "
        r"object; subclass anyio_joinset\.Instrument\.$"
    )
    async with JoinSet[object]() as js:
        with pytest.raises(TypeError, match=msg):
            js.add_instrument(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^anyio_joinset\.add_instrument\(\) expects"):
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
