"""
The hand-off of outcomes to join_next, under every schedule up to a bound (S5, S10).

Small scripts (2 to 3 tasks, 2 to 3 joiners, cancelled and natively cancelled
joins, try_join_next, aborts, late spawns) run on ``explore.ChoosingLoop``, once
per order of ready callbacks with at most ``max_delays`` delays (see explore.py).
After every callback: ``len(js)`` is exactly the tasks spawned minus the outcomes
handed out, and no outcome was handed out twice. At every moment nothing can run
any more while the script has not ended: a deadlock (some join_next waits while
``len == 0``, or while an outcome is ready). At the end: every joiner ended by
itself on ``None``, every outcome was handed out exactly once, with its kind.

Exhaustive coverage: 11,461 schedules over the thirteen scripts of ``SCRIPTS``
(every schedule with at most 4 delays, 5 for four of them; counts per script
at ``SCRIPTS``). The same scripts and a bigger one also run as random walks
(any ready callback may run next: 40 per script) and on the seeded
asyncio+random, asyncio+eager+random and trio+random loops (8 seeds each,
``test_random_schedules``); ``--soak SECONDS`` keeps drawing new seeds.

Feed scripts (S20, ``FEED_SCRIPTS``) and JoinMap scripts (S16, ``MAP_SCRIPTS``)
follow the same shape. The JoinMap scripts spawn a key again at every point of its
old task's life (running, being aborted, finished, taken by a joiner, held by a
join_all that is then cancelled) and check, after every callback, that ``len``
and ``keys()`` (the key objects included) agree with a model of the live keys; at
the end, that no replaced task's outcome was handed out, every other one exactly
once, and each replaced failure logged once (S13): eight scripts, counts at
``MAP_SCRIPTS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import pytest
import sniffio
from anyio.lowlevel import checkpoint

from anyio_joinset import JoinHandle, JoinMap, JoinSet, Outcome
from anyio_joinset._outcome import FAILED
from explore import (
    EXPLORE_BACKENDS,
    Chooser,
    ChoosingLoop,
    explore,
    explore_backend,
    seed_for,
    watching,
)

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

NATIVE_CANCEL = sys.version_info >= (3, 11)  # Task.uncancel() lets a joiner go on


@dataclass(frozen=True)
class Script:
    """
    What one scenario does.

    tasks: one per task, how it ends after one checkpoint: "ok", "fail",
        "abort" (aborted as it is spawned: it never runs), "slow" (ok after two).
    joiners: one per joiner task, each a ``join_next`` loop that ends on None:
        "loop"; "cancel" (its first join_next is cancelled by another task
        through an AnyIO cancel scope); "native" (… by ``Task.cancel()``).
        "follow": a ``follow()`` loop in a task group around the set's block,
        which must end by itself once the block is left (S22).
    body: what the body does after starting the joiners, a checkpoint before
        each: "try" (try_join_next), "spawn" (one more "ok" task),
        "abort N" (abort task N, finished or not).
    max_delays: the delay bound of the exhaustive exploration.
    starts: one starter task each, calling ``start()`` (S21): "ok" (ready after
        a checkpoint, then ok after one more), "early-fail" (fails before
        ``started()``: only ``start()`` may raise it), "cancelled" (the starter's
        ``start()`` is cancelled while its task is not ready: no outcome).
    """

    name: str
    tasks: tuple[str, ...]
    joiners: tuple[str, ...]
    body: tuple[str, ...] = ()
    max_delays: int = 4
    starts: tuple[str, ...] = ()

    @property
    def native(self) -> bool:
        return "native" in self.joiners


# Schedules run by test_handoff_exhaustively, measured on the engine of 6522fed
# with AnyIO 4.16 (the test prints them; -rP shows them): 586, 1385, 214, 602,
# 1751, 1861, 502, 1858 and 1766 in this order, 10,525 in all, in about 8 s;
# start(), its cancellation and follow() (S21, S22) add 207, 239, 265 and 225
# (at most 3 delays: measured on the stream engine of 2026-12-06).
SCRIPTS = [
    Script("two-tasks-two-joiners", ("ok", "fail"), ("loop", "loop"), max_delays=5),
    Script("three-tasks-three-joiners", ("ok", "slow", "fail"), ("loop", "loop", "loop")),
    Script("abort-and-try", ("ok", "abort", "ok"), ("loop", "loop"), ("try", "abort 2")),
    Script("late-spawn", ("ok",), ("loop", "loop"), ("spawn", "try")),
    Script("cancel", ("ok", "ok"), ("cancel", "loop"), max_delays=5),
    Script("cancel-both", ("ok", "fail"), ("cancel", "cancel"), ("try",)),
    Script("native-cancel-one-joiner", ("ok", "fail"), ("native",), max_delays=5),
    Script("native-cancel", ("ok", "ok"), ("native", "loop"), max_delays=5),
    Script("native-and-cancel", ("ok", "slow"), ("native", "cancel"), ("abort 0",)),
    Script("start", ("ok",), ("loop",), starts=("ok", "early-fail"), max_delays=3),
    Script("start-cancelled", ("ok",), ("loop",), starts=("cancelled", "ok"), max_delays=3),
    Script("follow", ("ok", "fail"), ("follow", "loop"), ("spawn",), max_delays=3),
    Script("follow-start", (), ("follow",), starts=("ok", "early-fail"), max_delays=3),
]


@dataclass
class Joiner:
    name: str
    kind: str
    entered: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope | None = None
    task: asyncio.Task[object] | None = None
    inside_first: bool = False  # in the join_next that the canceller targets
    waiting: bool = False  # in any join_next
    cancel_sent: bool = False
    native_caught: bool = False
    ended: bool = False


class Run:
    """One run of a script: what it did, and every violation seen."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.js: JoinSet[int] | None = None
        self.open = False
        self.kinds: dict[int, str] = {}
        self.aborted: set[int] = set()
        self.handles: dict[int, JoinHandle[int]] = {}
        self.handed: Counter[int] = Counter()
        self.joiners = [Joiner(f"joiner {i}", kind) for i, kind in enumerate(script.joiners)]
        self.violations: list[str] = []
        self.watchdog: anyio.CancelScope | None = None
        self.finished = False
        self.log: list[str] = []  # the callbacks run so far, on a ChoosingLoop
        self.failed_at = 0  # how many had run at the first violation
        self.start_errors: Counter[str] = Counter()  # how each failed start() ended

    # -- what the script does ----------------------------------------------

    def spawn(self, kind: str) -> None:
        assert self.js is not None
        handle = self.js.spawn(_task, len(self.kinds) + 1, kind)
        self.kinds[handle.id] = kind
        self.handles[handle.id] = handle
        if kind == "abort":
            handle.abort()
            self.aborted.add(handle.id)

    def act(self, action: str) -> None:
        assert self.js is not None
        if action == "try":
            outcome = self.js.try_join_next()
            if outcome is not None:
                self.record(outcome, "try_join_next")
        elif action == "spawn":
            self.spawn("ok")
        elif action.startswith("abort "):
            task_id = int(action.split()[1]) + 1
            self.handles[task_id].abort()
            self.aborted.add(task_id)
        else:  # pragma: no cover - a typo in SCRIPTS
            raise ValueError(action)

    def record(self, outcome: Outcome[int], who: str) -> None:
        task_id = outcome.id
        if task_id not in self.kinds:
            self.fail(f"outcome {task_id} of a task never in the set handed out to {who}")
            return
        self.handed[task_id] += 1
        if self.handed[task_id] > 1:
            self.fail(f"outcome {task_id} handed out twice, the second time to {who}")
        kind = self.kinds[task_id]
        if outcome.cancelled():
            if task_id not in self.aborted:
                self.fail(f"task {task_id} ({kind}) came out cancelled but was never aborted")
        elif kind == "abort":
            self.fail(f"task {task_id} was aborted before it started, yet came out not cancelled")
        elif kind == "fail":
            if not isinstance(outcome.exception(), ValueError):
                self.fail(f"task {task_id} failed, but its outcome is {outcome!r}")
        elif outcome.result() != task_id:
            self.fail(f"task {task_id} returned {task_id}, but its outcome is {outcome!r}")

    # -- what is checked -----------------------------------------------------

    def fail(self, message: str) -> None:
        if not self.violations:
            message = f"{message} [{self.state()}]"
            self.failed_at = len(self.log)
        self.violations.append(message)
        if self.watchdog is not None:
            self.watchdog.cancel()

    def check_len(self) -> None:
        """After every callback: len is exactly spawned minus handed out (S4)."""
        if self.open and self.js is not None and not self.violations:
            expected = len(self.kinds) - self.handed.total()
            if len(self.js) != expected:
                self.fail(f"len(js) == {len(self.js)}, expected {expected}")

    def on_idle(self, why: str) -> None:
        self.fail(why)

    def state(self) -> str:
        size = len(self.js) if self.js is not None else None
        waiting = [j.name for j in self.joiners if j.waiting]
        ended = [j.name for j in self.joiners if j.ended]
        handed = sorted(self.handed.elements())
        running = sum(not handle.done() for handle in self.handles.values())
        return (
            f"len={size}, tasks not done: {running}, handed out {handed}, "
            f"waiting in join_next: {waiting}, ended: {ended}"
        )

    def verify(self, where: str = "") -> None:
        assert not self.violations, f"{where}{self.violations[0]}"
        assert self.finished, f"{where}the script did not finish"
        assert all(j.ended for j in self.joiners)
        assert self.handed == Counter(set(self.kinds)), f"{where}handed out {self.handed}"
        for joiner in self.joiners:
            if joiner.kind == "native" and joiner.cancel_sent:
                assert joiner.native_caught, f"{where}{joiner.name}'s cancellation vanished"
        failed_starts = Counter(kind for kind in self.script.starts if kind != "ok")
        assert self.start_errors == failed_starts, f"{where}start() raised {self.start_errors}"


