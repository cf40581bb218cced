"""
A Hypothesis stateful test: random spawn/abort/finish/join scripts vs a plain model.

The JoinSet lives in an event loop run by an AnyIO blocking portal, so every rule
is one step of a real script and Hypothesis can shrink a failing script. After
each step the loop is settled with ``wait_all_tasks_blocked``; tasks that finish
within one settle may finish in any order, so the model keeps ready outcomes as
batches and checks each outcome against the oldest batch (completion order, S5).

Up to three join_next calls may wait in the background while the script goes
on. After every step each of them has either taken the outcome it should, or
got None with the set empty, or still waits with outcomes to come and none
ready (liveness, S5); at the block's exit every one of them has ended by
itself. Every call into the loop fails after 20 s instead of hanging. The
script also runs on the explorer's seeded loops (tests/explore.py), with the
seed drawn by Hypothesis, so a failing script shrinks with its schedule.
"""

from __future__ import annotations

import concurrent.futures
import inspect
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

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
from explore import EXPLORE_BACKENDS, explore_backend

BACKENDS = [pytest.param(backend, id=name) for name, backend in LOOPS.items()]
# The explorer's seeded loops: Hypothesis draws the seed (open_set), so a failing
# script is shrunk and replayed together with its schedule.
EXPLORED = [pytest.param(name, id=name) for name in EXPLORE_BACKENDS]


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

    backend: tuple[str, dict[str, object]] | str = ("asyncio", {})

    def __init__(self) -> None:
        super().__init__()
        self._portal_cm: Any = None
        self.model = Model(limit=None)
        self.js: JoinSet[int] | None = None
        # Background join_next calls still running (their results come in settle).
        self.joiners: list[Future[Outcome[int] | None]] = []

    @initialize(
        limit=st.none() | st.integers(min_value=1, max_value=3),
        seed=st.integers(min_value=0, max_value=2**32 - 1),
    )
    def open_set(self, limit: int | None, seed: int) -> None:
        # An explorer backend (a name) runs the loop in an order drawn from seed.
        backend = self.backend
        if isinstance(backend, str):
            backend = explore_backend(backend, seed)
        self._portal_cm = start_blocking_portal(*backend)
        self.portal: BlockingPortal = self._portal_cm.__enter__()
        self.model = Model(limit=limit)
        self.js = JoinSet[int](limit=limit)
        self._js_cm = self.portal.wrap_async_context_manager(self.js)
        self._js_cm.__enter__()

    def teardown(self) -> None:
        if self._portal_cm is None:
            return
        try:
            if self.js is not None:
                self._js_cm.__exit__(None, None, None)
                assert len(self.js) == 0
                for task in self.model.tasks.values():
                    # No task outlives the block (S13); aborted-before-start never ran.
                    assert task.handle.done()
                    assert task.started == task.cleaned_up
                # Joiners still waiting at the exit end by themselves (S5).
                self.call(anyio.wait_all_tasks_blocked)
                assert all(joiner.done() for joiner in self.joiners), (
                    "a join_next outlived the block"
                )
        finally:
            self._portal_cm.__exit__(None, None, None)

    # -- helpers ----------------------------------------------------------

    def call(self, func: Callable[..., Any], *args: object) -> Any:
        """Run ``func(*args)`` (sync or async) in the event loop, failing rather than hanging."""
        future = self.portal.start_task_soon(_call, func, *args)
        try:
            return future.result(timeout=PORTAL_DEADLINE)
        except concurrent.futures.TimeoutError:
            future.cancel()
            msg = f"{func!r} did not return within {PORTAL_DEADLINE:g} s: it waits forever"
            raise AssertionError(msg) from None

    def settle(self, *, strict: bool = True) -> None:
        self.call(anyio.wait_all_tasks_blocked)
        self.model.settle()
        self.collect_joiners(strict=strict)

    def collect_joiners(self, *, strict: bool) -> None:
        """
        Check the background join_next calls once the loop is settled (S5).

        Each one that returned took the outcome it should (completion order), or
        got None only with the set empty; each one still waiting waits with
        outcomes still to come and none ready (liveness).
        """
        done = [joiner for joiner in self.joiners if joiner.done()]
        self.joiners = [joiner for joiner in self.joiners if not joiner.done()]
        results = [joiner.result() for joiner in done]
        outcomes = [outcome for outcome in results if outcome is not None]
        if strict:
            batches = self.model.batches
            order = {task_id: i for i, batch in enumerate(batches) for task_id in batch}
            for outcome in sorted(outcomes, key=lambda o: order.get(o.id, len(batches))):
                self.check_outcome(outcome)
            if None in results:
                assert self.model.unjoined() == 0, "a join_next got None while tasks remain"
            if self.joiners:
                assert not self.model.batches, "a join_next waits while an outcome is ready"
                assert self.model.unjoined(), "a join_next waits while len == 0"
        else:
            for outcome in outcomes:  # taken while shutdown discarded the rest
                task = self.model.tasks[outcome.id]
                assert task.state != "joined", "handed out twice"
                task.state = "joined"
                if not task.kind:
                    task.kind = "cancelled" if outcome.cancelled() else task.mode

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
        task.release = self.call(anyio.Event)
        task.handle = self.call(do_spawn)
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
        task.release = self.call(anyio.Event)

        def spawn_then_abort() -> JoinHandle[int]:
            assert self.js is not None
            handle = self.js.spawn(self._task_body, task_id)
            handle.abort()
            return handle

        task.handle = self.call(spawn_then_abort)
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
        self.call(task.release.set)
        self.settle()

    @precondition(lambda self: self.model.tasks)
    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(sorted(self.model.tasks.values(), key=lambda t: t.id)))
        self.call(task.handle.abort)
        if task.state == "waiting":
            self.model.queue.remove(task.id)
            self.model.finish_now(task, "cancelled")
        if task.state == "running":
            task.aborted = True
        self.settle()

    @rule()
    def abort_all(self) -> None:
        assert self.js is not None
        self.call(self.js.abort_all)
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
            outcome = self.call(self.js.join_next)
            if outcome is None:
                assert self.model.unjoined() == 0
            else:
                self.check_outcome(outcome)
        else:
            # Nothing can finish: the call must wait, and cancelling it loses nothing.
            got = self.call(_join_next_cancelled_while_waiting, self.js)
            assert got == "cancelled"
        self.settle()

    @precondition(lambda self: self.model.batches)
    @rule()
    def join_next_already_cancelled(self) -> None:
        assert self.js is not None
        got = self.call(_join_next_already_cancelled, self.js)
        assert got == "cancelled"  # a checkpoint first: the ready outcome stays (S5)
        self.settle()

    @rule()
    def try_join_next(self) -> None:
        assert self.js is not None
        outcome = self.call(self.js.try_join_next)
        if outcome is None:
            assert not self.model.batches
        else:
            self.check_outcome(outcome)
        self.settle()  # a join_next waiting in the background gets None if it emptied the set

    @precondition(lambda self: len(self.joiners) < 3)
    @rule()
    def join_next_in_background(self) -> None:
        """A join_next in another task, left waiting while the script goes on."""
        assert self.js is not None
        self.joiners.append(self.portal.start_task_soon(self.js.join_next))
        self.settle()

    @rule()
    def shutdown(self) -> None:
        assert self.js is not None
        self.call(self.js.shutdown)
        self.settle(strict=False)
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


PORTAL_DEADLINE = 20.0


async def _call(func: Callable[..., Any], *args: object) -> Any:
    """Call ``func`` in the event loop thread; await its result if it is awaitable."""
    result = func(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


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


@pytest.mark.parametrize("backend", BACKENDS + EXPLORED)
def test_joinset_against_model(backend: tuple[str, dict[str, object]] | str) -> None:
    """S4/S5/S7/S8/S9/S10/S14: random scripts agree with the plain model on every loop."""
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
