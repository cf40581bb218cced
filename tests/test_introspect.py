"""Snapshots of a set and the dump of every set (API.md S28-S30), on every backend."""

from __future__ import annotations

import concurrent.futures
import fractions
import gc
import inspect
import io
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import anyio_joinset
from anyio_joinset import (
    Instrument,
    JoinMap,
    JoinSet,
    TaskStatus,
    dump_on_signal,
    dump_sets,
    snapshot_sets,
)
from anyio_joinset._introspect import live_engines
from anyio_joinset.backends import BACKENDS as LOOP_NAMES
from helpers import forever, unwind_after, value_of


def nested(qualname: str) -> str:
    """A nested function's name as a snapshot gives it: qualified from Python 3.11 on,
    bare on 3.10 (whose code objects have no qualified name)."""
    return qualname if sys.version_info >= (3, 11) else qualname.rpartition(".")[2]


def line_of(func: object, marker: str) -> int:
    """The line of ``func``'s source that carries ``# <marker>``."""
    lines, first = inspect.getsourcelines(func)  # type: ignore[arg-type]
    return first + next(i for i, line in enumerate(lines) if f"# {marker}" in line)


async def wait_for_other(mine: anyio.Event, other: anyio.Event) -> None:
    await other.wait()  # waits-for-other
    mine.set()


async def wait_for_lock(lock: anyio.Lock) -> None:
    async with lock:  # waits-for-lock
        pass


async def test_stuck_tasks_are_named_with_function_and_line() -> None:
    """S28: a set hung on purpose shows each stuck task's function and line."""
    lock = anyio.Lock()
    a_done, b_done = anyio.Event(), anyio.Event()
    async with JoinSet[None]() as js:
        await lock.acquire()
        js.spawn(wait_for_other, a_done, b_done, name="a")
        js.spawn(wait_for_other, b_done, a_done, name="b")
        js.spawn(wait_for_lock, lock, name="locked")
        await anyio.wait_all_tasks_blocked()
        snap = js.snapshot()
        by_name = {task.name: task for task in snap.tasks}
        other = line_of(wait_for_other, "waits-for-other")
        for name in ("a", "b"):
            top = by_name[name].stack[0]
            assert (top.function, top.line) == ("wait_for_other", other)
            assert top.file == __file__
            assert by_name[name].waiting_on is not None
            assert by_name[name].waiting_on.startswith("anyio.Event at 0x")
        locked = by_name["locked"]
        assert (locked.stack[0].function, locked.stack[0].line) == (
            "wait_for_lock",
            line_of(wait_for_lock, "waits-for-lock"),
        )
        assert locked.waiting_on is not None
        assert locked.waiting_on.startswith("anyio.Lock at 0x")
        assert all(task.state == "running" for task in snap.tasks)
        text = dump_sets()
        assert f"test_introspect.py:{other}" in text
        assert re.search(r"^  2 tasks \(ids 1-2\) running, the oldest spawned", text, re.MULTILINE)
        locked_line = r"^  task 3 'locked' running, spawned .* at wait_for_lock -> "
        assert re.search(locked_line, text, re.MULTILINE)
        js.abort_all()
        lock.release()
        outcomes = [outcome async for outcome in js]
    assert all(outcome.cancelled() for outcome in outcomes)


async def test_every_state_of_a_task() -> None:
    """S28: waiting for a slot or a rate turn, running, aborting, finished."""
    release = anyio.Event()
    async with JoinSet[object](limit=3, rate=(1, 3600)) as js:
        first = js.spawn(unwind_after, release, name="first")  # takes the only rate turn
        await anyio.wait_all_tasks_blocked()
        js.spawn(forever, name="rate")  # waits an hour for its turn
        js.spawn(forever, name="rate2")
        js.spawn(forever, name="slot")  # beyond limit=3
        await anyio.wait_all_tasks_blocked()
        first.abort()
        await anyio.wait_all_tasks_blocked()
        snap = js.snapshot()
        release.set()  # now: a failed assert below must not leave "first" unwinding forever
        states = {task.name: task.state for task in snap.tasks}
        assert states == {
            "first": "aborting",
            "rate": "waiting_for_rate",
            "rate2": "waiting_for_rate",
            "slot": "waiting_for_slot",
        }
        assert [task.running_for is None for task in snap.tasks] == [False, True, True, True]
        assert all(task.age >= 0 for task in snap.tasks)
        assert snap.length == 4
        assert snap.limit == 3
        await anyio.wait_all_tasks_blocked()
        finished = js.snapshot().tasks[0]
        assert (finished.state, finished.outcome) == ("finished", "cancelled")
        ready_for = js.snapshot().ready_for
        assert ready_for is not None
        assert ready_for >= 0
        assert finished.stack == ()
        js.abort_all()


async def test_outcome_kinds_of_finished_tasks() -> None:
    """S28: a finished task not yet joined shows how it ended."""

    async def fail() -> None:
        raise ValueError

    async def value() -> int:
        return 1

    async with JoinSet[object]() as js:
        js.spawn(fail)
        js.spawn(value)
        await anyio.wait_all_tasks_blocked()
        kinds = [(task.state, task.outcome) for task in js.snapshot().tasks]
        assert kinds == [("finished", "failed"), ("finished", "succeeded")]
        await js.shutdown()