async def _task(task_id: int, kind: str) -> int:
    await checkpoint()
    if kind == "hang":  # until aborted (a JoinMap's replacement aborts it too)
        await anyio.Event().wait()  # not sleep_forever(): no timer, so the explorer sees idleness
    if kind == "slow":
        await checkpoint()
    if kind == "fail":
        raise ValueError(task_id)
    return task_id


async def _joiner(run: Run, joiner: Joiner) -> None:
    js = run.js
    assert js is not None
    if joiner.kind == "native":
        joiner.task = asyncio.current_task()
    targeted = joiner.kind != "loop"
    while True:
        joiner.waiting = True
        try:
            if targeted:
                targeted = False
                joiner.inside_first = True
                joiner.entered.set()
                try:
                    if joiner.kind == "cancel":
                        with anyio.CancelScope() as joiner.scope:
                            outcome = await js.join_next()
                        if joiner.scope.cancelled_caught:
                            continue
                    else:
                        outcome = await js.join_next()
                finally:
                    joiner.inside_first = False
            else:
                outcome = await js.join_next()
        except asyncio.CancelledError:
            if not (joiner.cancel_sent and joiner.task and not joiner.native_caught):
                raise
            joiner.native_caught = True
            joiner.task.uncancel()
            continue
        finally:
            joiner.waiting = False
        if outcome is None:
            break
        run.record(outcome, joiner.name)
    joiner.ended = True


async def _follower(run: Run, joiner: Joiner, done: anyio.Event) -> None:
    """Follow the set for the life of its block (S22); must end by itself."""
    assert run.js is not None
    joiner.waiting = True
    async for outcome in run.js.follow():
        run.record(outcome, joiner.name)
    joiner.waiting = False
    joiner.ended = True
    done.set()


async def _ready_then_ok(run: Run, task_id: int, *, task_status: anyio.abc.TaskStatus[None]) -> int:
    await checkpoint()
    run.kinds[task_id] = "ok"  # in the set from started() on, in this same step
    task_status.started()
    await checkpoint()
    return task_id


async def _fail_unready(task_id: int, *, task_status: anyio.abc.TaskStatus[None]) -> int:  # noqa: ARG001
    await checkpoint()
    raise ValueError(task_id)


async def _never_ready(entered: anyio.Event, *, task_status: anyio.abc.TaskStatus[None]) -> int:  # noqa: ARG001
    entered.set()
    await anyio.sleep_forever()
    raise AssertionError  # pragma: no cover


async def _cancel_when(entered: anyio.Event, scope: anyio.CancelScope) -> None:
    await entered.wait()
    scope.cancel()


async def _starter(run: Run, kind: str) -> None:
    """Start one task with start() (S21) and check how start() ends."""
    js = run.js
    assert js is not None
    task_id = js._next_id + 1
    if kind == "ok":
        handle = await js.start(_ready_then_ok, run, task_id, return_handle=True)
        if handle.id != task_id:
            run.fail(f"start() returned handle {handle.id}, expected {task_id}")
        run.handles[task_id] = handle
    elif kind == "early-fail":
        try:
            await js.start(_fail_unready, task_id)
        except ValueError:
            run.start_errors[kind] += 1
        else:
            run.fail(f"start() of task {task_id}, which failed before started(), returned")
    else:
        entered = anyio.Event()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as inner:
                inner.start_soon(_cancel_when, entered, scope)
                await js.start(_never_ready, entered)
        if scope.cancelled_caught:
            run.start_errors[kind] += 1
        else:
            run.fail(f"start() of task {task_id}, cancelled while unready, returned")


