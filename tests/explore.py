"""
The schedule explorer: event loops that choose the order of ready callbacks.

The Python counterpart of tokio's loom tests. asyncio runs ready callbacks in
FIFO order and Trio in a random but unseeded one, so a test run sees one
interleaving out of many; a hand-off that is only correct in that one passes
every test and hangs in production. Two tools here take the choice away from
the event loop:

``RandomOrderLoop`` (asyncio) and :func:`seed_trio` (Trio's own randomized
scheduler) run each batch of ready tasks in an order drawn from a seed. The seed
comes from the test id (:func:`seed_for`), so a failing seed is reproduced by
running the same test again; conftest.py prints it with the failure. The
explorer-driven tests (tests/test_explore.py, the stress, chaos and model tests)
use them through the ``asyncio+random``, ``asyncio+eager+random`` and
``trio+random`` backends of :func:`explore_backend`.

``ChoosingLoop`` (asyncio) runs one callback at a time; wherever more than one
task step is ready at the head of the queue it asks a :class:`Chooser` which
runs next. Only task steps trade places, never with another kind of callback:
AnyIO relies on asyncio's FIFO order there (see :class:`RandomOrderLoop`), and
a schedule asyncio can never run would be a false alarm. :func:`explore` enumerates
those choices depth-first by replaying a prefix (as loom and CHESS do), under a
*delay bound*: taking the k-th ready callback instead of the first (FIFO) costs
k delays, and only schedules with at most ``max_delays`` delays in all are run.
Bugs of concurrent code need few delays from the natural order; every schedule
within the bound is run exactly once. The loop also reports a *deadlock*: no
callback is ready, no timer is pending and the scenario has not ended, so
nothing can ever run again (the tests use no I/O and no clocks).

Eager tasks: AnyIO (4.16) recognises ``asyncio.eager_task_factory`` and starts
its task-group tasks lazily all the same, so under ``asyncio+eager`` only tasks
made with ``asyncio.create_task`` start eagerly; the explorer's eager loop
exists for those.

What it found on the engine before issue 8's fix (commit 299a465; run with
``git worktree add /work/prefix 299a465`` and, from outside the checkout so
that the worktree's package is imported,
``PYTHONPATH=/work/prefix pytest /path/to/tests/test_explore.py``):

- Defect 1 (join_next callers still waiting when the set runs empty hang):
  ``test_handoff_exhaustively`` deadlocks with ``len == 0`` and a joiner left
  waiting in join_next on the very first schedule (plain FIFO order) of
  two-tasks-two-joiners, abort-and-try, cancel, cancel-both and native-cancel;
  on schedule 2 (1 delay) of native-and-cancel, 38 (2 delays) of late-spawn
  and 43 (2 delays) of three-tasks-three-joiners. ``test_random_schedules``
  fails 101 of its 160 seeded runs on Python 3.11 (53 of 80 on asyncio+random,
  48 of 80 on trio+random), ``test_random_walks`` fails for every script, and
  the stress test on explored schedules hangs (fails by its deadline) on 21 of
  its 40 seeds (the chaos test on explored schedules, 1,500 tasks, on none).
- Defect 2 (a native asyncio cancellation during the hand-off loses the
  outcome): native-cancel-one-joiner, whose single joiner cannot meet defect 1,
  deadlocks on schedule 13 (2 delays) with ``len == 1``, no task left running
  and one outcome never handed out.
- The Hypothesis model (tests/test_model.py) does not find either: its rules
  run one at a time with the loop settled in between, so a join_next is never
  caught inside its checkpoint.

On the engine of commit 6522fed (outcomes stay buffered until taken
synchronously) every schedule passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import sys
import weakref
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EXPLORE_BACKENDS",
    "Chooser",
    "ChoosingLoop",
    "Deadlock",
    "NondeterministicReplay",
    "RandomOrderLoop",
    "describe_handle",
    "explore",
    "explore_backend",
    "seed_for",
    "seed_trio",
    "watching",
]

# Names of the seeded backends, for the tests that run under the explorer.
EXPLORE_BACKENDS = [
    "asyncio+random",
    *(["asyncio+eager+random"] if sys.version_info >= (3, 12) else []),
    "trio+random",
]


def seed_for(text: str) -> int:
    """A seed that depends only on ``text`` (a test id): stable across runs and Pythons."""
    return zlib.crc32(text.encode())


class Deadlock(AssertionError):
    """Nothing can run any more, yet the scenario has not ended."""


class NondeterministicReplay(AssertionError):
    """A replayed prefix met other ready callbacks than the run that recorded it."""


# -- seeded random order -------------------------------------------------------


class _Watched(asyncio.SelectorEventLoop):
    """
    A selector loop that reports a deadlock: nothing ready, no timer, scenario not over.

    While ``watching`` is set and nothing can ever run again (the scenarios use no
    I/O and no clocks), it calls ``on_idle`` once (the scenario records the state
    and cancels itself); a second time it raises :class:`Deadlock`.
    """

    watching = False
    on_idle: Callable[[str], None] | None = None
    _idle_calls = 0

    def _check_idle(self) -> None:
        if self._ready or not self.watching or self._stopping:  # type: ignore[attr-defined]
            return
        if any(not timer._cancelled for timer in self._scheduled):  # type: ignore[attr-defined]
            return
        self._idle_calls += 1
        if self._idle_calls > 1 or self.on_idle is None:
            self.watching = False
            msg = "deadlock: nothing is ready and the scenario could not be cancelled"
            raise Deadlock(msg)
        self.on_idle("deadlock: no callback is ready and no timer is pending")


def _task_of(handle: Any) -> asyncio.Task[Any] | None:
    """The task a ready callback steps or wakes up, or None for any other callback."""
    owner = getattr(handle._callback, "__self__", None)
    return owner if isinstance(owner, asyncio.Task) else None


def _task_runs(ready: Any) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of two or more consecutive task steps in ``ready``."""
    runs = []
    start = None
    for i, handle in enumerate([*ready, None]):
        if handle is not None and _task_of(handle) is not None:
            if start is None:
                start = i
        else:
            if start is not None and i - start > 1:
                runs.append((start, i))
            start = None
    return runs