async def test_a_task_not_stepped_yet() -> None:
    """S28: a task spawned a moment ago, not yet run by the event loop, says so."""
    async with JoinSet[None]() as js:
        js.spawn(forever)
        (task,) = js.snapshot().tasks
        assert task.stack == ()
        assert task.awaiting == "not started by the event loop yet"
        assert task.where == "<not started by the event loop yet>"
        js.abort_all()


async def test_a_task_that_takes_its_own_snapshot() -> None:
    """S28: a task's snapshot of its own set shows it running now."""

    async def look(js: JoinSet[object]) -> object:
        return js.snapshot()

    async with JoinSet[object]() as js:
        js.spawn(look, js)
        outcome = await js.join_next()
    assert outcome is not None
    snap = outcome.result()
    assert isinstance(snap, anyio_joinset.SetSnapshot)
    (task,) = snap.tasks
    assert (task.state, task.stack, task.awaiting) == ("running", (), "running now")


async def test_joinmap_snapshot_shows_keys() -> None:
    """S28 with S16: a JoinMap's tasks carry their keys; text and JSON show them."""
    async with JoinMap[str, None]() as jm:
        jm.spawn("alpha", forever)
        jm.spawn("beta", forever)
        await anyio.wait_all_tasks_blocked()
        jm.spawn("beta", forever)  # replaces: the old task is aborted
        snap = jm.snapshot()
        assert snap.face == "JoinMap"
        assert [(t.key, t.state) for t in snap.tasks] == [
            ("alpha", "running"),
            ("beta", "aborting"),
            ("beta", "running"),
        ]
        data = json.loads(dump_sets("json"))
        assert [t["key"] for t in data["sets"][0]["tasks"]] == ["'alpha'", "'beta'", "'beta'"]
        jm.abort_all()


async def test_join_next_waiters_and_feeders_are_listed() -> None:
    """S28: the set's own join_next callers and map() feeders, with their waits."""
    async with JoinSet[None](limit=1) as js:
        js.spawn(forever)
        async with anyio.create_task_group() as tg:
            tg.start_soon(js.join_next)
            await anyio.wait_all_tasks_blocked()
            (waiter,) = js.snapshot().waiters
            assert waiter.kind == "join_next"
            assert waiter.waited is not None
            assert waiter.waited >= 0
            tg.cancel_scope.cancel()
        feed = js.map(lambda _: forever(), range(3))
        async with anyio.create_task_group() as tg:
            tg.start_soon(feed.__anext__)
            await anyio.wait_all_tasks_blocked()
            kinds = sorted((w.kind, w.waited is not None) for w in js.snapshot().waiters)
            assert kinds == [("feeder", True), ("join_next", True)]
            feeder = next(w for w in js.snapshot().waiters if w.kind == "feeder")
            assert any(frame.function == "_Feeding.run" for frame in feeder.stack)
            tg.cancel_scope.cancel()
        await feed.aclose()
        js.abort_all()


async def test_a_thread_task_shows_its_worker_thread() -> None:
    """S28 with S17: a spawn_thread task's snapshot shows where its thread is."""
    entered, release = threading.Event(), threading.Event()

    def blocking() -> None:
        entered.set()
        release.wait()  # in-thread

    async with JoinSet[None]() as js:
        js.spawn_thread(blocking)
        try:  # a failure here must fail the test, not leave the thread blocked
            await anyio.to_thread.run_sync(entered.wait)
            (task,) = js.snapshot().tasks
        finally:
            release.set()
    outermost = task.thread_stack[0]
    expected = nested("test_a_thread_task_shows_its_worker_thread.<locals>.blocking")
    assert outermost.function == expected
    assert outermost.line == line_of(blocking, "in-thread")
    assert task.thread_stack[-1].function == "Condition.wait"  # inside threading.Event.wait
    assert "in its worker thread:" in task_text(task)


async def test_a_task_in_its_own_to_thread_call_shows_the_thread() -> None:
    """S28: a spawned task awaiting anyio.to_thread.run_sync shows that thread's frames too."""
    entered, release = threading.Event(), threading.Event()

    def blocking() -> None:
        entered.set()
        release.wait()  # in-own-thread

    async def offloads() -> None:
        await anyio.to_thread.run_sync(blocking)

    async with JoinSet[None]() as js:
        js.spawn(offloads)
        try:
            await anyio.to_thread.run_sync(entered.wait)
            (task,) = js.snapshot().tasks
        finally:
            release.set()
    outermost = task.thread_stack[0]
    assert outermost.function.endswith(nested("<locals>.blocking"))
    assert outermost.line == line_of(blocking, "in-own-thread")


def task_text(task: anyio_joinset.TaskSnapshot) -> str:
    return "\n".join(str(frame) for frame in task.thread_stack) + "\nin its worker thread:"


async def test_a_thread_task_in_c_code_shows_the_function() -> None:
    """S28 with S17: a thread inside a function written in C shows that function."""
    blocker = threading.Lock()
    blocker.acquire()
    async with JoinSet[bool]() as js:
        js.spawn_thread(blocker.acquire)
        try:
            # Only a thread inside the function holds its (func, args): poll for it.
            while not (found := js.snapshot().tasks[0].thread_stack):
                await anyio.lowlevel.checkpoint()
            text = js.snapshot().format()
        finally:
            blocker.release()
    assert found == (anyio_joinset.StackFrame("lock.acquire", "<C function>", 0, ""),)
    assert "    in its worker thread:\n        lock.acquire (<C function>:0)" in text


