"""
A Hypothesis stateful test: random spawn/abort/finish/join scripts vs a plain model.

The JoinSet lives in an event loop run by an AnyIO blocking portal, so every rule
is one step of a real script and Hypothesis can shrink a failing script. After
each step the loop is settled with ``wait_all_tasks_blocked``; tasks that finish
within one settle may finish in any order, so the model keeps ready outcomes as
batches and checks each outcome against the oldest batch (completion order, S5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from anyio_joinset import JoinHandle, JoinSet, Outcome
from anyio_joinset.backends import BACKENDS as LOOPS

BACKENDS = [pytest.param(backend, id=name) for name, backend in LOOPS.items()]


@dataclass
class Task:
    """What the model knows of one task, and the real task's gate."""

    id: int
    handle: JoinHandle[int]
    release: anyio.Event
    mode: str = "ok"  # how it ends once released: "ok" or "fail"
    state: str = "waiting"  # waiting (for a slot) | running | ready | joined
    released: bool = False
    aborted: bool = False
    kind: str = ""  # the expected outcome once finished: ok | fail | cancelled
    aborted_before_start: bool = False
    started: bool = False  # set by the real task
    cleaned_up: bool = False  # set by the real task


@dataclass
class Model:
    limit: int | None
    tasks: dict[int, Task] = field(default_factory=dict)
    queue: list[int] = field(default_factory=list)
    batches: list[set[int]] = field(default_factory=list)

    @property
    def running(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.state == "running"]

    def unjoined(self) -> int:
        return sum(t.state in {"waiting", "running", "ready"} for t in self.tasks.values())

    def finish_now(self, task: Task, kind: str) -> None:
        """A waiting task aborted: its outcome is in the stream at once, alone."""
        task.state, task.kind = "ready", kind
        self.batches.append({task.id})

    def settle_queue(self) -> None:
        """spawn() starts a task at once when a slot is free and nobody waits."""
        if self.queue == [self.queue[-1]] and (
            self.limit is None or len(self.running) < self.limit
        ):
            self.tasks[self.queue.pop()].state = "running"

    def settle(self) -> None:
        """Everything that the event loop will finish before it blocks again."""
        batch: set[int] = set()
        while True:
            changed = False
            for task in self.running:
                if task.aborted or task.released:
                    task.state = "ready"
                    task.kind = "cancelled" if task.aborted else task.mode
                    batch.add(task.id)
                    changed = True
            while self.queue and (self.limit is None or len(self.running) < self.limit):
                self.tasks[self.queue.pop(0)].state = "running"
                changed = True
            if not changed:
                break
        if batch:
            self.batches.append(batch)

    def take(self, task_id: int) -> None:
        assert self.batches, f"task {task_id} handed out, but the model has none ready"
        assert task_id in self.batches[0], (
            f"task {task_id} handed out before {sorted(self.batches[0])} (completion order)"
        )
        self.batches[0].discard(task_id)
        if not self.batches[0]:
            self.batches.pop(0)
        self.tasks[task_id].state = "joined"