class RandomOrderLoop(_Watched):
    """
    asyncio's selector loop, running the ready task steps of each batch in a seeded order.

    asyncio runs the callbacks ready at the start of an iteration in the order
    they were scheduled. This loop shuffles each run of consecutive task steps
    (a task resuming after a checkpoint or a wake-up), as different timing could
    order them; other callbacks keep their place, and no task step crosses one.
    AnyIO relies on that order for some of them: a cancel scope cancelled by
    its own task is delivered by a callback scheduled before the task's next
    step, so shuffling everything would produce schedules asyncio never runs.
    Before shuffling, a run is sorted by task creation order, so that the
    outcome depends on the seed alone, not on the iteration order of a set
    somewhere in AnyIO.
    """

    def __init__(self, seed: int, *, eager: bool = False) -> None:
        super().__init__()
        self.seed = seed
        self._order = random.Random(seed)
        self._ranks: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = weakref.WeakKeyDictionary()
        self._next_rank = itertools.count()
        if eager:
            self.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]

    def _run_once(self) -> None:
        ready: Any = self._ready  # type: ignore[attr-defined]
        if len(ready) > 1:
            runs = _task_runs(ready)
            if runs:
                batch = list(ready)
                for start, stop in runs:
                    segment = sorted(batch[start:stop], key=self._rank)
                    self._order.shuffle(segment)
                    batch[start:stop] = segment
                ready.clear()
                ready.extend(batch)
        else:
            self._check_idle()
        super()._run_once()  # type: ignore[misc]

    def _rank(self, handle: Any) -> int:
        # Tasks are first seen on their first step, scheduled as they are created.
        task = _task_of(handle)
        assert task is not None
        if task not in self._ranks:
            self._ranks[task] = next(self._next_rank)
        return self._ranks[task]


