"""Snapshots of a set and the dump of every set (API.md S28-S30), on every backend."""

from __future__ import annotations

import concurrent.futures
import gc
import inspect
import io
import json
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

import anyio
import pytest

import anyio_joinset
from anyio_joinset import JoinMap, JoinSet, dump_on_signal, dump_sets, snapshot_sets
from anyio_joinset.backends import BACKENDS as LOOP_NAMES
from helpers import forever, unwind_after


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
        await anyio.to_thread.run_sync(entered.wait)
        (task,) = js.snapshot().tasks
        release.set()
    outermost = task.thread_stack[0]
    assert outermost.function == "test_a_thread_task_shows_its_worker_thread.<locals>.blocking"
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
        await anyio.to_thread.run_sync(entered.wait)
        (task,) = js.snapshot().tasks
        release.set()
    outermost = task.thread_stack[0]
    assert outermost.function.endswith("<locals>.blocking")
    assert outermost.line == line_of(blocking, "in-own-thread")


def task_text(task: anyio_joinset.TaskSnapshot) -> str:
    return "\n".join(str(frame) for frame in task.thread_stack) + "\nin its worker thread:"


async def test_a_thread_task_in_c_code_shows_the_function() -> None:
    """S28 with S17: a thread inside a function written in C shows that function."""
    blocker = threading.Lock()
    blocker.acquire()
    async with JoinSet[bool]() as js:
        js.spawn_thread(blocker.acquire)
        # Only a thread inside the function holds its (func, args): poll for it.
        while not (found := js.snapshot().tasks[0].thread_stack):
            await anyio.lowlevel.checkpoint()
        text = js.snapshot().format()
        blocker.release()
    assert found == (anyio_joinset.StackFrame("lock.acquire", "<C function>", 0, ""),)
    assert "    in its worker thread:\n        lock.acquire (<C function>:0)" in text


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
    assert "test_a_feeder_inside_an_async_generator_input.<locals>.inputs" in names
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


async def test_snapshot_leaves_a_disabled_collector_disabled() -> None:
    """S28: the collector is paused during a snapshot and left as it was found."""
    async with JoinSet[None]() as js:
        gc.disable()
        try:
            js.snapshot()
            assert not gc.isenabled()
        finally:
            gc.enable()
        js.snapshot()
        assert gc.isenabled()


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
