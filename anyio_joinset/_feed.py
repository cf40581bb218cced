# Feeding (API.md S20)
# --------------------
# ``map(func, inputs)`` returns a Feed. A feeder task of its own (in the set's
# task group, not one of the set's tasks: it takes no slot, does not count in
# ``len``) waits until an input could be spawned at once (fewer than ``limit``
# outcomes still to be taken, a free slot and the rate turn, all at one instant)
# before it takes the next input, and spawns it synchronously, with no await in
# between: every item taken is spawned, or kept in ``Feed.unfed`` when the set
# can no longer take it. The Feed's consumer takes the set's outcomes with the
# engine's operations (wait for a wake-up, then take synchronously), so the
# engine's invariant 3 holds for it: nothing can cancel it between its wake-up
# and the take. The feeder wakes every waiter when it ends (or the inputs raise),
# so a consumer waiting on an empty set sees that at once.
#
# Who closes the inputs: the Feed closes only what it began, the iterator it got
# from an iterable that is not its own iterator, and an async generator object
# (it iterates it, so it ends it, inside the block, as ``contextlib.aclosing``
# would; PEP 525 would otherwise finalize it later, outside the block). Anything
# else passed in (a memory object receive stream, a generator, an iterator the
# caller holds) is the caller's: the Feed stops taking from it, never closes it.
#
# An error raised by the inputs waits on the Feed for its next step. One that no
# step raises is logged (S13) once nothing can raise it any more: the Feed closed
# (``aclose``, its block, dropped) or the set's block left.
# pyright: reportPrivateUsage=false
from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from contextlib import suppress
from types import AsyncGeneratorType, TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, final

import anyio
from anyio.lowlevel import checkpoint

from ._calling import check_map_func, close_coroutines
from ._native import ended_unstepped
from ._states import CLOSING, OPEN, SHUTTING

if TYPE_CHECKING:
    from anyio import TaskHandle

    from ._engine import Engine
    from ._outcome import Outcome

    if sys.version_info >= (3, 11):
        from typing import Self
    else:
        from typing_extensions import Self

T = TypeVar("T")
V = TypeVar("V")
I = TypeVar("I")  # noqa: E741

logger = logging.getLogger("anyio_joinset")