async def test_a_snapshot_while_the_collector_frees_sets() -> None:
    """
    S28/S29: a set freed while a snapshot reads the registry never breaks it.

    A set leaves the registry from a weak reference's callback when it is
    freed, which can happen in the middle of reading it: a collection runs the
    collector's callbacks, and frees whatever they drop. Here a collector
    callback drops one closed set at each collection while the registry is
    read, with a collection every other allocation (and no free list to spare
    one: a full collection empties them). It once failed with "dictionary
    changed size during iteration" in a full run of the suite (Python 3.11).
    """
    holder: list[object] = []
    for _ in range(8):
        async with JoinSet[None]() as dead:
            pass
        holder.append(dead)
    del dead
    dropped = 0

    def drop(phase: str, _info: dict[str, int]) -> None:
        nonlocal dropped
        if phase == "start" and holder and sys._getframe(1).f_code.co_name == "live_engines":
            holder.pop()  # a set freed, and out of the registry
            dropped += 1

    async with JoinSet[None]() as js:
        js.spawn(forever)
        await anyio.wait_all_tasks_blocked()
        threshold = gc.get_threshold()
        gc.collect()
        gc.set_threshold(1)
        gc.callbacks.append(drop)
        try:
            engines = live_engines()
            mine = [s for s in snapshot_sets() if s.tasks]
        finally:
            gc.callbacks.remove(drop)
            gc.set_threshold(*threshold)
        # Sets were freed while the registry was read (before 3.12, in the middle
        # of reading it; from 3.12 on, collections wait for a bytecode's end).
        assert dropped >= 1
        assert js in engines
        assert [len(s.tasks) for s in mine] == [1]
        js.abort_all()


async def test_sets_nest_under_the_task_that_entered_them() -> None:
    """S29: a set entered by a task of another set shows under that task."""
    ready = anyio.Event()

    async def owner() -> None:
        async with JoinSet[None]() as inner:
            for _ in range(3):
                inner.spawn(forever)
            ready.set()
            await inner.join_next()

    async with JoinSet[None]() as outer:
        outer.spawn(owner, name="owner")
        outer.spawn(forever, name="other")
        await ready.wait()
        await anyio.wait_all_tasks_blocked()
        (top,) = [s for s in snapshot_sets() if s.tasks and s.tasks[0].name == "owner"]
        owner_task = top.tasks[0]
        (inner_snap,) = owner_task.sets
        assert [t.state for t in inner_snap.tasks] == ["running"] * 3
        assert [w.kind for w in inner_snap.waiters] == ["join_next"]
        assert outer.snapshot().tasks[0].sets[0].serial == inner_snap.serial
        text = dump_sets()
        assert re.search(r"^      JoinSet #\d+ \[[\w+]+\] open, len=3", text, re.MULTILINE)
        data = json.loads(dump_sets("json"))
        mine = next(s for s in data["sets"] if s["serial"] == top.serial)
        assert len(mine["tasks"][0]["sets"][0]["tasks"]) == 3
        outer.abort_all()


@pytest.mark.deadline(240)
async def test_ten_thousand_identical_tasks_are_one_line() -> None:
    """S29: 10,000 tasks waiting at the same place print as one line with a count."""
    async with JoinSet[None]() as js:
        for _ in range(10_000):
            js.spawn(forever)
        await anyio.wait_all_tasks_blocked()
        text = js.snapshot().format()
        js.abort_all()
    groups = [line for line in text.splitlines() if re.match(r"^  \d+ tasks? ", line)]
    assert len(groups) == 1
    assert groups[0].startswith("  10000 tasks (ids 1-10000) running, the oldest spawned ")


async def test_dump_of_nothing_and_bad_format() -> None:
    """S29: no open set is said plainly; an unknown format is refused."""
    assert dump_sets() == "no open JoinSet or JoinMap"
    assert json.loads(dump_sets("json")) == {"sets": []}
    with pytest.raises(
        ValueError, match=r"^dump_sets\(\) format must be 'text' or 'json', got 'xml'\.$"
    ):
        dump_sets("xml")  # type: ignore[arg-type]


async def test_a_closed_set_leaves_the_dump() -> None:
    """S29: the registry is weak and lists only sets inside their block."""
    async with JoinSet[None]() as js:
        assert len(snapshot_sets()) == 1
    assert snapshot_sets() == ()
    assert js.snapshot().state == "closed"
    assert js.snapshot().tasks == ()


async def test_snapshot_from_another_thread() -> None:
    """S28: a snapshot may be taken from any thread, as len() may (S2)."""
    async with JoinSet[None]() as js:
        js.spawn(forever)
        await anyio.wait_all_tasks_blocked()
        snap = await anyio.to_thread.run_sync(js.snapshot)
        text = await anyio.to_thread.run_sync(dump_sets)
        js.abort_all()
    assert snap.tasks[0].state == "running"
    assert "1 task(s)" in text


async def test_warning_finished_outcomes_nobody_joins() -> None:
    """S30: outcomes finished long ago with nobody joining are a warning."""
    async with JoinSet[int]() as js:
        js.spawn(anyio.sleep, 0)
        await anyio.wait_all_tasks_blocked()
        assert js.snapshot().warnings == ()  # not long ago by the default threshold
        (warning,) = js.snapshot(stale_after=0).warnings
        assert re.match(
            r"^1 finished outcome\(s\) wait to be joined, the set has not been emptied for "
            r"\d+\.\d s, and nobody is joining: call join_next\(\) \(or iterate\) to take "
            r"them\.$",
            warning,
        )
        assert "WARNING: 1 finished outcome(s)" in dump_sets(stale_after=0)
        await js.join_all()
        assert js.snapshot().ready_for is None