async def _canceller(joiner: Joiner) -> None:
    """Cancel the joiner's first join_next, wherever it is when this task runs."""
    await joiner.entered.wait()
    if joiner.inside_first:
        joiner.cancel_sent = True
        if joiner.kind == "cancel":
            assert joiner.scope is not None
            joiner.scope.cancel()
        else:
            assert joiner.task is not None
            joiner.task.cancel()


async def _trio_deadlock_watch(run: Run) -> None:
    """On Trio: once every other task is blocked (no clocks here), the script is stuck."""
    await anyio.wait_all_tasks_blocked()
    run.fail("deadlock: every task is blocked")


async def play(run: Run) -> None:
    """Run the script once; violations are recorded on ``run``, never raised here."""
    script = run.script
    on_asyncio = sniffio.current_async_library() == "asyncio"
    loop_watch = (
        watching(asyncio.get_running_loop(), run.on_idle)
        if on_asyncio
        else contextlib.nullcontext()
    )
    with loop_watch, anyio.CancelScope() as run.watchdog:
        async with anyio.create_task_group() as watch:
            if not on_asyncio:
                watch.start_soon(_trio_deadlock_watch, run)
            followed: list[anyio.Event] = []
            async with JoinSet[int]() as js:
                run.js, run.open = js, True
                for kind in script.tasks:
                    run.spawn(kind)
                async with anyio.create_task_group() as tg:
                    for joiner in run.joiners:
                        if joiner.kind == "follow":
                            followed.append(anyio.Event())
                            watch.start_soon(_follower, run, joiner, followed[-1])
                            continue
                        tg.start_soon(_joiner, run, joiner)
                        if joiner.kind != "loop":
                            tg.start_soon(_canceller, joiner)
                    for kind in script.starts:
                        tg.start_soon(_starter, run, kind)
                    for action in script.body:
                        await checkpoint()
                        run.act(action)
                # Every joiner ended by itself; the body takes what came after.
                while (outcome := await js.join_next()) is not None:
                    run.record(outcome, "the body")
                run.check_len()
                run.open = False
            for done in followed:
                await done.wait()  # a follower ends by itself once the block is left
            run.finished = True
            watch.cancel_scope.cancel()


def run_on(chooser: Chooser, script: Script, *, eager: bool = False) -> Run:
    """Run ``script`` once on a ChoosingLoop and verify it; raise on a violation."""
    loop = ChoosingLoop(chooser, eager=eager)
    run = Run(script)
    loop.after_step = run.check_len
    run.log = loop.log
    anyio.run(play, run, backend="asyncio", backend_options={"loop_factory": lambda: loop})
    try:
        run.verify(f"{script.name}: ")
    except AssertionError as exc:
        steps = "\n    ".join(loop.log[max(run.failed_at - 25, 0) : run.failed_at])
        msg = f"{exc}\n  the last callbacks run, oldest first:\n    {steps}"
        raise AssertionError(msg) from None
    return run


def _scripts(*, native: bool = True) -> list[object]:
    return [
        pytest.param(
            script,
            id=script.name,
            marks=pytest.mark.skipif(
                script.native and not NATIVE_CANCEL, reason="Task.uncancel() needs 3.11"
            ),
        )
        for script in SCRIPTS
        if native or not script.native
    ]


@pytest.mark.parametrize("script", _scripts())
def test_handoff_exhaustively(script: Script) -> None:
    """S5/S10: every schedule within the delay bound hands each outcome out once, live."""
    # No eager variant: AnyIO starts task-group tasks lazily under the eager
    # factory too (see explore.py), so it would explore the very same schedules.
    found = explore(lambda chooser: run_on(chooser, script), max_delays=script.max_delays)
    print(f"{script.name}: {found.schedules} schedules")  # noqa: T201 - shown by -rP
    assert found.schedules > 10  # the loop really offered choices


# -- random walks and seeded schedulers on bigger scripts -------------------------


BIG = Script(
    "big",
    ("ok", "fail", "abort", "slow", "ok", "fail", "slow", "ok"),
    ("loop", "cancel", "native", "loop"),
    ("try", "spawn", "abort 0", "try", "spawn", "abort 4", "try"),
)


ALL_SCRIPTS = [*SCRIPTS, BIG]


def _for_backend(script: Script, backend: str) -> Script:
    """Trio and Python 3.10 have no Task.uncancel(): a native cancel becomes an AnyIO one."""
    if backend.startswith("asyncio") and NATIVE_CANCEL:
        return script
    joiners = tuple("cancel" if kind == "native" else kind for kind in script.joiners)
    return Script(script.name, script.tasks, joiners, script.body, script.max_delays, script.starts)


async def _play_seeded(script: Script, where: str) -> None:
    run = Run(script)
    await play(run)
    run.verify(where)


def run_seeded(script: Script, backend: str, seed: int) -> None:
    """Run ``script`` once on a seeded explorer backend and verify it."""
    name, options = explore_backend(backend, seed)
    where = f"{script.name} on {backend}, seed {seed}: "
    anyio.run(
        _play_seeded, _for_backend(script, backend), where, backend=name, backend_options=options
    )


@pytest.mark.parametrize("backend", EXPLORE_BACKENDS)
@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda script: script.name)
@pytest.mark.parametrize("run_index", range(8))
def test_random_schedules(
    script: Script, backend: str, run_index: int, request: pytest.FixtureRequest
) -> None:
    """S5/S10: each script on a seeded random schedule, the seed drawn from the test id."""
    run_seeded(script, backend, seed_for(request.node.nodeid))
    assert run_index >= 0


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda script: script.name)
def test_random_walks(script: Script) -> None:
    """S5/S10: each script as random walks: any ready callback may run next, not only FIFO."""
    for seed in range(40):
        run_on(Chooser(rng=random.Random(seed)), _for_backend(script, "asyncio"))


def test_soak(request: pytest.FixtureRequest) -> None:
    """--soak SECONDS: random walks and seeded schedulers with new seeds until the time is up."""
    seconds = request.config.getoption("soak")
    if not seconds:
        pytest.skip("soak mode only: pytest tests/test_explore.py --soak SECONDS")
    deadline = time.monotonic() + seconds
    seed = int(time.time())
    runs = 0
    while time.monotonic() < deadline:
        seed += 1
        for script in ALL_SCRIPTS:
            run_on(Chooser(rng=random.Random(seed)), _for_backend(script, "asyncio"))
            for backend in EXPLORE_BACKENDS:
                run_seeded(script, backend, seed)
        runs += 1
    print(f"soak: {runs} rounds passed, seeds up to {seed}")  # noqa: T201