@final
class _Feeding(Generic[T, I]):
    """
    The feeder's side: no reference back to the Feed, so dropping the Feed stops it.

    Registered in the engine's ``_feeders`` while its task runs or an error of the
    inputs waits to be raised; the engine calls `cancel` to stop feeding (S9, S13).
    """

    __slots__ = ("ended", "engine", "error", "inputs", "since", "spawn", "task", "unfed")

    def __init__(
        self,
        engine: Engine[T],
        inputs: Iterable[I] | AsyncIterable[I],
        spawn: Callable[[I], object],
    ) -> None:
        self.engine: Engine[T] = engine
        self.inputs: Iterable[I] | AsyncIterable[I] = inputs
        self.spawn: Callable[[I], object] = spawn
        self.error: Exception | None = None
        self.task: TaskHandle[None] | None = None
        self.ended: anyio.Event | None = None  # set once the feeder task has ended
        self.unfed: list[I] = []
        self.since: float | None = None  # waiting for room since (for a snapshot)

    @property
    def feeding(self) -> bool:
        """Whether the feeder task runs: its consumer waits even on an empty set."""
        return self.ended is not None and not self.ended.is_set()

    def start(self) -> None:
        engine = self.engine
        self.ended = anyio.Event()
        engine._feeders[self] = None
        self.task = engine._tg.create_task(self.run(), name=f"{engine._face}.map() feeder")

    def cancel(self) -> None:
        """Stop feeding for good (``_stop_feeding``: shutdown, join_all, leaving, S9)."""
        task = self.task
        if task is not None and self.feeding:
            task.cancel()
        if self.engine._state >= CLOSING:
            self.drop_error()  # nobody can raise it any more (S13)

    async def stop(self) -> None:
        """Stop feeding and wait until the feeder, and the inputs' cleanup, have ended."""
        self.cancel()
        ended = self.ended
        if ended is not None and not ended.is_set():
            with anyio.CancelScope(shield=True):
                await ended.wait()
        self.drop_error()

    def take_error(self) -> Exception:
        error = self.error
        assert error is not None  # noqa: S101
        self.error = None
        self.engine._feeders.pop(self, None)  # an error is only stored as the feeder ends
        return error

    def drop_error(self) -> None:
        """An inputs error that no step raised is logged, never silent (S13)."""
        error, self.error = self.error, None
        if not self.feeding:
            self.engine._feeders.pop(self, None)
        if error is not None:
            logger.warning(
                "%s.map(): the inputs raised an exception that no step of the Feed raised",
                self.engine._face,
                exc_info=error,
            )

    async def _wait_until_an_input_could_start(self) -> None:
        # Under limit, count what is not consumed yet (finished outcomes included):
        # a slow consumer holds the feeding back, so memory stays O(limit) (S20).
        # All conditions must hold at one instant: each wait may undo another's.
        engine = self.engine
        slots = engine._slots
        self.since = time.monotonic()
        while True:
            if slots is not None:
                await engine._wait_for_room(slots.limit)
            await engine._wait_for_capacity()
            if slots is None or engine._pending < slots.limit or engine._state > SHUTTING:
                self.since = None
                return

    def _feed(self, item: I) -> None:
        """Spawn an item just taken, synchronously; keep it if the set cannot take it."""
        if self.engine._state > SHUTTING:
            self.unfed.append(item)  # taken as the block was left: handed back
            return
        try:
            self.spawn(item)
        except BaseException:
            self.unfed.append(item)  # refused (a sync func, an unhashable key)
            raise

    async def _feed_async(self, inputs: AsyncIterable[I]) -> None:
        items: AsyncIterator[I] = inputs.__aiter__()
        own = items is not inputs or isinstance(inputs, AsyncGeneratorType)
        try:
            while True:
                await self._wait_until_an_input_could_start()
                try:
                    item = await items.__anext__()
                except StopAsyncIteration:
                    break
                self._feed(item)
        finally:
            aclose = getattr(items, "aclose", None) if own else None
            if aclose is not None:
                # We began it, so we end it, inside the block: an async
                # generator's cleanup never outlives the set (S20).
                with anyio.CancelScope(shield=True):
                    await aclose()

    async def _feed_sync(self, inputs: Iterable[I]) -> None:
        iterator: Iterator[I] = iter(inputs)
        own = iterator is not inputs
        try:
            while True:
                await self._wait_until_an_input_could_start()
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                self._feed(item)
        finally:
            close = getattr(iterator, "close", None) if own else None
            if close is not None:
                close()

    async def run(self) -> None:
        inputs = self.inputs
        try:
            if isinstance(inputs, AsyncIterable):
                await self._feed_async(inputs)
            else:
                await self._feed_sync(inputs)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer
            self.error = exc
        except anyio.get_cancelled_exc_class():
            if not self._natively_cancelled():
                raise
            self.error = self._native_error()
        finally:
            self._ended()

    def _natively_cancelled(self) -> bool:
        """asyncio: cancelled by a ``Task.cancel()`` of the feeder, not by a scope."""
        task = self.task
        if task is None or task._cancel_scope.cancel_called:
            return False
        return not self.engine._outer_cancelled()

    def _native_error(self) -> RuntimeError:
        face = self.engine._face
        return RuntimeError(
            f"The feeder task of {face}.map() was cancelled natively (asyncio "
            f"Task.cancel()), so the Feed stopped feeding; stop a Feed with its "
            f"aclose() or by leaving its async with block."
        )

    def _ended(self) -> None:
        ended = self.ended
        assert ended is not None  # noqa: S101
        ended.set()
        if self.error is None or self.engine._state >= CLOSING:
            self.drop_error()
        self.engine._wake_all()  # our consumer, waiting on an empty set, may stop now

    def ended_unstepped(self, waiting: set[int]) -> None:
        """asyncio: the feeder task was cancelled natively before its first step (S20)."""
        task = self.task
        if task is not None and self.feeding and ended_unstepped(task, waiting) is not None:
            if not task._cancel_scope.cancel_called and self.engine._state < CLOSING:
                self.error = self._native_error()  # nothing of the set stopped it
            self._ended()


