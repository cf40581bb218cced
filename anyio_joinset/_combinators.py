# The combinators, written once against the engine's operations (take the next
# outcome, put outcomes back, abort all) so both faces get them: shutdown (S9),
# join_all (S11), first_success (S19) and feeding (S20).
#
# Cancel safety (S11, S19): everything a combinator took and did not return or
# raise goes back to the set, ahead of later outcomes, in the order it was taken.
# pyright: reportPrivateUsage=false
from __future__ import annotations

import math
import sys
import time
from collections.abc import AsyncIterable, Callable, Generator, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, final

import anyio
from anyio.lowlevel import checkpoint

from ._calling import check_map_func
from ._engine import Engine, discard
from ._outcome import SUCCEEDED, Outcome
from ._states import OPEN, SHUTTING

if TYPE_CHECKING:
    from anyio import TaskHandle

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup

T = TypeVar("T")
V = TypeVar("V")
I = TypeVar("I")  # noqa: E741


def check_grace(grace: object, face: str) -> float | None:
    """``shutdown(grace=)``: None or a real number of seconds >= 0, not NaN (S3)."""
    if grace is None:
        return None
    if not isinstance(grace, (int, float)) or isinstance(grace, bool):
        msg = (
            f"{face}.shutdown() grace must be None or a number of seconds, "
            f"got {type(grace).__name__}."
        )
        raise TypeError(msg)
    if math.isnan(grace) or grace < 0:
        msg = f"{face}.shutdown() grace must be None or at least 0 seconds, got {grace!r}."
        raise ValueError(msg)
    return float(grace)


@contextmanager
def _shutting(engine: Engine[Any]) -> Generator[None, None, None]:
    """
    While it lasts, new spawns are aborted before they start (S9) and feeding stops.

    Counted, so a shutdown that ends (or is cancelled) while another one still
    waits leaves the set shutting down until the last one is done.
    """
    engine._draining += 1
    if engine._state == OPEN:
        engine._state = SHUTTING
    try:
        engine._stop_feeding()
        yield
    finally:
        engine._draining -= 1
        if not engine._draining and engine._state == SHUTTING:
            engine._state = OPEN


async def _drain(engine: Engine[T], into: list[Outcome[T]] | None) -> None:
    """Abort every task and wait for all; new spawns meanwhile never run (S9)."""
    with _shutting(engine):
        engine._abort_all()
        while (outcome := await engine._next()) is not None:
            if into is None:
                discard(outcome)
            else:
                into.append(outcome)


async def shutdown(engine: Engine[T], grace: float | None) -> None:
    """Abort all, wait for every task, discard the outcomes (S9)."""
    with _shutting(engine):
        if grace and engine._pending:
            with anyio.move_on_after(grace):
                while (outcome := await engine._next()) is not None:
                    discard(outcome)
        await _drain(engine, None)


async def join_all(
    engine: Engine[T], present: Callable[[Outcome[T]], V], fail_fast: bool, face: str
) -> list[V]:
    """Every value in completion order, or the failure(s) (S11)."""
    taken: list[Outcome[T]] = []
    try:
        while (outcome := await engine._next()) is not None:
            taken.append(outcome)
            if fail_fast and outcome._kind != SUCCEEDED:
                await _drain(engine, taken)
                break
    except BaseException:
        engine._put_back(taken)
        raise
    failed = [outcome for outcome in taken if outcome._kind != SUCCEEDED]
    if not failed:
        return [present(outcome) for outcome in taken]
    if fail_fast:
        for outcome in failed[1:]:
            discard(outcome)  # drained after the first failure, never retrieved (S13)
        raise failed[0]._failure()
    msg = f"{len(failed)} of the {face}'s {len(taken)} tasks failed or were cancelled"
    raise ExceptionGroup(msg, [outcome._failure() for outcome in failed])


async def first_success(engine: Engine[T], present: Callable[[Outcome[T]], V], face: str) -> V:
    """The first task to succeed wins; the rest are aborted and drained (S19)."""
    taken: list[Outcome[T]] = []
    winner: Outcome[T] | None = None
    try:
        while (outcome := await engine._next()) is not None:
            taken.append(outcome)
            if outcome._kind == SUCCEEDED:
                winner = outcome
                drained: list[Outcome[T]] = []
                await _drain(engine, drained)
                taken.extend(drained)
                break
    except BaseException:
        engine._put_back(taken)
        raise
    if winner is not None:
        for outcome in taken[taken.index(winner) + 1 :]:
            discard(outcome)
        return present(winner)
    if not taken:
        msg = f"This {face} has no tasks; spawn some before first_success()."
        raise LookupError(msg)
    msg = f"no task of the {face} succeeded"
    raise ExceptionGroup(msg, [outcome._failure() for outcome in taken])