# -- Feed scripts (S20): a kept Feed with other consumers -----------------------------


@dataclass(frozen=True)
class FeedScript:
    """
    One scenario around a Feed kept in a variable (S20).

    inputs: how many items the inputs yield; fail: they raise after the last one.
    consumer: "loop" (steps the Feed until StopAsyncIteration, going on after the
        inputs' error) or "cancel" (its first step is cancelled by another task).
    joiner: a join_next loop in another task takes outcomes too.
    hand: one task spawned by hand, beside the fed ones.
    aclose: the body closes the Feed after a checkpoint.
    stream: the inputs come from a memory object stream that stays open until
        every task is blocked; then no consumer may be waiting while an outcome is
        ready (invariant 3), and the stream is closed, which ends the feeding.
    """

    name: str
    inputs: int
    fail: bool = False
    limit: int | None = 1
    consumer: str = "loop"
    joiner: bool = True
    hand: bool = True
    aclose: bool = False
    stream: bool = False
    max_delays: int = 4


FEED_SCRIPTS = [
    FeedScript("feed-kept", 3),
    FeedScript("feed-cancelled-consumer", 2, consumer="cancel"),
    FeedScript("feed-inputs-error", 1, fail=True, limit=None),
    FeedScript("feed-aclose", 3, joiner=False, aclose=True),
    FeedScript("feed-error-cancel-aclose", 1, fail=True, consumer="cancel", aclose=True),
    FeedScript("feed-stream-cancelled-consumer", 2, consumer="cancel", stream=True),
    FeedScript("feed-stream-kept", 2, limit=None, stream=True),
]


class FeedRun:
    """One run of a FeedScript: what was taken and handed out, and every violation."""

    def __init__(self, script: FeedScript) -> None:
        self.script = script
        self.js: JoinSet[int] | None = None
        self.open = False
        self.taken: list[int] = []
        self.handed: Counter[int] = Counter()
        self.values: list[int] = []
        self.unfed: list[int] = []
        self.errors_raised = 0
        self.ended: set[str] = set()
        self.entered = anyio.Event()
        self.inside_first = False
        self.scope: anyio.CancelScope | None = None
        self.violations: list[str] = []
        self.watchdog: anyio.CancelScope | None = None
        self.finished = False
        self.log: list[str] = []
        self.failed_at = 0
        self.waiting: set[str] = set()  # who is inside a step or a join_next
        self.send, self.receive = anyio.create_memory_object_stream[int](script.inputs)
        self.loop: Any = None
        self.stream_ended = False

    async def inputs(self) -> Any:
        if self.script.stream:
            for i in range(100, 100 + self.script.inputs):
                self.send.send_nowait(i)
            async with self.receive:
                async for i in self.receive:
                    self.taken.append(i)
                    yield i
            return
        for i in range(100, 100 + self.script.inputs):
            self.taken.append(i)
            yield i
            await checkpoint()
        if self.script.fail:
            raise ValueError("inputs broke")

    def quiescent(self) -> bool:
        """
        Every task is blocked: check invariant 3, then end a stream's inputs.

        Returns whether that was the stream's end (the run goes on) rather than a
        deadlock.
        """
        if not self.script.stream or self.stream_ended:
            return False
        self.stream_ended = True
        js = self.js
        if js is not None and js.stats().finished and self.waiting:
            self.fail(f"{sorted(self.waiting)} waiting while an outcome is ready")
        self.send.close()
        return True

    def on_idle(self, why: str) -> None:
        if self.quiescent():
            self.loop._idle_calls = 0  # the stream's end made something ready
        else:
            self.fail(why)

    def record(self, outcome: Outcome[int], who: str) -> None:
        self.handed[outcome.id] += 1
        if self.handed[outcome.id] > 1:
            self.fail(f"outcome {outcome.id} handed out twice, the second time to {who}")
        self.values.append(outcome.result())

    def fail(self, message: str) -> None:
        if not self.violations:
            size = len(self.js) if self.js is not None else None
            message = f"{message} [len={size}, handed {sorted(self.handed)}, ended {self.ended}]"
            self.failed_at = len(self.log)
        self.violations.append(message)
        if self.watchdog is not None:
            self.watchdog.cancel()

    def check_len(self) -> None:
        """After every callback: len is exactly spawned minus handed out (S4)."""
        js = self.js
        if self.open and js is not None and not self.violations:
            expected = js.stats().spawned - self.handed.total()
            if len(js) != expected:
                self.fail(f"len(js) == {len(js)}, expected {expected}")

    def verify(self, where: str = "") -> None:
        script = self.script
        assert not self.violations, f"{where}{self.violations[0]}"
        assert self.finished, f"{where}the script did not finish"
        expected = {"consumer"} | ({"joiner"} if script.joiner else set())
        assert self.ended == expected, f"{where}ended: {self.ended}"
        assert set(self.handed.values()) <= {1}, f"{where}handed out {self.handed}"
        hand = [0] if script.hand else []
        # Nothing taken from the inputs is lost: spawned (and handed out once) or unfed.
        assert sorted(self.values + self.unfed) == sorted(self.taken + hand), (
            f"{where}taken {self.taken}, handed out {self.values}, unfed {self.unfed}"
        )
        if not script.aclose and script.consumer == "loop":
            assert len(self.taken) == script.inputs, f"{where}fed only {self.taken}"
        assert self.errors_raised <= int(script.fail), f"{where}raised {self.errors_raised}"


async def _feed_consumer(run: FeedRun, feed: Any) -> None:
    first = run.script.consumer == "cancel"
    while True:
        try:
            if first:
                first = False
                run.inside_first = True
                run.entered.set()
                try:
                    run.waiting.add("consumer")
                    with anyio.CancelScope() as run.scope:
                        _, outcome = await feed.__anext__()
                finally:
                    run.inside_first = False
                if run.scope.cancelled_caught:
                    continue
            else:
                run.waiting.add("consumer")
                _, outcome = await feed.__anext__()
        except StopAsyncIteration:
            break
        except ValueError:
            run.errors_raised += 1
            continue
        finally:
            run.waiting.discard("consumer")
        run.record(outcome, "the Feed's consumer")
    run.ended.add("consumer")


async def _feed_canceller(run: FeedRun) -> None:
    await run.entered.wait()
    if run.inside_first:
        assert run.scope is not None
        run.scope.cancel()