@final
class Feed(Generic[T, V]):
    """
    What ``map()`` returns: ``async with js.map(func, inputs) as feed`` (S20).

    A feeder task of its own (in the set's task group, not one of the set's tasks:
    it takes no slot and does not count in ``len``) takes the next input only when
    a task for it could start at once: fewer than ``limit`` outcomes still to be
    taken, a free slot and the ``rate`` turn. Each step of the Feed hands out the
    set's next outcome (fed or spawned by hand), tagged with its input (or key),
    until the inputs are exhausted and the set is empty; then it is exhausted for
    good. An error raised by the inputs is raised by the next step that finds no
    outcome ready.

    Two ways to use it, both stopping the feeding when they end:

    - ``async with js.map(func, inputs) as feed:`` starts feeding on entry; leaving
      the block stops it and waits for the inputs' cleanup (an async generator's
      ``finally``). Iterate ``feed`` inside the block.
    - ``async for item, outcome in js.map(func, inputs):`` starts feeding at the
      first step. Breaking out drops the Feed, which stops the feeding.

    A Feed that is neither entered nor iterated feeds nothing (``map()`` is lazy)
    and warns ``RuntimeWarning`` when it is dropped, as an un-awaited coroutine
    does. `aclose`, leaving its block, ``shutdown()``, a fail-fast ``join_all()``,
    ``first_success()`` and leaving the set's block stop the feeding for good.
    Tasks already spawned stay in the set. Inputs the Feed did not begin (a
    memory object stream, an iterator passed in) are never closed; items taken
    and not spawned are in `unfed`.
    """

    __slots__ = ("_done", "_feeding", "_present", "_started", "_touched")

    def __init__(self, feeding: _Feeding[T, Any], present: Callable[[Outcome[T]], V]) -> None:
        self._feeding = feeding
        self._present = present
        self._started = False  # the feeder was started (or the set was shutting down)
        self._done = False  # exhausted or closed: every later step stops at once
        self._touched = False  # entered, stepped or closed: no "never used" warning

    @property
    def unfed(self) -> list[Any]:
        """
        Items taken from the inputs and never spawned (S20): nothing taken is lost.

        The item whose spawn raised the error a step raised (a synchronous
        ``func``, an unhashable ``JoinMap`` key), or one taken as the set's block
        was being left. A copy; empty in every other case.
        """
        return list(self._feeding.unfed)

    def _begin(self, method: str) -> None:
        """Start feeding; refused (and not started) from another thread or when not open."""
        engine = self._feeding.engine
        engine._check_thread(method)
        if engine._state not in (OPEN, SHUTTING):
            raise engine._not_open("map()")
        self._started = True
        if engine._state == OPEN:
            self._feeding.start()
        # Started while a shutdown runs: it feeds nothing (S9) and ends once the set
        # is empty.

    async def __aenter__(self) -> Self:
        """Start feeding: the feeder runs until the block is left (S20)."""
        self._touched = True
        if self._started or self._done:
            msg = (
                f"This {self._feeding.engine._face}.map() Feed was already started; "
                f"enter it with async with once, before iterating it."
            )
            raise RuntimeError(msg)
        self._begin("map()")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """Stop feeding and wait for the inputs' cleanup, as `aclose` (S20)."""
        await self.aclose()

    def __aiter__(self) -> Feed[T, V]:
        """The iterator itself: ``async for ... in js.map(...)``."""
        return self

    async def __anext__(self) -> V:
        """
        The set's next outcome with its input (or key); a checkpoint (S5, S20).

        Starts feeding at the first step. Cancel-safe as ``join_next``: a step
        cancelled while it waits takes nothing and passes a wake-up on.

        Raises:
            StopAsyncIteration: Once the inputs are exhausted (or the feeding stopped)
                and the set is empty, and forever after.
            Exception: What the inputs raised (once), when no outcome is ready.
            RuntimeError: Iterated outside the set's block, or from another thread
                or event loop (S2, S3).
        """
        self._touched = True
        if self._done:
            raise StopAsyncIteration
        feeding = self._feeding
        engine = feeding.engine
        if self._started:
            engine._check_thread("map()")
        else:
            self._begin("map()")
        await checkpoint()
        # From here on, nothing awaits between a wake-up and the take (invariant 3).
        while True:
            outcome = engine._try_next()
            if outcome is not None:
                return self._present(outcome)
            if feeding.error is not None:
                raise feeding.take_error()
            if not feeding.feeding and (not engine._pending or engine._state > SHUTTING):
                self._done = True
                raise StopAsyncIteration
            # Nothing ready; tasks run or our feeder may still spawn: wait for news.
            await engine._wait()

    async def aclose(self) -> None:
        """
        Stop feeding for good, and wait until the inputs' cleanup has run (S20).

        A checkpoint. The Feed is exhausted afterwards; tasks already spawned stay in
        the set (take them with ``join_next``). Called before the first step, the
        Feed never feeds. An error of the inputs that no step raised is logged (S13).

        Raises:
            RuntimeError: If called from another thread or event loop (S2).
        """
        self._touched = True
        feeding = self._feeding
        feeding.engine._check_thread("map().aclose()")
        self._done = True
        await feeding.stop()
        await checkpoint()

    def __del__(self) -> None:
        # Broke out of the loop and dropped the Feed: stop taking inputs. (If the
        # event loop is already gone, there is nothing left to stop.)
        feeding = self._feeding
        if not self._touched:
            msg = (
                f"{feeding.engine._face}.map() returned a Feed that was never iterated nor "
                f"entered, so it fed nothing; use async for or async with on it."
            )
            warnings.warn(msg, RuntimeWarning, stacklevel=1)
            return
        with suppress(Exception):  # the event loop is gone: nothing left to stop
            task = feeding.task
            if task is not None and feeding.feeding:
                task.cancel()
        feeding.drop_error()


def feed(
    engine: Engine[T],
    func: object,
    inputs: object,
    spawn: Callable[[Any], object],
    present: Callable[[Outcome[T]], V],
) -> Feed[T, V]:
    """Check ``map()``'s arguments at the call (S2, S3) and make its Feed (S20)."""
    where = f"{engine._face}.map()"
    try:
        engine._check_thread("map()")
        check_map_func(func, where)
    except (RuntimeError, TypeError):
        close_coroutines(func, inputs)  # passed by mistake: no "never awaited" warning
        raise
    if not isinstance(inputs, (Iterable, AsyncIterable)):
        close_coroutines(func, inputs)
        msg = (
            f"{where} expects its inputs as an iterable or an async iterable, "
            f"got {type(inputs).__name__}."
        )
        raise TypeError(msg)
    feeding: _Feeding[T, Any] = _Feeding(engine, cast("Iterable[Any]", inputs), spawn)
    return Feed(feeding, present)