@final
class _Feeding(Generic[T, I]):
    """What the feeder task needs: no reference back to the consumer's iterator."""

    __slots__ = ("engine", "error", "inputs", "since", "spawn", "task")

    def __init__(
        self,
        engine: Engine[T],
        inputs: Iterable[I] | AsyncIterable[I],
        spawn: Callable[[I], object],
    ) -> None:
        self.engine: Engine[T] = engine
        self.inputs: Iterable[I] | AsyncIterable[I] = inputs
        self.spawn: Callable[[I], object] = spawn
        self.error: BaseException | None = None
        self.task: TaskHandle[None] | None = None
        self.since: float | None = None  # waiting for room since (for a snapshot)

    async def _wait_for_room(self) -> None:
        # Under limit, count what is not consumed yet (finished outcomes included):
        # a slow consumer holds the feeding back, so memory stays O(limit) (S20).
        engine = self.engine
        self.since = time.monotonic()
        if engine._slots is not None:
            await engine._wait_for_room(engine._slots.limit)
        await engine._wait_for_capacity()
        self.since = None

    async def run(self) -> None:
        engine = self.engine
        inputs = self.inputs
        try:
            if isinstance(inputs, AsyncIterable):
                items = inputs.__aiter__()
                try:
                    while True:
                        await self._wait_for_room()
                        try:
                            item = await items.__anext__()
                        except StopAsyncIteration:
                            break
                        self.spawn(item)
                finally:
                    # We began the iteration, so we end it, inside the block: an
                    # async generator's cleanup never outlives the set (S20).
                    aclose = getattr(items, "aclose", None)
                    if aclose is not None:
                        with anyio.CancelScope(shield=True):
                            await aclose()
            else:
                iterator: Iterator[I] = iter(inputs)
                while True:
                    await self._wait_for_room()
                    try:
                        item = next(iterator)
                    except StopIteration:
                        break
                    self.spawn(item)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer
            self.error = exc
        finally:
            task = self.task
            assert task is not None  # noqa: S101
            engine._feeders.pop(task, None)
            engine._wake_all()  # our consumer, waiting on an empty set, may stop now


@final
class Feed(Generic[T, V]):
    """
    What ``map()`` returns: ``async for ... in js.map(func, inputs)`` (S20).

    A feeder task of its own (in the set's task group, not one of the set's tasks:
    it takes no slot and does not count in ``len``) waits until fewer than ``limit``
    outcomes are still to be taken, and for the ``rate`` turn, before it takes each
    next input, so at most ``limit`` inputs are in memory at once. Iteration takes
    the set's outcomes, fed or spawned by hand, until the inputs are exhausted and
    the set is empty. `aclose`, ``shutdown()`` and leaving the block stop the
    feeding, and so does dropping the iterator (breaking out of ``async for x in
    js.map(...)`` does; keep the Feed in a variable and call `aclose` instead).
    """

    __slots__ = ("_feeding", "_present", "_started")

    def __init__(self, feeding: _Feeding[T, Any], present: Callable[[Outcome[T]], V]) -> None:
        self._feeding = feeding
        self._present = present
        self._started = False

    def __aiter__(self) -> Feed[T, V]:
        """The iterator itself: ``async for ... in js.map(...)``."""
        return self

    async def __anext__(self) -> V:
        """The next outcome of the set, tagged with its input (or key)."""
        feeding = self._feeding
        engine = feeding.engine
        if not self._started:
            self._started = True
            engine._check_thread("map()")
            if engine._state > SHUTTING:
                raise engine._not_open("map()")
            if engine._state == OPEN:
                task = engine._tg.create_task(feeding.run(), name=f"{engine._face}.map() feeder")
                feeding.task = task
                engine._feeders[task] = None
        while True:
            if feeding.error is None:
                outcome = await engine._next()
                if outcome is not None:
                    return self._present(outcome)
            if feeding.error is not None:
                # The inputs raised: raised here, at once (their outcomes stay in the set).
                error, feeding.error = feeding.error, None
                raise error
            if feeding.task is None or feeding.task not in engine._feeders:
                raise StopAsyncIteration
            # The set is empty, but our feeder may still spawn: wait for news.
            await engine._wait()

    async def aclose(self) -> None:
        """Stop feeding: no more inputs are taken (tasks already spawned keep running)."""
        self._stop()
        await checkpoint()

    def _stop(self) -> None:
        task = self._feeding.task
        if task is not None and task in self._feeding.engine._feeders:
            task.cancel()

    def __del__(self) -> None:
        # Broke out of the loop and dropped the iterator: stop taking inputs. (If the
        # event loop is already gone, there is nothing left to stop.)
        with suppress(Exception):
            self._stop()


def feed(
    engine: Engine[T],
    func: object,
    inputs: object,
    spawn: Callable[[Any], object],
    present: Callable[[Outcome[T]], V],
) -> Feed[T, V]:
    """Check ``map()``'s arguments at the call (S2, S3) and make its iterator (S20)."""
    where = f"{engine._face}.map()"
    engine._check_thread("map()")
    check_map_func(func, where)
    if not isinstance(inputs, (Iterable, AsyncIterable)):
        msg = (
            f"{where} expects its inputs as an iterable or an async iterable, "
            f"got {type(inputs).__name__}."
        )
        raise TypeError(msg)
    feeding: _Feeding[T, Any] = _Feeding(engine, cast("Iterable[Any]", inputs), spawn)
    return Feed(feeding, present)


def outcome_only(outcome: Outcome[T]) -> Outcome[T]:
    """A JoinSet's view of an outcome: the outcome itself."""
    return outcome


def value_only(outcome: Outcome[T]) -> T:
    """A JoinSet's join_all/first_success view of a successful outcome."""
    return outcome.result()


def tagged(outcome: Outcome[T]) -> tuple[Any, Outcome[T]]:
    """A JoinMap's key (or a fed task's input) with its outcome."""
    return outcome._handle._key, outcome


def keyed_value(outcome: Outcome[T]) -> tuple[Any, T]:
    """A JoinMap's join_all/first_success view of a successful outcome."""
    return outcome._handle._key, outcome.result()