async def test_warning_every_task_waits_on_the_same_lock() -> None:
    """S30: a set whose every running task waits on one lock is a warning."""
    lock = anyio.Lock()
    async with JoinSet[None]() as js:
        await lock.acquire()
        for _ in range(3):
            js.spawn(wait_for_lock, lock)
        await anyio.wait_all_tasks_blocked()
        (warning,) = js.snapshot().warnings
        assert re.match(
            r"^every one of its 3 running tasks waits on the same anyio\.Lock at 0x[0-9a-f]+: "
            r"whoever holds it is the one to look at\.$",
            warning,
        )
        js.abort_all()
        lock.release()


async def test_warning_join_next_waiting_while_empty() -> None:
    """S30: join_next waiting while len is 0 (never happens) would be a warning."""
    async with JoinSet[None]() as js:
        js.spawn(forever)
        async with anyio.create_task_group() as tg:
            tg.start_soon(js.join_next)
            await anyio.wait_all_tasks_blocked()
            js._pending = 0  # what S5 rules out, forced to see the warning
            (warning,) = js.snapshot().warnings
            js._pending = 1
            tg.cancel_scope.cancel()
        js.abort_all()
    assert re.match(r"^join_next\(\) waits while len is 0, which must never happen", warning)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_dump_on_signal() -> None:
    """S29: the opt-in SIGUSR1 handler writes the dump; the old handler comes back."""
    out = io.StringIO()
    before = signal.getsignal(signal.SIGUSR1)
    restore = dump_on_signal(file=out)
    try:
        async with JoinSet[None]() as js:
            js.spawn(forever, name="sleeper")
            await anyio.wait_all_tasks_blocked()
            os.kill(os.getpid(), signal.SIGUSR1)
            await anyio.lowlevel.checkpoint()
            js.abort_all()
    finally:
        restore()
    assert signal.getsignal(signal.SIGUSR1) is before
    assert "task 1 'sleeper' running" in out.getvalue()


