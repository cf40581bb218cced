"""Small task bodies shared by the tests; each is ordered by events, never sleeps."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from anyio_joinset import Instrument

if TYPE_CHECKING:
    from anyio_joinset import JoinHandle, JoinSet, Outcome

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup, ExceptionGroup
else:
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup

__all__ = [
    "VIRTUAL_TIME",
    "BaseExceptionGroup",
    "ExceptionGroup",
    "Gate",
    "Recorder",
    "VirtualTimeLoop",
    "consume_randomly",
    "fail_with",
    "forever",
    "unwind_after",
    "value_of",
]


# AnyIO before 4.16 does not close its own wrapper coroutine when a task factory
# raises: its "never awaited" warning is AnyIO's, and filterwarnings = error.
OLD_ANYIO_LEAKS = pytest.mark.skipif(
    tuple(int(part) for part in version("anyio").split(".")[:2]) < (4, 16),
    reason="AnyIO < 4.16 leaks its task wrapper when a task factory raises",
)


class Gate:
    """A task body that records that it started, then waits to be released."""

    def __init__(self) -> None:
        self.started = False
        self.finished = False
        self.cleaned_up = False
        self.release = anyio.Event()

    async def wait(self, value: object = None) -> object:
        self.started = True
        try:
            await self.release.wait()
        finally:
            self.cleaned_up = True
        self.finished = True
        return value


class Recorder(Instrument):
    """Records every event as a tuple, and the handle of every task spawned (S31)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.handles: list[JoinHandle[Any]] = []

    def task_spawned(self, joinset: Any, handle: JoinHandle[Any]) -> None:
        self.events.append(("spawned", handle.name))
        self.handles.append(handle)

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


async def value_of(value: object) -> object:
    """Return ``value`` after one checkpoint."""
    await anyio.lowlevel.checkpoint()
    return value


async def fail_with(exc: BaseException) -> None:
    """Raise ``exc`` after one checkpoint."""
    await anyio.lowlevel.checkpoint()
    raise exc


async def unwind_after(release: anyio.Event) -> None:
    """Wait until cancelled, then take until ``release`` to unwind (shielded)."""
    try:
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await release.wait()


async def forever() -> None:
    """Wait until cancelled."""
    await anyio.sleep_forever()


async def cancel_after(scope: anyio.CancelScope, steps: int) -> None:
    """Cancel ``scope`` after ``steps`` checkpoints."""
    for _ in range(steps):
        await anyio.lowlevel.checkpoint()
    scope.cancel()


async def consume_randomly(
    js: JoinSet[Any],
    rng: random.Random,
    record: Callable[[Outcome[Any]], None],
    producer_done: anyio.Event,
) -> None:
    """
    Take outcomes until the set is empty for good, then return by itself.

    A random mix of join_next, join_next cancelled at a random point (it must lose
    nothing) and try_join_next. It returns when join_next gives ``None`` (the set
    is empty) after ``producer_done`` was set: nobody spawns any more, and no
    task is left to spawn a child. A test awaits its consumers and never cancels
    them, so a consumer stuck in join_next fails the test (by its deadline).
    """
    while True:
        roll = rng.random()
        if roll < 0.1:
            outcome = js.try_join_next()
            if outcome is not None:
                record(outcome)
            await anyio.lowlevel.checkpoint()
            continue
        returned = empty_for_good = False
        if roll < 0.3:
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_after, scope, rng.randrange(3))
                    outcome = await js.join_next()
                    # Take it before the next checkpoint, which may be cancelled.
                    returned, empty_for_good = True, outcome is None and producer_done.is_set()
                    if outcome is not None:
                        record(outcome)
                    tg.cancel_scope.cancel()
        else:
            outcome = await js.join_next()
            returned, empty_for_good = True, outcome is None and producer_done.is_set()
            if outcome is not None:
                record(outcome)
        if empty_for_good:
            return
        if returned and outcome is None:
            await anyio.lowlevel.checkpoint()  # empty for now: the producer goes on


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """
    An asyncio loop on virtual time: whenever no callback is ready, the clock jumps
    to the next timer (as Trio's ``MockClock(autojump_threshold=0)``), so the
    rate tests (S18) see exact times and take no real time. No I/O, no threads.
    """

    def __init__(self, *, eager: bool = False) -> None:
        super().__init__()
        self._now = 0.0
        if eager:
            self.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]

    def time(self) -> float:
        return self._now

    def _run_once(self) -> None:
        if not self._ready:  # type: ignore[attr-defined]
            timers = [t.when() for t in self._scheduled if not t.cancelled()]  # type: ignore[attr-defined]
            if timers:
                self._now = max(self._now, min(timers))
        super()._run_once()  # type: ignore[misc]


def virtual_time_backends() -> list[Any]:
    from trio.testing import MockClock  # noqa: PLC0415

    params = [
        pytest.param(("asyncio", {"loop_factory": VirtualTimeLoop}), id="asyncio+virtual-time"),
        pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio+mock-clock"),
    ]
    if sys.version_info >= (3, 12):
        params.insert(
            1,
            pytest.param(
                ("asyncio", {"loop_factory": lambda: VirtualTimeLoop(eager=True)}),
                id="asyncio+eager+virtual-time",
            ),
        )
    return params


# Run a test on virtual time (S18): asyncio (and eager asyncio) on VirtualTimeLoop,
# Trio on its MockClock. (uvloop's clock cannot be replaced.) Never await
# anyio.wait_all_tasks_blocked() on asyncio under it: it polls with a 0.1 s sleep,
# which moves the virtual clock.
VIRTUAL_TIME = pytest.mark.parametrize("anyio_backend", virtual_time_backends())