def seed_trio(seed: int) -> None:
    """
    Make Trio's scheduler shuffle each batch of runnable tasks in an order drawn from ``seed``.

    Trio shuffles every batch, from its private ``random.Random``, once
    ``_ALLOW_DETERMINISTIC_SCHEDULING`` is set (Hypothesis sets it when it is
    imported, to make Trio reproducible); otherwise it only reverses half of them.
    """
    from trio._core import _run  # noqa: PLC0415

    _run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    _run._r.seed(seed)


def explore_backend(name: str, seed: int) -> tuple[str, dict[str, Any]]:
    """``(backend, options)`` for ``anyio.run`` for one of ``EXPLORE_BACKENDS``, seeded."""
    if name == "asyncio+random":
        return "asyncio", {"loop_factory": lambda: RandomOrderLoop(seed)}
    if name == "asyncio+eager+random":
        return "asyncio", {"loop_factory": lambda: RandomOrderLoop(seed, eager=True)}
    if name == "trio+random":
        seed_trio(seed)
        return "trio", {}
    msg = f"unknown explorer backend {name!r}; expected one of {EXPLORE_BACKENDS}"
    raise ValueError(msg)


# -- one callback at a time, chosen -------------------------------------------


@dataclass
class Chooser:
    """
    Picks the ready callback to run next; replays ``prefix``, then takes the first.

    ``trace`` records every choice point as ``(choice, options, signature)``.
    """

    prefix: list[int] = field(default_factory=list)
    expected: list[tuple[str, ...]] = field(default_factory=list)
    rng: random.Random | None = None
    trace: list[tuple[int, int, tuple[str, ...]]] = field(default_factory=list)

    def choose(self, signature: tuple[str, ...]) -> int:
        k = len(self.trace)
        if k < len(self.prefix):
            if k < len(self.expected) and self.expected[k] != signature:
                msg = (
                    f"choice point {k}: replay found ready {list(signature)}, "
                    f"the recorded run had {list(self.expected[k])}"
                )
                raise NondeterministicReplay(msg)
            choice = self.prefix[k]
        elif self.rng is not None:
            choice = self.rng.randrange(len(signature))
        else:
            choice = 0
        self.trace.append((choice, len(signature), signature))
        return choice

    @property
    def choices(self) -> list[int]:
        return [choice for choice, _, _ in self.trace]

    @property
    def delays(self) -> int:
        return sum(self.choices)


class ChoosingLoop(_Watched):
    """
    An asyncio loop that runs one ready callback per iteration, picked by a Chooser.

    Between iterations it calls ``after_step`` (for invariants), and it reports
    deadlocks as :class:`RandomOrderLoop` does. With ``chooser.rng`` set it is a
    random walk: each step runs any ready callback, not only the batch's.
    """

    def __init__(
        self,
        chooser: Chooser,
        *,
        max_steps: int = 20_000,
        eager: bool = False,
    ) -> None:
        super().__init__()
        self.chooser = chooser
        self.max_steps = max_steps
        self.steps = 0
        self.log: list[str] = []
        self.after_step: Callable[[], None] | None = None
        self._names = _Names()
        if eager:
            self.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]

    def _run_once(self) -> None:
        ready: Any = self._ready  # type: ignore[attr-defined]
        if any(handle._cancelled for handle in ready):
            live = [handle for handle in ready if not handle._cancelled]
            ready.clear()
            ready.extend(live)
        self._check_idle()
        self.steps += 1
        if self.steps > self.max_steps and self.watching:
            self.watching = False
            msg = f"livelock: still running after {self.max_steps} callbacks"
            raise Deadlock(msg)
        rest: list[Any] = []
        choices = 0
        for handle in ready:
            if _task_of(handle) is None:
                break
            choices += 1
        if choices > 1:
            # Any of the task steps at the head of the queue may run next; a step
            # never overtakes another kind of callback (see RandomOrderLoop).
            signature = tuple(describe_handle(handle, self._names) for handle in ready)[:choices]
            choice = self.chooser.choose(signature)
            chosen = ready[choice]
            del ready[choice]
            rest = list(ready)
            ready.clear()
            ready.append(chosen)
        if ready and self.watching:
            self.log.append(describe_handle(ready[0], self._names))
        try:
            super()._run_once()  # type: ignore[misc]
        finally:
            ready.extendleft(reversed(rest))
        if self.after_step is not None and self.watching:
            self.after_step()