async def _feed_joiner(run: FeedRun) -> None:
    js = run.js
    assert js is not None
    while True:
        run.waiting.add("joiner")
        try:
            outcome = await js.join_next()
        finally:
            run.waiting.discard("joiner")
        if outcome is None:
            break
        run.record(outcome, "the joiner")
    run.ended.add("joiner")


async def _trio_feed_deadlock_watch(run: FeedRun) -> None:
    await anyio.wait_all_tasks_blocked()
    if run.quiescent():
        await anyio.wait_all_tasks_blocked()
    run.fail("deadlock: every task is blocked")


async def _fed(i: int) -> int:
    await checkpoint()
    return i


async def play_feed(run: FeedRun) -> None:
    """Run a FeedScript once; violations are recorded on ``run``, never raised here."""
    script = run.script
    on_asyncio = sniffio.current_async_library() == "asyncio"
    loop_watch = (
        watching(asyncio.get_running_loop(), run.on_idle)
        if on_asyncio
        else contextlib.nullcontext()
    )
    run.loop = asyncio.get_running_loop() if on_asyncio else None
    with loop_watch, run.send, run.receive, anyio.CancelScope() as run.watchdog:
        async with anyio.create_task_group() as watch:
            if not on_asyncio:
                watch.start_soon(_trio_feed_deadlock_watch, run)
            async with JoinSet[int](limit=script.limit) as js:
                run.js, run.open = js, True
                feed = js.map(_fed, run.inputs())
                if script.hand:
                    js.spawn(_fed, 0)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_feed_consumer, run, feed)
                    if script.consumer == "cancel":
                        tg.start_soon(_feed_canceller, run)
                    if script.joiner:
                        tg.start_soon(_feed_joiner, run)
                    if script.aclose:
                        await checkpoint()
                        await feed.aclose()
                # Every consumer ended by itself; the body takes what came after.
                while (outcome := await js.join_next()) is not None:
                    run.record(outcome, "the body")
                run.check_len()
                run.open = False
                run.unfed = list(getattr(feed, "unfed", ()))
            run.finished = True
            watch.cancel_scope.cancel()


def run_feed_on(chooser: Chooser, script: FeedScript) -> FeedRun:
    """Run ``script`` once on a ChoosingLoop and verify it; raise on a violation."""
    loop = ChoosingLoop(chooser)
    run = FeedRun(script)
    loop.after_step = run.check_len
    run.log = loop.log
    anyio.run(play_feed, run, backend="asyncio", backend_options={"loop_factory": lambda: loop})
    try:
        run.verify(f"{script.name}: ")
    except AssertionError as exc:
        steps = "\n    ".join(loop.log[max(run.failed_at - 25, 0) : run.failed_at])
        msg = f"{exc}\n  the last callbacks run, oldest first:\n    {steps}"
        raise AssertionError(msg) from None
    return run


@pytest.mark.parametrize("script", FEED_SCRIPTS, ids=lambda script: script.name)
def test_feed_exhaustively(script: FeedScript) -> None:
    """S5/S20: a kept Feed beside a joiner hands each outcome out once and every
    consumer ends by itself, under every schedule within the delay bound."""
    found = explore(lambda chooser: run_feed_on(chooser, script), max_delays=script.max_delays)
    print(f"{script.name}: {found.schedules} schedules")  # noqa: T201 - shown by -rP
    assert found.schedules > 10


async def _play_feed_seeded(script: FeedScript, where: str) -> None:
    run = FeedRun(script)
    await play_feed(run)
    run.verify(where)


@pytest.mark.parametrize("backend", EXPLORE_BACKENDS)
@pytest.mark.parametrize("script", FEED_SCRIPTS, ids=lambda script: script.name)
@pytest.mark.parametrize("run_index", range(8))
def test_feed_random_schedules(
    script: FeedScript, backend: str, run_index: int, request: pytest.FixtureRequest
) -> None:
    """S5/S20: each Feed script on a seeded random schedule, the seed drawn from the test id."""
    seed = seed_for(request.node.nodeid)
    name, options = explore_backend(backend, seed)
    where = f"{script.name} on {backend}, seed {seed}: "
    anyio.run(_play_feed_seeded, script, where, backend=name, backend_options=options)
    assert run_index >= 0


@pytest.mark.parametrize("script", FEED_SCRIPTS, ids=lambda script: script.name)
def test_feed_random_walks(script: FeedScript) -> None:
    """S5/S20: each Feed script as random walks: any ready callback may run next."""
    for seed in range(40):
        run_feed_on(Chooser(rng=random.Random(seed)), script)


# -- JoinMap scripts (S16 with S5, S10, S11): replacing a key's task -----------------


@dataclass(frozen=True)
class Key:
    """A JoinMap key: equal by name only, so a replacement's key is a new, equal object."""

    name: str
    gen: int = field(compare=False)


@dataclass(frozen=True)
class MapScript:
    """
    One scenario of a JoinMap whose keys are spawned again (S16).

    tasks: the first spawns, "key:kind", kind as for Script ("ok", "slow",
        "fail", "abort") or "hang" (runs until aborted or replaced).
    joiners: "loop" (join_next until None); "cancel" (its first join_next is
        cancelled by another task through an AnyIO cancel scope); "all" (a
        join_all in a cancel scope that the body's "cancel N" cancels, if it is
        still running; then a join_next loop); "all-once" (the join_all only).
    body: after a checkpoint each: "key:kind" (spawn under that key: a
        replacement when the key has a task), "try" (try_join_next), "abort key",
        "cancel N" (cancel joiner N's join_all), "-" (only the checkpoint),
        "settle" (wait until every task is blocked, then check that no joiner
        waits while an outcome is ready); several joined by "," run in one step.
    expect: where the body's spawns must have met the key's old task in some
        schedule of the exhaustive exploration (see MapRun.spawn): "running",
        "aborting", "finished", "taken", "held" (taken by a join_all still running).
    """

    name: str
    tasks: tuple[str, ...]
    joiners: tuple[str, ...]
    body: tuple[str, ...] = ()
    expect: frozenset[str] = frozenset()
    max_delays: int = 4


@dataclass
class MapTask:
    key: Key
    kind: str
    handle: JoinHandle[int]
    aborted: bool = False
    replaced: bool = False