def test_the_suite_prints_the_dump_when_a_deadline_fails(tmp_path: Path) -> None:
    """S29: conftest.py's deadline failure shows every open set, stuck line included."""
    here = Path(__file__).parent
    for name in ("conftest.py", "explore.py", "helpers.py"):
        shutil.copy(here / name, tmp_path / name)
    (tmp_path / "test_hang.py").write_text(
        "import anyio, pytest\n"
        "from anyio_joinset import JoinSet\n"
        "async def stuck_here(event):\n"
        "    await event.wait()\n"
        "@pytest.mark.deadline(1.0)\n"
        "async def test_hangs():\n"
        "    async with JoinSet() as js:\n"
        "        js.spawn(stuck_here, anyio.Event())\n"
        "        await js.join_next()\n",
        encoding="utf-8",
    )
    result = subprocess.run(  # noqa: S603 - our own test file
        [sys.executable, "-m", "pytest", "-p", "anyio", "-o", "anyio_mode=auto", "-q",
         "-p", "no:cacheprovider", str(tmp_path / "test_hang.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    out = result.stdout
    failed = len(LOOP_NAMES)
    assert f"{failed} failed" in out, out
    assert out.count("did not finish within its 1 s deadline") >= failed
    assert out.count("task 1 'stuck_here' running, spawned") >= failed
    assert f"stuck_here ({tmp_path / 'test_hang.py'}:4)" in out


async def test_a_feeder_inside_an_async_generator_input() -> None:
    """S28: a map() feeder waiting inside its async-generator input shows that generator."""
    more = anyio.Event()

    async def inputs() -> AsyncIterator[int]:
        yield 1
        await more.wait()  # generator-waits

    async with JoinSet[None]() as js:
        feed = js.map(lambda _: anyio.lowlevel.checkpoint(), inputs())
        async with anyio.create_task_group() as tg:
            tg.start_soon(feed.__anext__)
            await anyio.wait_all_tasks_blocked()
            feeder = next(w for w in js.snapshot().waiters if w.kind == "feeder")
            tg.cancel_scope.cancel()
        await feed.aclose()
    names = [frame.function for frame in feeder.stack]
    assert names[0] == "_Feeding.run"
    assert nested("test_a_feeder_inside_an_async_generator_input.<locals>.inputs") in names
    line = next(f.line for f in feeder.stack if f.function.endswith("inputs"))
    assert line == line_of(inputs, "generator-waits")
    assert feeder.waited is None  # not waiting for room: inside its input


async def test_an_adopted_future_ends_the_chain() -> None:
    """S28 with S17: a C-level awaitable (an adopted future's) ends the chain, named."""
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    async with JoinSet[int]() as js:
        js.spawn_future(future)
        await anyio.wait_all_tasks_blocked()
        (task,) = js.snapshot().tasks
        future.set_result(1)
    assert task.stack == ()
    assert task.awaiting == "builtins.coroutine_wrapper"


async def test_a_snapshot_never_touches_the_collector_switch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """S28: a snapshot (from any thread) leaves the process's gc switch alone."""
    flips: list[str] = []
    monkeypatch.setattr(gc, "disable", lambda: flips.append("disable"))
    monkeypatch.setattr(gc, "enable", lambda: flips.append("enable"))
    async with JoinSet[None]() as js:
        js.spawn(forever)
        await anyio.wait_all_tasks_blocked()
        js.snapshot()
        snapshot_sets()
        dump_sets()
        await anyio.to_thread.run_sync(dump_sets)
        js.abort_all()
    assert flips == []


async def test_a_group_with_gaps_in_its_ids() -> None:
    """S29: a group's ids are shown as ranges, shortened when there are many."""
    async with JoinSet[None]() as js:
        for _ in range(6):
            js.spawn(forever)
            js.spawn(wait_for_lock, anyio.Lock())
        await anyio.wait_all_tasks_blocked()
        text = js.snapshot().format()
        js.abort_all()
    assert "  6 tasks (ids 1, 3, ..., 11) running" in text
    assert "  6 tasks (ids 2, 4, ..., 12) finished, not joined (succeeded)" in text


async def test_two_thread_tasks_each_with_its_thread() -> None:
    """S28 with S17: two thread tasks in one snapshot, each with its own thread."""
    entered = [threading.Event(), threading.Event()]
    release = threading.Event()

    def blocking(i: int) -> None:
        entered[i].set()
        release.wait()

    async with JoinSet[None]() as js:
        js.spawn_thread(blocking, 0)
        js.spawn_thread(blocking, 1)
        for event in entered:
            await anyio.to_thread.run_sync(event.wait)
        tasks = js.snapshot().tasks
        release.set()
    assert [t.thread_stack[0].function.rsplit(".", 1)[-1] for t in tasks] == ["blocking"] * 2


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_dump_on_another_signal() -> None:
    """S29: dump_on_signal takes the signal to use (Windows: required)."""
    out = io.StringIO()
    restore = dump_on_signal(signal.SIGUSR2, file=out)
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
        await anyio.lowlevel.checkpoint()
    finally:
        restore()
    assert out.getvalue() == "no open JoinSet or JoinMap\n"


async def test_a_task_that_waited_for_a_slot_runs_since_it_got_one() -> None:
    """S28 with S14: running_for counts from the slot, age from the spawn."""
    release = anyio.Event()
    async with JoinSet[None](limit=1) as js:
        js.spawn(release.wait)
        js.spawn(forever, name="second")
        await anyio.wait_all_tasks_blocked()
        between = time.monotonic()
        release.set()
        await anyio.wait_all_tasks_blocked()
        second = next(t for t in js.snapshot().tasks if t.name == "second")
        js.abort_all()
    assert second.state == "running"
    assert second.running_for is not None
    assert second.running_for < second.age  # spawned before `between`, started after
    assert between > 0


# -- every instant of a task (S28): hooks, other threads ---------------------------


class Looker(Instrument):
    """Takes a snapshot and both dumps in every hook; records what it saw or raised."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str | None]] = []
        self.errors: list[BaseException] = []

    def look(self, hook: str, joinset: Any, task_id: int) -> None:
        try:
            snap = joinset.snapshot()
            dump_sets()
            dump_sets("json")
            snap.format()
        except Exception as exc:  # recorded: a raising hook is only logged
            self.errors.append(exc)
            return
        state = next((t.state for t in snap.tasks if t.id == task_id), None)
        self.seen.append((hook, task_id, state))

    def task_spawned(self, joinset: Any, handle: Any) -> None:
        self.look("spawned", joinset, handle.id)

    def task_started(self, joinset: Any, handle: Any) -> None:
        self.look("started", joinset, handle.id)

    def task_finished(self, joinset: Any, handle: Any, *_: object) -> None:
        self.look("finished", joinset, handle.id)

    def task_handed_out(self, joinset: Any, outcome: Any) -> None:
        self.look("handed_out", joinset, outcome.id)

    def task_aborted(self, joinset: Any, handle: Any) -> None:
        self.look("aborted", joinset, handle.id)


async def starts(task_status: TaskStatus[int]) -> None:
    task_status.started(1)
    await anyio.sleep_forever()


async def test_a_snapshot_from_inside_every_hook() -> None:
    """S28, S31: a snapshot taken inside any hook, at any step of a task's life, never raises."""
    looker = Looker()
    release = anyio.Event()
    async with JoinSet[object](limit=2) as js:
        js.add_instrument(looker)
        js.spawn(release.wait, name="first")
        js.spawn(forever, name="second")
        js.spawn(value_of, 3, name="queued")  # waits for a slot
        await anyio.wait_all_tasks_blocked()
        release.set()  # first ends: queued gets its slot
        await js.join_next()
        await js.start(starts)
        js.abort_all()
        [outcome async for outcome in js]
    assert looker.errors == []
    seen = {(hook, task_id): state for hook, task_id, state in looker.seen}
    assert seen["spawned", 1] == "running"  # under the limit: it starts at once
    assert seen["spawned", 3] == "waiting_for_slot"
    assert seen["started", 1] == "running"
    assert seen["started", 4] == "starting"  # start(): before started()
    assert seen.get(("finished", 1), "finished") == "finished"
    assert seen["aborted", 2] == "aborting"


async def test_a_snapshot_from_the_spawn_hook_of_a_rate_set() -> None:
    """S28 with S18: inside task_spawned of a set with a rate, the task waits for its turn."""
    looker = Looker()
    async with JoinSet[object](rate=(1, 3600)) as js:
        js.add_instrument(looker)
        js.spawn(forever)  # takes the only turn
        await anyio.wait_all_tasks_blocked()
        js.spawn(forever)
        await anyio.wait_all_tasks_blocked()
        js.abort_all()
    assert looker.errors == []
    seen = {(hook, task_id): state for hook, task_id, state in looker.seen}
    assert seen["spawned", 1] == seen["spawned", 2] == "waiting_for_rate"
    assert seen["started", 1] == "running"


async def test_a_snapshot_of_mixed_instants() -> None:
    """S28: what a snapshot from another thread may read mid-change gives no error."""
    async with JoinSet[int]() as js:
        done = js.spawn(value_of, 1)
        running = js.spawn(forever)
        await anyio.wait_all_tasks_blocked()
        outcome = await js.join_next()
        assert outcome is not None
        # A handle handed out after the thread copied the stream's buffer.
        js._send.send_nowait(done)
        snap = js.snapshot()
        js._receive.receive_nowait()
        assert [t.id for t in snap.tasks] == [running.id]
        # A task finished after the thread copied _live: listed once, finished.
        kind, running._kind = running._kind, 0
        js._send.send_nowait(running)
        snap = js.snapshot()
        js._receive.receive_nowait()
        running._kind = kind
        assert [(t.id, t.state) for t in snap.tasks] == [(running.id, "finished")]
        # A map() feeder whose task is still being made (as eager asyncio runs it).
        more = anyio.Event()

        async def inputs() -> AsyncIterator[int]:
            yield 1
            await more.wait()

        feed = js.map(lambda _: forever(), inputs())
        async with anyio.create_task_group() as tg:
            tg.start_soon(feed.__anext__)
            await anyio.wait_all_tasks_blocked()
            feeding = feed._feeding
            task, feeding.task = feeding.task, None
            (feeder,) = [w for w in js.snapshot().waiters if w.kind == "feeder"]
            feeding.task = task
            tg.cancel_scope.cancel()
        await feed.aclose()
        assert feeder.stack == ()
        js.abort_all()


@pytest.mark.deadline(120)
async def test_snapshots_from_a_thread_while_the_set_churns() -> None:
    """S28: snapshots and dumps from another thread, while tasks come and go, never raise."""
    stop = threading.Event()
    errors: list[BaseException] = []
    calls = 0

    def watch(js: JoinSet[object]) -> None:
        nonlocal calls
        while not stop.is_set():
            try:
                js.snapshot()
                dump_sets("json" if calls % 2 else "text")
            except Exception as exc:  # what this test looks for
                errors.append(exc)
            calls += 1

    # A short switch interval makes the two threads trade the GIL often, so the
    # snapshots land at many instants of the loop's work; with the default 5 ms the
    # loop waits a whole interval each time it takes the GIL back after a syscall
    # (asyncio's debug mode stats a file per task created): 45 s instead of 1 s.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        async with JoinSet[object](limit=20) as js:
            watcher = threading.Thread(target=watch, args=(js,))
            watcher.start()
            try:
                for _ in range(100):
                    for i in range(30):
                        js.spawn(value_of, i)
                    await js.join_all()
            finally:
                stop.set()
                await anyio.to_thread.run_sync(watcher.join)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert calls > 0


async def test_a_task_just_spawned_runs_since_its_spawn() -> None:
    """S28: a task spawned with no slot or rate to wait for counts as started at its spawn."""
    async with JoinSet[None]() as js:
        js.spawn(forever)
        (task,) = js.snapshot().tasks
        js.abort_all()
    assert task.state == "running"
    assert task.running_for == task.age


async def test_a_start_task_before_started_is_starting() -> None:
    """S28 with S21: a start() task is "starting" until started(), out of len, then running."""
    ready = anyio.Event()
    seen: list[anyio_joinset.SetSnapshot] = []

    async def slow_start(js: JoinSet[object], task_status: TaskStatus[None]) -> None:
        seen.append(js.snapshot())
        await ready.wait()
        task_status.started()
        await anyio.sleep_forever()

    async with JoinSet[object]() as js:
        async with anyio.create_task_group() as tg:
            tg.start_soon(js.start, slow_start, js)
            await anyio.wait_all_tasks_blocked()
            (before,) = js.snapshot().tasks
            ready.set()
        (after,) = js.snapshot().tasks
        js.abort_all()
    assert (before.state, before.detached, seen[0].length) == ("starting", True, 0)
    assert before.running_for is not None
    assert before.stack[0].function.endswith("slow_start")
    assert "starting (start() waits for its started())" in seen[0].format()
    assert (after.state, after.detached) == ("running", False)


async def test_the_rate_turn_reads_the_same_on_every_backend() -> None:
    """S28, S15: a task waiting for its rate turn shows the same on every backend."""
    async with JoinSet[None](rate=(1, 3600)) as js:
        js.spawn(forever)  # takes the only turn
        await anyio.wait_all_tasks_blocked()
        js.spawn(forever)
        await anyio.wait_all_tasks_blocked()
        first, second = js.snapshot().tasks
        js.abort_all()
    assert first.state == "running"
    assert (second.state, second.stack, second.awaiting) == ("waiting_for_rate", (), "rate turn")
    assert second.where == "<rate turn>"
    assert second.running_for is None


async def test_an_aborted_task_in_its_rate_turn() -> None:
    """S28 with S18: a task aborted while it waits for its rate turn never started its body."""
    seen: list[anyio_joinset.TaskSnapshot] = []

    class Watch(Instrument):
        def task_aborted(self, joinset: Any, handle: Any) -> None:
            seen.extend(t for t in joinset.snapshot().tasks if t.id == handle.id)

    async with JoinSet[None](rate=(1, 3600)) as js:
        js.add_instrument(Watch())
        js.spawn(forever)  # takes the only turn
        await anyio.wait_all_tasks_blocked()
        waiting = js.spawn(forever)
        await anyio.wait_all_tasks_blocked()
        waiting.abort()  # inside the hook: aborted, still in its rate wait
        js.abort_all()
    aborted = seen[0]
    assert (aborted.state, aborted.awaiting, aborted.running_for) == ("aborting", "rate turn", None)


async def test_a_follow_waiter_is_not_a_join_next() -> None:
    """S28, S30 with S22: a follow() waiting on an empty set is a "follow" waiter, no warning."""
    async with JoinSet[int]() as js:

        async def follower() -> None:
            async for _ in js.follow():
                pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(follower)
            await anyio.wait_all_tasks_blocked()
            snap = js.snapshot(stale_after=0)
            text = dump_sets()
            tg.cancel_scope.cancel()
    assert [w.kind for w in snap.waiters] == ["follow"]
    assert snap.warnings == ()
    assert re.search(r"^  follow waiting for \d+\.\d s$", text, re.MULTILINE)


def loop_name(anyio_backend: tuple[str, dict[str, Any]]) -> str:
    """The name in anyio_joinset.backends.BACKENDS of the loop the test runs on."""
    backend, options = anyio_backend
    candidates = sorted(LOOP_NAMES.items(), key=lambda item: -len(item[1][1]))
    return next(
        name
        for name, (kind, wanted) in candidates
        if kind == backend and all(options.get(k) == v for k, v in wanted.items())
    )


async def test_the_dump_names_the_loop_as_backends_does(
    anyio_backend: tuple[str, dict[str, Any]],
) -> None:
    """S29: a set's backend is its loop's name in BACKENDS (asyncio+uvloop, asyncio+eager)."""
    async with JoinSet[None]() as js:
        snap = js.snapshot()
        text = dump_sets()
    name = loop_name(anyio_backend)
    assert snap.backend == name
    assert text.startswith(f"JoinSet #{snap.serial} [{name}] open")


# -- stale_after (S30) and the signal handler (S29): bad input ------------------------


async def test_stale_after_is_checked_at_the_call() -> None:
    """S3, S30: stale_after is a number of seconds >= 0, checked by every call that takes it."""
    async with JoinSet[None]() as js, JoinMap[str, None]() as jm:
        calls: list[tuple[str, Any]] = [
            (r"JoinSet\.snapshot\(\)", js.snapshot),
            (r"JoinMap\.snapshot\(\)", jm.snapshot),
            (r"snapshot_sets\(\)", snapshot_sets),
            (r"dump_sets\(\)", dump_sets),
        ]
        for where, call in calls:
            for bad, name in (("5", "str"), (None, "NoneType"), (True, "bool")):
                with pytest.raises(
                    TypeError,
                    match=rf"^{where} stale_after must be a number of seconds, got {name}\.$",
                ):
                    call(stale_after=bad)
            for bad in (-1, math.nan):
                with pytest.raises(
                    ValueError,
                    match=rf"^{where} stale_after must be at least 0 seconds, got {bad!r}\.$",
                ):
                    call(stale_after=bad)
            call(stale_after=fractions.Fraction(1, 2))
            call(stale_after=math.inf)
            call(stale_after=0)


class Unprintable:
    """A key whose repr raises."""

    def __repr__(self) -> str:
        raise RuntimeError


async def test_a_key_whose_repr_raises_is_shown_as_such() -> None:
    """S29: a key whose __repr__ raises shows as <repr failed: ...> in every form of the dump."""
    async with JoinMap[object, None]() as jm:
        jm.spawn(Unprintable(), forever)
        await anyio.wait_all_tasks_blocked()
        text, data, own = dump_sets(), json.loads(dump_sets("json")), jm.snapshot().format()
        jm.abort_all()
    assert "key=<repr failed: RuntimeError>" in text
    assert "key=<repr failed: RuntimeError>" in own
    assert data["sets"][0]["tasks"][0]["key"] == "<repr failed: RuntimeError>"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_dump_on_signal_checks_its_arguments() -> None:
    """S3, S29: a bad signal, file or thread is refused at the call, naming the fix."""
    before = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(
        TypeError,
        match=r"^dump_on_signal\(\) file must have a write\(\) method, such as sys\.stderr or a "
        r"file opened for writing text, got str\.$",
    ):
        dump_on_signal(file="/tmp/dump.txt")  # type: ignore[arg-type]  # noqa: S108
    for bad, name in ((1.5, "float"), (True, "bool"), ("SIGUSR1", "str")):
        with pytest.raises(
            TypeError,
            match=rf"^dump_on_signal\(\) signum must be a signal number such as "
            rf"signal\.SIGUSR1, got {name}\.$",
        ):
            dump_on_signal(bad)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=r"^dump_on_signal\(\) signum must be a signal of this platform, got 99999; pass "
        r"one of signal\.valid_signals\(\), such as signal\.SIGUSR1\.$",
    ):
        dump_on_signal(99999)
    for uncatchable in (signal.SIGKILL, signal.SIGSTOP):
        with pytest.raises(
            ValueError,
            match=rf"^dump_on_signal\(\) signum cannot be {uncatchable.name}, which no handler "
            rf"can catch; pass another signal, such as signal\.SIGUSR1\.$",
        ):
            dump_on_signal(int(uncatchable))
    with pytest.raises(
        ValueError,
        match=r"^dump_on_signal\(\) must be called from the main thread, as signal\.signal\(\) "
        r"must; call it at the start of main\(\), or call dump_sets\(\) from this thread\.$",
    ):
        await anyio.to_thread.run_sync(dump_on_signal)
    assert signal.getsignal(signal.SIGUSR1) is before


class WriteOnly:
    """A file with a write() method and nothing else."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_a_dump_that_cannot_be_written_keeps_the_program_running(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """S29: the handler never raises: a failed write goes to stderr, else to the log."""
    broken = io.StringIO()
    broken.close()  # write() raises ValueError
    fallback = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", fallback)
    restore = dump_on_signal(signal.SIGUSR2, file=broken)
    try:
        async with JoinSet[None]() as js:
            js.spawn(forever, name="sleeper")
            await anyio.wait_all_tasks_blocked()
            os.kill(os.getpid(), signal.SIGUSR2)
            await anyio.lowlevel.checkpoint()
            monkeypatch.setattr(sys, "__stderr__", None)  # nowhere to fall back to
            os.kill(os.getpid(), signal.SIGUSR2)
            await anyio.lowlevel.checkpoint()
            monkeypatch.setattr(sys, "__stderr__", broken)  # a fallback that fails too
            with caplog.at_level(logging.ERROR, logger="anyio_joinset"):
                os.kill(os.getpid(), signal.SIGUSR2)
                await anyio.lowlevel.checkpoint()
            js.abort_all()
    finally:
        restore()
    assert fallback.getvalue().startswith(
        "anyio_joinset.dump_on_signal(): could not write the dump: ValueError("
    )
    assert "task 1 'sleeper' running" in fallback.getvalue()
    (record,) = caplog.records
    assert record.getMessage() == "dump_on_signal() could not write the dump"
    out = WriteOnly()  # no flush(): written all the same
    restore = dump_on_signal(signal.SIGUSR2, file=out)  # type: ignore[arg-type]
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
        await anyio.lowlevel.checkpoint()
    finally:
        restore()
    assert out.parts == ["no open JoinSet or JoinMap\n"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_handlers_removed_in_any_order_leave_the_original() -> None:
    """S29: installs stack: removing them in any order puts back the handler from before."""
    before = signal.getsignal(signal.SIGUSR2)
    first = dump_on_signal(signal.SIGUSR2, file=io.StringIO())
    second = dump_on_signal(signal.SIGUSR2, file=io.StringIO())
    first()  # out of order: the second's handler stays until it is removed
    assert signal.getsignal(signal.SIGUSR2) not in (before, None)
    second()
    second()  # again: nothing
    assert signal.getsignal(signal.SIGUSR2) is before
    # Someone else's handler installed over ours stays; ours then does nothing.
    out = io.StringIO()
    third = dump_on_signal(signal.SIGUSR2, file=out)
    ours = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        third()
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN
        assert callable(ours)
        ours(signal.SIGUSR2, None)  # chained to by that other handler
    finally:
        signal.signal(signal.SIGUSR2, before)
    assert out.getvalue() == ""


async def test_an_async_generator_step_not_held_in_a_local() -> None:
    """S28: the chain ends at an asend() whose generator no local of the frame holds."""

    async def ticks() -> AsyncIterator[None]:
        await anyio.sleep_forever()
        yield

    async def steps() -> None:
        held = [ticks()]  # in a list: no local of this frame is the generator itself
        try:
            await held[0].__anext__()  # steps-here
        finally:
            await held[0].aclose()

    async with JoinSet[None]() as js:
        js.spawn(steps)
        await anyio.wait_all_tasks_blocked()
        (task,) = js.snapshot().tasks
        js.abort_all()
    assert task.stack[-1].line == line_of(steps, "steps-here")
    assert task.awaiting == "builtins.async_generator_asend"


async def test_a_task_running_before_it_has_its_task_handle() -> None:
    """S28: a task whose wrapper runs before spawn() returns (eager asyncio) is running now."""
    handles: list[anyio_joinset.JoinHandle[object]] = []

    async def look(js: JoinSet[object]) -> object:
        await anyio.lowlevel.checkpoint()  # spawn() has returned its handle
        (me,) = handles
        task, me._task = me._task, None  # as inside an eager task's first step
        try:
            return js.snapshot()
        finally:
            me._task = task

    async with JoinSet[object](limit=1, rate=100) as js:
        handles.append(js.spawn(look, js))
        outcome = await js.join_next()
    assert outcome is not None
    (task,) = outcome.result().tasks  # type: ignore[attr-defined]
    assert (task.state, task.stack, task.awaiting) == ("running", (), "running now")
    assert task.running_for is not None


def test_qualified_names_on_python_310() -> None:
    """S28: without co_qualname (Python 3.10) a method is named through its self or
    cls, found along the MRO; anything else by its bare name."""
    from anyio_joinset._introspect import _qualname_310  # noqa: PLC0415 - the 3.10 path

    class Base:
        def method(self) -> Any:
            return sys._getframe()

        @classmethod
        def factory(cls) -> Any:
            return sys._getframe()

    class Derived(Base):
        pass

    def not_a_method(self: object) -> Any:  # noqa: ARG001
        return sys._getframe()

    def plain() -> Any:
        return sys._getframe()

    assert _qualname_310(Derived().method()) == Base.method.__qualname__
    assert _qualname_310(Derived.factory()) == Base.factory.__qualname__
    assert _qualname_310(not_a_method(Derived())) == "not_a_method"
    assert _qualname_310(plain()) == "plain"