class _Names:
    """Stable names for tasks and objects within one run: kind and order of first sight."""

    def __init__(self) -> None:
        self._seen: dict[int, str] = {}
        self._keep: list[object] = []  # keep ids unique while the run lasts

    def name(self, obj: object, kind: str) -> str:
        key = id(obj)
        if key not in self._seen:
            self._seen[key] = f"{kind}#{len(self._seen)}"
            self._keep.append(obj)
        return self._seen[key]


def describe_handle(handle: Any, names: _Names | None = None) -> str:
    """What a ready callback will do, stable across replays: ``step Task#3 joiner``."""
    callback = handle._callback
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        what = owner.get_name()
        if what.startswith("Task-"):  # asyncio's numbering differs from run to run
            coro = owner.get_coro()
            what = getattr(coro, "__qualname__", type(coro).__name__)
        label = names.name(owner, "Task") if names is not None else "Task"
        return f"{label} {what}"
    what = getattr(callback, "__qualname__", type(callback).__name__)
    if owner is not None and names is not None:
        return f"{what} of {names.name(owner, type(owner).__name__)}"
    return str(what)


@dataclass
class Exploration:
    """What :func:`explore` covered."""

    schedules: int = 0
    choice_points: int = 0  # the most in one schedule
    steps: int = 0  # the most callbacks in one schedule


def explore(
    run: Callable[[Chooser], None],
    *,
    max_delays: int,
    max_schedules: int = 100_000,
) -> Exploration:
    """
    Run ``run`` once per schedule with at most ``max_delays`` delays, depth-first.

    ``run(chooser)`` must run the scenario on a :class:`ChoosingLoop` built with
    ``chooser`` and raise on a violation; the error it raises is re-raised with the
    schedule (the list of choices) that reproduces it.

    Raises:
        AssertionError: A schedule failed, or there were more than ``max_schedules``.
    """
    stats = Exploration()
    prefix: list[int] = []
    expected: list[tuple[str, ...]] = []
    while True:
        chooser = Chooser(prefix=prefix, expected=expected)
        try:
            run(chooser)
        except BaseException as exc:
            note = (
                f"schedule #{stats.schedules + 1} (choices {chooser.choices}, "
                f"{chooser.delays} delays) failed: {exc}"
            )
            raise AssertionError(note) from exc
        stats.schedules += 1
        stats.choice_points = max(stats.choice_points, len(chooser.trace))
        if stats.schedules >= max_schedules:
            msg = f"more than {max_schedules} schedules: lower max_delays or the scenario"
            raise AssertionError(msg)
        nxt = _next_prefix(chooser.trace, max_delays)
        if nxt is None:
            return stats
        prefix = nxt
        expected = [signature for _, _, signature in chooser.trace[: len(nxt)]]


def _next_prefix(
    trace: list[tuple[int, int, tuple[str, ...]]], max_delays: int
) -> list[int] | None:
    """The next schedule in depth-first order: bump the deepest choice that can be bumped."""
    before = [0]
    for choice, _, _ in trace:
        before.append(before[-1] + choice)
    for k in range(len(trace) - 1, -1, -1):
        choice, options, _ = trace[k]
        if choice + 1 < options and before[k] + choice + 1 <= max_delays:
            return [c for c, _, _ in trace[:k]] + [choice + 1]
    return None


@contextlib.contextmanager
def watching(loop: asyncio.AbstractEventLoop, on_idle: Callable[[str], None]) -> Iterator[None]:
    """
    Report a deadlock of an explorer loop to ``on_idle`` (a no-op on other loops).

    ``on_idle`` must make something ready (cancel the scenario); if the loop is
    still idle afterwards it raises :class:`Deadlock`.
    """
    if not isinstance(loop, _Watched):
        yield
        return
    loop.on_idle = on_idle
    loop.watching = True
    try:
        yield
    finally:
        loop.watching = False