class MapRun:
    """
    One run of a MapScript against a model of the keys (S16).

    The model: ``current`` maps each key name to the task whose outcome the map
    must still hand out. A spawn under a key that has one replaces it: that task's
    outcome must never be handed out. A running join_all has taken outcomes the
    model cannot see: a key whose outcome it holds is missing from the map while
    the model still has it. A spawn under such a key is no replacement (the
    outcome was taken), but if the join_all is then cancelled, the outcome it
    puts back is discarded: the newer task wins (S16 over S11).
    """

    def __init__(self, script: MapScript) -> None:
        self.script = script
        self.jm: JoinMap[Key, int] | None = None
        self.open = False
        self.tasks: dict[int, MapTask] = {}
        self.current: dict[str, int] = {}
        self.held: set[int] = set()  # taken by a running join_all, key spawned again since
        self.handed: Counter[int] = Counter()
        self.met: Counter[str] = Counter()  # where the body's spawns met the old task
        self.in_all = 0  # join_all calls running
        self.settled: anyio.Event | None = None  # the body waits for every task to block
        self.loop: Any = None
        self.joiners = [Joiner(f"joiner {i}", kind) for i, kind in enumerate(script.joiners)]
        self.logged: Counter[int] = Counter()  # failures logged (S13), by task id
        self.violations: list[str] = []
        self.watchdog: anyio.CancelScope | None = None
        self.finished = False
        self.log: list[str] = []
        self.failed_at = 0

    # -- what the script does ----------------------------------------------

    def spawn(self, spec: str, *, body: bool = False) -> None:
        jm = self.jm
        assert jm is not None
        name, kind = spec.split(":")
        task_id = len(self.tasks) + 1
        key = Key(name, task_id)
        old = self.current.get(name)
        present = key in jm
        if old is not None and not present:
            if not self.in_all:
                self.fail(f"key {name!r} has task {old} but is not in the map")
                return
            # A running join_all took the old outcome: the newer task wins if the
            # join_all is cancelled and puts it back.
            del self.current[name]
            self.held.add(old)
            self.met["held"] += 1
        elif old is not None:
            self.tasks[old].replaced = True
            del self.current[name]
            handle = self.tasks[old].handle
            if not handle.done():
                self.met["aborting" if handle.aborted else "running"] += 1
            else:
                self.met["finished"] += 1
        elif present:
            self.fail(f"key {name!r} is in the map, but the model has no task for it")
        elif body:
            seen = any(task.key.name == name for task in self.tasks.values())
            self.met["taken" if seen else "new"] += 1
        handle = jm.spawn(key, _task, task_id, kind)
        if handle.id != task_id:
            self.fail(f"spawn returned handle {handle.id}, expected {task_id}")
        if old is not None and self.tasks[old].replaced:
            replaced = self.tasks[old].handle
            if not (replaced.done() or replaced.aborted):
                self.fail(f"task {old}, replaced under {name!r}, was not aborted")
        self.tasks[task_id] = MapTask(key, kind, handle)
        self.current[name] = task_id
        if kind == "abort":
            handle.abort()
            self.tasks[task_id].aborted = True

    def act(self, action: str) -> None:
        jm = self.jm
        assert jm is not None
        if "," in action:  # several actions in one step, no checkpoint between
            for each in action.split(","):
                self.act(each)
        elif action == "-":
            return
        elif action == "try":
            pair = jm.try_join_next()
            if pair is not None:
                self.record(*pair, who="try_join_next")
        elif action.startswith("abort "):
            name = action.split()[1]
            task_id = self.current.get(name)
            found = jm.abort(Key(name, 0))
            if task_id is not None and found:
                self.tasks[task_id].aborted = True
            elif found or (task_id is not None and not self.in_all):
                self.fail(f"abort({name!r}) returned {found}, the model has task {task_id}")
        elif action.startswith("cancel "):
            joiner = self.joiners[int(action.split()[1])]
            if joiner.inside_first:
                assert joiner.scope is not None
                joiner.cancel_sent = True
                joiner.scope.cancel()
        else:
            self.spawn(action, body=True)

    def record(self, key: Key, outcome: Outcome[int], who: str) -> None:
        task = self.tasks.get(outcome.id)
        if task is None:
            self.fail(f"outcome {outcome.id} of a task never in the map handed out to {who}")
            return
        self.handed[outcome.id] += 1
        if self.handed[outcome.id] > 1:
            self.fail(f"outcome {outcome.id} handed out twice, the second time to {who}")
        if task.replaced or outcome.id in self.held:
            self.fail(f"outcome {outcome.id} of a replaced task handed out to {who}")
        if key is not task.key:
            self.fail(f"outcome {outcome.id} handed out with key {key!r}, spawned as {task.key!r}")
        if self.current.get(key.name) == outcome.id:
            del self.current[key.name]
        if outcome.cancelled():
            if not task.aborted:
                self.fail(f"task {outcome.id} ({task.kind}) came out cancelled, never aborted")
        elif task.kind in ("abort", "hang"):
            self.fail(f"task {outcome.id} ({task.kind}) came out not cancelled: {outcome!r}")
        elif task.kind == "fail":
            if not isinstance(outcome.exception(), ValueError):
                self.fail(f"task {outcome.id} failed, but its outcome is {outcome!r}")
        elif outcome.result() != outcome.id:
            self.fail(f"task {outcome.id} returned its id, but its outcome is {outcome!r}")

    def all_returned(self, pairs: list[tuple[Key, int]], who: str) -> None:
        """A join_all returned: every outcome it took is handed out, held ones included."""
        for key, value in pairs:
            task = self.tasks.get(value)
            if task is None or key is not task.key:
                self.fail(f"join_all returned ({key!r}, {value}), no such task")
                continue
            self.handed[value] += 1
            if self.handed[value] > 1:
                self.fail(f"outcome {value} handed out twice, the second time to {who}")
            if task.replaced:
                self.fail(f"outcome {value} of a replaced task returned by {who}")
            if self.current.get(key.name) == value:
                del self.current[key.name]
        self.held.clear()

    def all_cancelled(self) -> None:
        """A join_all was cancelled: it put back what it took, but not a held outcome."""
        for task_id in self.held:
            self.tasks[task_id].replaced = True
        self.held.clear()

    # -- what is checked -----------------------------------------------------

    def fail(self, message: str) -> None:
        if not self.violations:
            message = f"{message} [{self.state()}]"
            self.failed_at = len(self.log)
        self.violations.append(message)
        if self.watchdog is not None:
            self.watchdog.cancel()

    def check_keys(self) -> None:
        """After every callback: len, keys() and the model agree, key objects included (S16)."""
        jm = self.jm
        if not self.open or jm is None or self.violations:
            return
        keys = list(jm.keys())
        if len(jm) != len(keys):
            self.fail(f"len(jm) == {len(jm)}, but keys() has {keys}")
            return
        expected = {self.tasks[task_id].key for task_id in self.current.values()}
        if self.in_all:
            # A running join_all holds outcomes the model cannot see.
            wrong = [key for key in keys if key not in expected]
        else:
            wrong = [key for key in keys if key not in expected] + [
                key for key in expected if key not in keys
            ]
        if wrong:
            self.fail(f"keys() is {keys}, the model has {sorted(expected, key=str)}")
            return
        for key in keys:
            if key is not self.tasks[self.current[key.name]].key:
                self.fail(f"keys() has {key!r}, the key's task was spawned with another key object")

    def quiescent(self) -> bool:
        """
        Every task is blocked: if the body waits in "settle", check that nobody waits in
        join_next while an outcome is ready (S5) and let the body go on.

        Returns whether the body was settling (the run goes on) rather than a deadlock.
        """
        if self.settled is None or self.settled.is_set():
            return False
        jm = self.jm
        assert jm is not None
        waiting = [joiner.name for joiner in self.joiners if joiner.waiting]
        if waiting and jm.stats().finished:
            self.fail(f"{waiting} waiting in join_next while an outcome is ready")
        self.settled.set()
        return True

    def on_idle(self, why: str) -> None:
        if self.quiescent():
            self.loop._idle_calls = 0  # the body's settle made something ready
        else:
            self.fail(why)

    def state(self) -> str:
        jm = self.jm
        keys = list(jm.keys()) if jm is not None else None
        size = len(jm) if jm is not None else None
        waiting = [j.name for j in self.joiners if j.waiting]
        ended = [j.name for j in self.joiners if j.ended]
        return (
            f"len={size}, keys={keys}, model={self.current}, held={sorted(self.held)}, "
            f"handed out {sorted(self.handed.elements())}, waiting: {waiting}, ended: {ended}"
        )

    def verify(self, where: str = "") -> None:
        assert not self.violations, f"{where}{self.violations[0]}"
        assert self.finished, f"{where}the script did not finish"
        assert all(j.ended for j in self.joiners), f"{where}a joiner did not end"
        kept = {task_id for task_id, task in self.tasks.items() if not task.replaced}
        assert self.handed == Counter(kept), (
            f"{where}handed out {sorted(self.handed.elements())}, expected {sorted(kept)}"
        )
        # A replaced task that failed is logged once (S13, S16); nothing else is.
        failed = {
            task_id
            for task_id, task in self.tasks.items()
            if task.replaced and task.handle._kind == FAILED
        }
        assert self.logged == Counter(failed), f"{where}logged {self.logged}, expected {failed}"