class JoinSetMachine(RuleBasedStateMachine):
    """Drives one JoinSet through a random script and checks it against Model."""

    backend: tuple[str, dict[str, object]] = ("asyncio", {})

    def __init__(self) -> None:
        super().__init__()
        self._portal_cm = start_blocking_portal(*self.backend)
        self.portal: BlockingPortal = self._portal_cm.__enter__()
        self.model = Model(limit=None)
        self.js: JoinSet[int] | None = None

    @initialize(limit=st.none() | st.integers(min_value=1, max_value=3))
    def open_set(self, limit: int | None) -> None:
        self.model = Model(limit=limit)
        self.js = JoinSet[int](limit=limit)
        self._js_cm = self.portal.wrap_async_context_manager(self.js)
        self._js_cm.__enter__()

    def teardown(self) -> None:
        try:
            if self.js is not None:
                self._js_cm.__exit__(None, None, None)
                assert len(self.js) == 0
                for task in self.model.tasks.values():
                    # No task outlives the block (S13); aborted-before-start never ran.
                    assert task.handle.done()
                    assert task.started == task.cleaned_up
        finally:
            self._portal_cm.__exit__(None, None, None)

    # -- helpers ----------------------------------------------------------

    def settle(self) -> None:
        self.portal.call(anyio.wait_all_tasks_blocked)
        self.model.settle()

    async def _task_body(self, task_id: int) -> int:
        task = self.model.tasks[task_id]
        task.started = True
        try:
            await task.release.wait()
        finally:
            task.cleaned_up = True
        if task.mode == "fail":
            raise ValueError(task_id)
        return task_id

    def check_outcome(self, outcome: Outcome[int]) -> None:
        task = self.model.tasks[outcome.id]
        self.model.take(outcome.id)
        if task.kind == "cancelled":
            assert outcome.cancelled()
        elif task.kind == "fail":
            exc = outcome.exception()
            assert isinstance(exc, ValueError)
            assert exc.args == (outcome.id,)
        else:
            assert outcome.result() == outcome.id

    def live(self) -> list[Task]:
        return [t for t in self.model.tasks.values() if t.state in {"waiting", "running"}]

    # -- rules ------------------------------------------------------------

    @rule()
    def spawn(self) -> None:
        assert self.js is not None
        task_id = len(self.model.tasks) + 1

        def do_spawn() -> JoinHandle[int]:
            assert self.js is not None
            return self.js.spawn(self._task_body, task_id)

        task = Task(task_id, None, anyio.Event())  # type: ignore[arg-type]
        self.model.tasks[task_id] = task
        task.release = self.portal.call(anyio.Event)
        task.handle = self.portal.call(_call_sync, do_spawn)
        assert task.handle.id == task_id
        self.model.queue.append(task_id)
        self.settle()

    @rule()
    def spawn_and_abort_at_once(self) -> None:
        """Abort in the same step as spawn: the task never runs any of its body (S7)."""
        assert self.js is not None
        task_id = len(self.model.tasks) + 1
        task = Task(task_id, None, anyio.Event())  # type: ignore[arg-type]
        task.aborted_before_start = True
        self.model.tasks[task_id] = task
        task.release = self.portal.call(anyio.Event)

        def spawn_then_abort() -> JoinHandle[int]:
            assert self.js is not None
            handle = self.js.spawn(self._task_body, task_id)
            handle.abort()
            return handle

        task.handle = self.portal.call(_call_sync, spawn_then_abort)
        self.model.queue.append(task_id)
        self.model.settle_queue()
        if task.state == "waiting":
            self.model.queue.remove(task_id)
            self.model.finish_now(task, "cancelled")
        else:
            task.aborted = True
        self.settle()

    @precondition(lambda self: self.live())
    @rule(data=st.data(), fail=st.booleans())
    def finish(self, data: st.DataObject, fail: bool) -> None:
        task = data.draw(st.sampled_from(self.live()))
        task.mode = "fail" if fail else "ok"
        task.released = True
        self.portal.call(_call_sync, task.release.set)
        self.settle()

    @precondition(lambda self: self.model.tasks)
    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(sorted(self.model.tasks.values(), key=lambda t: t.id)))
        self.portal.call(_call_sync, task.handle.abort)
        if task.state == "waiting":
            self.model.queue.remove(task.id)
            self.model.finish_now(task, "cancelled")
        if task.state == "running":
            task.aborted = True
        self.settle()

    @rule()
    def abort_all(self) -> None:
        assert self.js is not None
        self.portal.call(_call_sync, self.js.abort_all)
        for task_id in list(self.model.queue):
            self.model.finish_now(self.model.tasks[task_id], "cancelled")
        self.model.queue.clear()
        for task in self.model.running:
            task.aborted = True
        self.settle()

    @rule()
    def join_next(self) -> None:
        assert self.js is not None
        if self.model.batches or not self.model.unjoined():
            outcome = self.portal.call(self.js.join_next)
            if outcome is None:
                assert self.model.unjoined() == 0
            else:
                self.check_outcome(outcome)
        else:
            # Nothing can finish: the call must wait, and cancelling it loses nothing.
            got = self.portal.call(_join_next_cancelled_while_waiting, self.js)
            assert got == "cancelled"
        self.settle()

    @precondition(lambda self: self.model.batches)
    @rule()
    def join_next_already_cancelled(self) -> None:
        assert self.js is not None
        got = self.portal.call(_join_next_already_cancelled, self.js)
        assert got == "cancelled"  # a checkpoint first: the ready outcome stays (S5)
        self.settle()

    @rule()
    def try_join_next(self) -> None:
        assert self.js is not None
        outcome = self.portal.call(_call_sync, self.js.try_join_next)
        if outcome is None:
            assert not self.model.batches
        else:
            self.check_outcome(outcome)

    @rule()
    def shutdown(self) -> None:
        assert self.js is not None
        self.portal.call(self.js.shutdown)
        for task in self.model.tasks.values():
            if task.state in {"waiting", "running", "ready"}:
                task.state = "joined"
                if not task.kind:
                    task.kind = "cancelled"
        self.model.queue.clear()
        self.model.batches.clear()
        self.settle()

    # -- invariants -------------------------------------------------------

    @invariant()
    def len_matches_model(self) -> None:
        if self.js is not None:
            assert len(self.js) == self.model.unjoined()

    @invariant()
    def stats_match_model(self) -> None:
        if self.js is None:
            return
        tasks = self.model.tasks.values()
        stats = self.js.stats()
        assert stats.spawned == len(self.model.tasks)
        assert stats.waiting == sum(t.state == "waiting" for t in tasks)
        assert stats.running == sum(t.state == "running" for t in tasks)
        assert stats.finished == sum(t.state == "ready" for t in tasks)
        assert stats.joined == sum(t.state == "joined" for t in tasks)
        assert stats.failed == sum(t.kind == "fail" for t in tasks)
        assert stats.cancelled == sum(t.kind == "cancelled" for t in tasks)

    @invariant()
    def handles_and_bodies_match_model(self) -> None:
        limit = self.model.limit
        running = 0
        for task in self.model.tasks.values():
            finished = task.state in {"ready", "joined"}
            assert task.handle.done() == finished, task
            if task.state == "waiting":
                assert not task.started, "a task waiting for a slot already ran"
            if task.state == "running":
                running += 1
                assert task.started
            if task.kind == "cancelled" and task.started:
                assert task.cleaned_up
            if task.aborted_before_start:
                assert not task.started, "a task aborted before it started ran its body"
        assert limit is None or running <= limit


def _call_sync(func):  # type: ignore[no-untyped-def]
    """Run a sync callable inside the event loop thread (portal.call needs async)."""

    async def run():  # type: ignore[no-untyped-def]
        return func()

    return run()


async def _join_next_cancelled_while_waiting(js: JoinSet[int]) -> str:
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_when_blocked() -> None:
                await anyio.wait_all_tasks_blocked()
                scope.cancel()

            tg.start_soon(cancel_when_blocked)
            outcome = await js.join_next()
            return f"returned {outcome!r}"
    return "cancelled"


async def _join_next_already_cancelled(js: JoinSet[int]) -> str:
    with anyio.CancelScope() as scope:
        scope.cancel()
        outcome = await js.join_next()
        return f"returned {outcome!r}"
    return "cancelled"


@pytest.mark.parametrize("backend", BACKENDS)
def test_joinset_against_model(backend: tuple[str, dict[str, object]]) -> None:
    """S4/S5/S7/S8/S9/S10/S14: random scripts agree with the plain model on every backend."""
    machine = type("Machine", (JoinSetMachine,), {"backend": backend})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=60,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