class _FailureLog(logging.Handler):
    """Counts the task ids of the failures the library logs (S13)."""

    def __init__(self, run: MapRun) -> None:
        super().__init__()
        self.run = run

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        errors = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
        for error in errors:
            if isinstance(error, ValueError):
                self.run.logged[error.args[0]] += 1


async def _map_joiner(run: MapRun, joiner: Joiner) -> None:
    jm = run.jm
    assert jm is not None
    if joiner.kind in ("all", "all-once"):
        joiner.inside_first = True
        run.in_all += 1
        joiner.waiting = True
        pairs = None
        try:
            with anyio.CancelScope() as joiner.scope:
                pairs = await jm.join_all()
        except Exception as exc:  # a violation, not a crash
            run.fail(f"join_all raised {exc!r}")
        finally:
            joiner.inside_first = False
            joiner.waiting = False
            run.in_all -= 1
        if pairs is not None:
            run.all_returned(pairs, joiner.name)
        else:
            run.all_cancelled()
        if joiner.kind == "all-once":  # the others must be woken by the put-back
            joiner.ended = True
            return
    targeted = joiner.kind == "cancel"
    while True:
        joiner.waiting = True
        try:
            if targeted:
                targeted = False
                joiner.inside_first = True
                joiner.entered.set()
                try:
                    with anyio.CancelScope() as joiner.scope:
                        pair = await jm.join_next()
                finally:
                    joiner.inside_first = False
                if joiner.scope.cancelled_caught:
                    continue
            else:
                pair = await jm.join_next()
        finally:
            joiner.waiting = False
        if pair is None:
            break
        run.record(*pair, who=joiner.name)
        run.check_keys()
    joiner.ended = True


async def _map_trio_deadlock_watch(run: MapRun) -> None:
    await anyio.wait_all_tasks_blocked()
    while run.quiescent():
        await anyio.wait_all_tasks_blocked()
    run.fail("deadlock: every task is blocked")


async def play_map(run: MapRun) -> None:
    """Run a MapScript once; violations are recorded on ``run``, never raised here."""
    script = run.script
    on_asyncio = sniffio.current_async_library() == "asyncio"
    loop_watch = (
        watching(asyncio.get_running_loop(), run.on_idle)
        if on_asyncio
        else contextlib.nullcontext()
    )
    run.loop = asyncio.get_running_loop() if on_asyncio else None
    handler = _FailureLog(run)
    logger = logging.getLogger("anyio_joinset")
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False  # counted here, not printed
    try:
        with loop_watch, anyio.CancelScope() as run.watchdog:
            async with anyio.create_task_group() as watch:
                if not on_asyncio:
                    watch.start_soon(_map_trio_deadlock_watch, run)
                async with JoinMap[Key, int]() as jm:
                    run.jm, run.open = jm, True
                    for spec in script.tasks:
                        run.spawn(spec)
                    async with anyio.create_task_group() as tg:
                        for joiner in run.joiners:
                            tg.start_soon(_map_joiner, run, joiner)
                            if joiner.kind == "cancel":
                                tg.start_soon(_canceller, joiner)
                        for action in script.body:
                            await checkpoint()
                            if action == "settle":
                                run.settled = anyio.Event()
                                await run.settled.wait()  # set by run.quiescent()
                                run.settled = None
                                continue
                            run.act(action)
                            run.check_keys()  # also on the seeded loops, with no after_step
                    # Every joiner ended by itself; the body takes what came after.
                    while (pair := await jm.join_next()) is not None:
                        run.record(*pair, who="the body")
                    run.check_keys()
                    run.open = False
                run.finished = True
                watch.cancel_scope.cancel()
    finally:
        logger.propagate = propagate
        logger.removeHandler(handler)


def run_map_on(chooser: Chooser, script: MapScript) -> MapRun:
    """Run ``script`` once on a ChoosingLoop and verify it; raise on a violation."""
    loop = ChoosingLoop(chooser)
    run = MapRun(script)
    loop.after_step = run.check_keys
    run.log = loop.log
    anyio.run(play_map, run, backend="asyncio", backend_options={"loop_factory": lambda: loop})
    try:
        run.verify(f"{script.name}: ")
    except AssertionError as exc:
        steps = "\n    ".join(loop.log[max(run.failed_at - 25, 0) : run.failed_at])
        msg = f"{exc}\n  the last callbacks run, oldest first:\n    {steps}"
        raise AssertionError(msg) from None
    return run


# Schedules run by test_map_exhaustively (measured on the engine of 2026-12-06 with
# AnyIO 4.16; -rP shows them): 472, 938, 230, 1595, 291, 258 and 1427 in this order.
MAP_SCRIPTS = [
    # (a) a key's task finishes while the key is spawned again: before it
    # finishes, before a joiner took it, after; one joiner, then two.
    MapScript(
        "map-replace-one-joiner",
        ("a:fail", "b:slow"),
        ("loop",),
        ("-", "a:ok"),
        frozenset({"running", "finished", "taken"}),
    ),
    MapScript(
        "map-replace-two-joiners",
        ("a:ok", "b:fail"),
        ("loop", "loop"),
        ("a:fail", "a:ok"),
        frozenset({"running", "finished", "taken"}),
    ),
    # (b) a key whose task is being aborted, or was aborted, is spawned again.
    MapScript(
        "map-replace-aborted",
        ("a:hang", "b:abort"),
        ("loop",),
        ("abort a,a:ok", "b:ok", "abort a", "a:ok"),
        frozenset({"aborting", "finished", "taken"}),
    ),
    # (c) a joiner cancelled (AnyIO cancel scope) around the replacement.
    MapScript(
        "map-replace-cancelled-joiner",
        ("a:ok", "b:ok"),
        ("cancel", "loop"),
        ("a:ok",),
        frozenset({"running", "finished", "taken"}),
    ),
    # (d) join_all cancelled while a key is spawned again: the put-back (S11)
    # discards the outcome of a key spawned again meanwhile (S16).
    MapScript(
        "map-join-all-cancelled",
        ("a:ok", "b:slow"),
        ("all",),
        ("a:ok", "cancel 0"),
        frozenset({"running", "finished", "held"}),
    ),
    # The put-back after the newer task was handed out to another joiner (found
    # by this script; see test_put_back_after_newer_handed_out).
    MapScript(
        "map-join-all-and-joiner",
        ("a:ok", "b:slow"),
        ("all", "loop"),
        ("-", "a:ok", "cancel 0"),
        frozenset({"held", "finished", "taken"}),
        max_delays=3,
    ),
    # The put-back (S11) wakes a joiner waiting beside the cancelled join_all,
    # which then ends; the key it waits for is spawned again afterwards.
    MapScript(
        "map-join-all-put-back",
        ("a:ok", "b:hang"),
        ("all-once", "loop"),
        ("-", "cancel 0", "settle", "b:ok"),
        frozenset({"running"}),
        max_delays=3,
    ),
    # (e) try_join_next from the body between the steps.
    MapScript(
        "map-try-between",
        ("a:ok", "b:fail"),
        ("loop",),
        ("try", "a:ok", "try", "b:ok", "try"),
        frozenset({"running", "finished", "taken"}),
    ),
]


def _map_params() -> list[object]:
    return [pytest.param(script, id=script.name) for script in MAP_SCRIPTS]


@pytest.mark.parametrize("script", _map_params())
def test_map_exhaustively(script: MapScript) -> None:
    """S16/S5/S10/S11: no replaced task's outcome is handed out, every other one once,
    keys() and len agree with the live keys, under every schedule within the bound."""
    met: Counter[str] = Counter()

    def run(chooser: Chooser) -> None:
        met.update(run_map_on(chooser, script).met)

    found = explore(run, max_delays=script.max_delays)
    print(f"{script.name}: {found.schedules} schedules, replacements met {dict(met)}")  # noqa: T201
    assert found.schedules > 10
    assert script.expect <= set(met), f"the replacement never met the old task {set(met)}"


MAP_BIG = MapScript(
    "map-big",
    ("a:ok", "b:slow", "c:fail", "d:hang"),
    ("loop", "cancel", "loop"),
    ("a:slow", "try", "abort d,d:ok", "c:ok", "-", "a:fail", "b:ok", "try", "c:abort"),
)

MAP_RANDOM = [*_map_params(), pytest.param(MAP_BIG, id=MAP_BIG.name)]


async def _play_map_seeded(script: MapScript, where: str) -> None:
    run = MapRun(script)
    await play_map(run)
    run.verify(where)


@pytest.mark.parametrize("backend", EXPLORE_BACKENDS)
@pytest.mark.parametrize("script", MAP_RANDOM)
@pytest.mark.parametrize("run_index", range(8))
def test_map_random_schedules(
    script: MapScript, backend: str, run_index: int, request: pytest.FixtureRequest
) -> None:
    """S16/S5/S10: each JoinMap script on a seeded random schedule, the seed from the test id."""
    seed = seed_for(request.node.nodeid)
    name, options = explore_backend(backend, seed)
    where = f"{script.name} on {backend}, seed {seed}: "
    anyio.run(_play_map_seeded, script, where, backend=name, backend_options=options)
    assert run_index >= 0


@pytest.mark.parametrize("script", MAP_RANDOM)
def test_map_random_walks(script: MapScript) -> None:
    """S16/S5/S10: each JoinMap script as random walks: any ready callback may run next."""
    for seed in range(40):
        run_map_on(Chooser(rng=random.Random(seed)), script)


async def _wait_then(event: anyio.Event, value: int) -> int:
    await event.wait()
    return value


async def test_put_back_after_newer_handed_out() -> None:
    """S16 over S11: a cancelled join_all never puts back an outcome whose key was spawned
    again meanwhile, even once the newer task's outcome was handed out."""
    old, new, other = anyio.Event(), anyio.Event(), anyio.Event()
    taken: list[tuple[str, Outcome[int]] | None] = []
    scope = anyio.CancelScope()
    async with JoinMap[str, int]() as jm:
        jm.spawn("a", _wait_then, old, 1)
        jm.spawn("b", _wait_then, other, 2)

        async def join_all() -> None:
            with scope:
                await jm.join_all()

        async def join_one() -> None:
            taken.append(await jm.join_next())

        async with anyio.create_task_group() as tg:
            tg.start_soon(join_all)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(join_one)  # waits behind join_all
            await anyio.wait_all_tasks_blocked()
            old.set()  # join_all takes a's outcome (1) and waits again, behind join_one
            await anyio.wait_all_tasks_blocked()
            jm.spawn("a", _wait_then, new, 3)  # "a" again, while join_all holds the old one
            new.set()  # join_one takes the new task's outcome (3)
            await anyio.wait_all_tasks_blocked()
            scope.cancel()  # join_all puts back what it took
        assert [(pair[0], pair[1].result()) for pair in taken if pair] == [("a", 3)]
        other.set()
        rest = [(key, outcome.result()) async for key, outcome in jm]
        assert rest == [("b", 2)]  # the old task's outcome (1) is never handed out
