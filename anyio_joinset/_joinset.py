# How this works
# ==============
#
# A JoinSet is one AnyIO task group plus one unbounded AnyIO memory object
# stream. ``spawn`` calls the function (which only creates the coroutine) and
# starts ``_run(handle, coro)`` in the task group. AnyIO (>= 4.14) runs every
# task inside its own cancel scope, held by the TaskHandle that
# ``create_task`` returns; ``JoinHandle.abort`` cancels that scope, so each
# task can be aborted alone at no extra cost.
#
# The exactly-once hand-off
# -------------------------
# When the coroutine ends, ``_run`` turns the ending into an Outcome and
# pushes it with ``send_nowait``: the stream gives it straight to a waiting
# ``join_next`` or buffers it. ``_pending`` (== len) counts tasks whose
# outcome has not been handed out; it goes down only after a caller has taken
# an outcome out of the stream, so every outcome is counted off once.
#
# Cancel safety comes from the stream and AnyIO together: ``send_nowait``
# skips a receiver whose cancellation is pending, and AnyIO never cancels a
# task whose wake-up is already due. A cancelled ``join_next`` therefore
# either raised before taking an outcome, or returns it.
#
# Several ``join_next`` callers may wait while fewer outcomes are to come than
# there are callers. When ``_pending`` falls to 0, every receiver still
# waiting is sent one ``None`` (the stream's only way to wake a receiver), and
# returns ``None``. A ``None`` that found no receiver stays in the buffer and
# is skipped.
#
# Limit
# -----
# With ``limit=n`` a spawn beyond n running tasks keeps its coroutine and a
# copy of its context on the handle, in ``_queue``. A finishing task starts
# the next one in spawn order. ``wait_for_capacity`` waits on an Event that is
# set when running + waiting drops below n.
#
# JoinSet, JoinHandle and Outcome are one mechanism split over three modules,
# so this module reads the other two's private slots on purpose.
# pyright: reportPrivateUsage=false
from __future__ import annotations

import logging
import math
import sys
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor, Future
from contextvars import copy_context
from dataclasses import dataclass
from types import FunctionType, TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

from anyio import (
    ClosedResourceError,
    EndOfStream,
    Event,
    WouldBlock,
    create_memory_object_stream,
    create_task_group,
    get_cancelled_exc_class,
    move_on_after,
    to_process,
    to_thread,
)
from anyio.lowlevel import checkpoint

from ._calling import CO_COROUTINE, call_async, sync_task_name, task_name
from ._futures import submit_and_wait, wait_future
from ._handle import JoinHandle
from ._outcome import CANCELLED, FAILED, SUCCEEDED, Outcome
from ._rate import parse_rate

if TYPE_CHECKING:
    from anyio import CapacityLimiter
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    if sys.version_info >= (3, 11):
        from typing import Self, TypeVarTuple, Unpack
    else:
        from typing_extensions import Self, TypeVarTuple, Unpack

    PosArgsT = TypeVarTuple("PosArgsT")

if sys.version_info < (3, 11):  # AnyIO itself depends on the backport there
    from exceptiongroup import ExceptionGroup

T = TypeVar("T")

logger = logging.getLogger("anyio_joinset")

_NEW = 0
_OPEN = 1
_CLOSING = 2  # in __aexit__: no new spawns, tasks unwinding, outcomes still flow
_CLOSED = 3  # the stream is closed: len is 0 for good


@final
@dataclass(frozen=True)
class JoinSetStats:
    """
    A snapshot of a :class:`JoinSet`'s tasks, from :meth:`JoinSet.stats`.

    ``spawned == waiting + running + finished + joined`` always holds.
    """

    spawned: int
    """Tasks ever spawned into the set."""
    waiting: int
    """Tasks waiting for a slot under ``limit``."""
    running: int
    """Tasks started and not finished."""
    finished: int
    """Tasks finished whose outcome has not been handed out."""
    joined: int
    """Outcomes handed out (by joining, iteration, ``join_all`` or ``shutdown``)."""
    failed: int
    """Tasks that ended with an exception, joined or not."""
    cancelled: int
    """Tasks that ended cancelled, joined or not."""


@final
class JoinSet(Generic[T]):
    """
    A set of concurrent tasks whose outcomes you take as they finish.

    Use it as an async context manager; leaving the block aborts every task still
    running and waits for it (API.md S1, S13). Subscript it at the call site with
    the tasks' result type: ``async with JoinSet[int]() as js: ...``.

    Args:
        limit: Run at most this many tasks at once; the others wait in spawn
            order (API.md S14). ``None`` (the default) means no limit.
        rate: ``(count, per_seconds)``: start at most ``count`` tasks per
            ``per_seconds``, evenly spaced (a task waits for its turn after it got
            its slot under ``limit``, before any of its body runs). ``None`` (the
            default) means no rate limit.

    Raises:
        ValueError: If ``limit`` is an integer below 1, or ``rate`` allows no start.
        TypeError: If ``limit`` is not an integer or ``None``, or ``rate`` is not a
            ``(count, per_seconds)`` tuple or ``None``.
    """

    __slots__ = (
        "_cancelled",
        "_cancelled_exc",
        "_capacity",
        "_failed",
        "_label",
        "_limit",
        "_live",
        "_next_id",
        "_pending",
        "_queue",
        "_rate",
        "_receive",
        "_running",
        "_send",
        "_state",
        "_tg",
    )

    _tg: TaskGroup
    _send: MemoryObjectSendStream[Outcome[T] | None]
    _receive: MemoryObjectReceiveStream[Outcome[T] | None]
    _cancelled_exc: type[BaseException]

    def __init__(self, *, limit: int | None = None, rate: tuple[int, float] | None = None) -> None:
        if limit is not None:
            if not isinstance(limit, int) or isinstance(limit, bool):  # pyright: ignore[reportUnnecessaryIsInstance]
                msg = f"JoinSet limit must be an int or None, not {type(limit).__name__}."
                raise TypeError(msg)
            if limit < 1:
                msg = f"JoinSet limit must be at least 1, got {limit}; use limit=None for no limit."
                raise ValueError(msg)
        self._limit = limit
        self._rate = parse_rate(rate)
        self._label = "JoinSet"  # what errors call it (a JoinMap wraps a JoinSet)
        self._failed = 0
        self._cancelled = 0
        self._state = _NEW
        self._next_id = 0
        self._pending = 0
        self._running = 0
        # Tasks not finished yet, in spawn order, for abort_all.
        self._live: dict[JoinHandle[T], None] = {}
        self._queue: deque[JoinHandle[T]] = deque()
        self._capacity: Event | None = None

    # -- scope (S1, S13) ---------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != _NEW:
            label = self._label
            msg = (
                f"This {label} has already been used; "
                f"create a new {label} for each async with block."
            )
            raise RuntimeError(msg)
        tg = create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._cancelled_exc = get_cancelled_exc_class()
        self._send, self._receive = create_memory_object_stream[Outcome[T] | None](math.inf)
        self._state = _OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if self._state != _OPEN:
            msg = f"This {self._label} is not open; __aexit__ must follow __aenter__."
            raise RuntimeError(msg)
        self._state = _CLOSING
        self.abort_all()
        # The task group only needs to see a cancellation (so its scope can
        # account for it). Any other exception of the body is ours to let
        # propagate: returning None re-raises the very same object, unwrapped
        # and with no "during handling of" context (S13).
        cancelled = isinstance(exc_val, self._cancelled_exc)
        try:
            if cancelled:
                await self._tg.__aexit__(exc_type, exc_val, exc_tb)
            else:
                await self._tg.__aexit__(None, None, None)
        except self._cancelled_exc:
            if exc_val is None:
                raise
            # The body's own exception wins over a cancellation of the wait.
        finally:
            self._close()

    def _close(self) -> None:
        self._state = _CLOSED
        self._pending = 0
        self._live.clear()
        self._queue.clear()
        while True:
            try:
                outcome = self._receive.receive_nowait()
            except (WouldBlock, EndOfStream, ClosedResourceError):
                break
            if outcome is not None:
                _discard(outcome)
        # Closing the sending side wakes every join_next still waiting, with
        # EndOfStream, which it turns into None.
        self._send.close()
        self._receive.close()
        # No producer waits in wait_for_capacity now: the last task to finish
        # notified it, and it sees the set closed.

    # -- spawning (S2, S3, S14) ---------------------------------------------

    def spawn(
        self,
        func: Callable[[Unpack[PosArgsT]], Coroutine[Any, Any, T]],
        /,
        *args: Unpack[PosArgsT],
        name: str | None = None,
    ) -> JoinHandle[T]:
        """
        Start ``func(*args)`` as a new task of this set (API.md S2).

        Synchronous, like ``TaskGroup.start_soon``: the task starts at the next
        scheduling point (or, under ``limit``, when a slot frees up), whether or not
        anyone joins it. It runs in a copy of the ``contextvars`` context of this
        call. Pass keyword arguments with :func:`functools.partial`.

        Args:
            func: An async function.
            *args: Positional arguments for ``func``.
            name: The task's name; defaults to the function's qualified name.

        Returns:
            A handle to abort the task or ask whether it is done.

        Raises:
            RuntimeError: If the set is not open (before ``async with`` or after
                it) (S3).
            TypeError: If ``func`` is not an async function, or is a coroutine
                object (which is closed) (S3).
        """
        if self._state != _OPEN:
            if self._state == _NEW:
                msg = (
                    f"This {self._label} is not open yet; spawn tasks inside its async with block."
                )
            else:
                msg = f"This {self._label} is closed; no new tasks can be spawned."
            raise RuntimeError(msg)
        if type(func) is FunctionType and func.__code__.co_flags & CO_COROUTINE:
            # The common case, a plain ``async def``: it can only make a coroutine.
            coro = func(*args)
            if name is None:
                name = coro.__qualname__
        else:
            coro = call_async(func, args, f"{self._label}.spawn()")
            if name is None:
                name = task_name(func, coro)
        self._next_id += 1
        handle = JoinHandle(self, self._next_id, name if type(name) is str else str(name))
        # Count the task before starting it: under an eager task factory it may
        # even finish inside create_task.
        self._live[handle] = None
        self._pending += 1
        limit = self._limit
        if limit is None or (self._running < limit and not self._queue):
            try:
                self._start(handle, coro)
            except BaseException:
                del self._live[handle]
                self._pending -= 1
                raise
        else:
            handle._coro = coro
            handle._context = copy_context()
            self._queue.append(handle)
        return handle

    # -- work outside the event loop -----------------------------------------

    def spawn_thread(
        self,
        func: Callable[[Unpack[PosArgsT]], T],
        /,
        *args: Unpack[PosArgsT],
        name: str | None = None,
        abandon_on_cancel: bool = False,
        limiter: CapacityLimiter | None = None,
    ) -> JoinHandle[T]:
        """
        Run the sync ``func(*args)`` in a worker thread, as a task of this set.

        A task like any other (``anyio.to_thread.run_sync`` underneath): it counts
        in ``len`` and ``limit``, and its outcome comes through the set. Aborted
        before it starts, ``func`` never runs. Aborted while its thread runs: with
        ``abandon_on_cancel=False`` (the default) the task waits for the thread and
        yields its real outcome, as tokio's ``spawn_blocking`` does; with ``True``
        it ends cancelled at once and the thread's result is dropped.

        Args:
            func: A synchronous function.
            *args: Positional arguments for ``func``.
            name: The task's name; defaults to the function's qualified name.
            abandon_on_cancel: See above.
            limiter: The AnyIO capacity limiter for the thread (default: AnyIO's).

        Returns:
            The task's handle.
        """
        name = sync_task_name(func, name, f"{self._label}.spawn_thread()")
        return self.spawn(_run_in_thread, func, args, abandon_on_cancel, limiter, name=name)

    def spawn_process(
        self,
        func: Callable[[Unpack[PosArgsT]], T],
        /,
        *args: Unpack[PosArgsT],
        name: str | None = None,
        cancellable: bool = False,
    ) -> JoinHandle[T]:
        """
        Run the picklable sync ``func(*args)`` in a worker process, as a task.

        ``anyio.to_process.run_sync`` underneath. Aborted before it starts, ``func``
        never runs. Aborted while running: with ``cancellable=False`` (the default)
        the task waits for the process's result; with ``True`` the worker process
        is killed and the task ends cancelled.

        Args:
            func: A picklable synchronous function (defined at module level).
            *args: Picklable positional arguments for ``func``.
            name: The task's name; defaults to the function's qualified name.
            cancellable: See above.

        Returns:
            The task's handle.
        """
        name = sync_task_name(func, name, f"{self._label}.spawn_process()")
        return self.spawn(_run_in_process, func, args, cancellable, name=name)

    def spawn_future(self, future: Future[T], /, *, name: str | None = None) -> JoinHandle[T]:
        """
        Adopt a :class:`concurrent.futures.Future` from any executor as a task.

        Thread pools, process pools, loky, a Dask cluster's ``client.get_executor()``
        or Ray's ``ObjectRef.future()``: the task ends when the future does, with its
        result or exception. Completion reaches the event loop through its
        thread-safe call-soon, so no thread waits per future, and a future that is
        already done, or completes on the event loop's thread, cannot deadlock.
        Aborting the task calls ``future.cancel()``: a future still pending never
        runs; one already running is left to finish and its result is dropped.

        Args:
            future: The future to wait for.
            name: The task's name; defaults to the future's class name ("Future").

        Returns:
            The task's handle.
        """
        default = type(future).__qualname__
        return self.spawn(wait_future, future, name=default if name is None else name)

    def spawn_submit(
        self,
        executor: Executor,
        func: Callable[[Unpack[PosArgsT]], T],
        /,
        *args: Unpack[PosArgsT],
        name: str | None = None,
    ) -> JoinHandle[T]:
        """
        Submit ``func(*args)`` to ``executor`` when the task starts, and wait for it.

        Unlike :meth:`spawn_future`, nothing is submitted until the task runs: under
        ``limit`` only when a slot is free, and never if the task is aborted first.
        Aborting the running task calls ``future.cancel()`` as :meth:`spawn_future`.

        Args:
            executor: Any :class:`concurrent.futures.Executor` (a Dask
                ``client.get_executor()`` included).
            func: A function the executor can run.
            *args: Its positional arguments.
            name: The task's name; defaults to the function's qualified name.

        Returns:
            The task's handle.
        """
        name = sync_task_name(func, name, f"{self._label}.spawn_submit()")
        return self.spawn(submit_and_wait, executor, func, args, name=name)

    def _start(self, handle: JoinHandle[T], coro: Coroutine[Any, Any, T]) -> None:
        self._running += 1
        try:
            task = self._tg.create_task(
                self._run(handle, coro),
                name=handle._name,
                context=handle._context,
            )
        except BaseException:
            self._running -= 1
            coro.close()
            raise
        handle._task = task
        handle._context = None

    async def _run(self, handle: JoinHandle[T], coro: Coroutine[Any, Any, T]) -> None:
        # The task wrapper: turn however ``coro`` ends into an Outcome. No local
        # variable holds an Outcome or an exception: a failure's traceback keeps
        # this frame alive, and a local would close a reference cycle through it
        # (outcome -> exception -> traceback -> frame -> outcome), leaving every
        # failed task to the cyclic garbage collector.
        if handle._aborted:
            # Aborted before it started: its body never runs (S7).
            coro.close()
            self._cancelled += 1
            self._finish(handle, Outcome(handle._id, handle._name, CANCELLED, None))
            return
        try:
            if self._rate is not None:
                await self._rate.wait_turn()
            value = await coro
        except Exception as exc:  # noqa: BLE001 - errors are values (S6)
            self._failed += 1
            self._finish(handle, Outcome(handle._id, handle._name, FAILED, exc))
        except BaseException as exc:
            if isinstance(exc, self._cancelled_exc):
                coro.close()  # in case it was cancelled while waiting for its rate turn
                self._cancelled += 1
                self._finish(handle, Outcome(handle._id, handle._name, CANCELLED, None))
            else:
                # KeyboardInterrupt & co. are not captured (S6): the task group
                # tears everything down and the exception propagates.
                self._forget(handle)
            raise
        else:
            self._finish(handle, Outcome(handle._id, handle._name, SUCCEEDED, value))

    def _finish(self, handle: JoinHandle[T], outcome: Outcome[T]) -> None:
        self._forget(handle)
        self._send.send_nowait(outcome)

    def _forget(self, handle: JoinHandle[T]) -> None:
        handle._done = True
        handle._task = None
        del self._live[handle]
        self._running -= 1
        if self._queue:
            self._start_waiting()
        if self._capacity is not None:
            self._notify_capacity()

    def _start_waiting(self) -> None:
        limit = self._limit
        assert limit is not None  # noqa: S101
        queue = self._queue
        while queue and self._running < limit and self._state == _OPEN:
            handle = queue.popleft()
            coro = handle._coro
            assert coro is not None  # noqa: S101
            handle._coro = None
            self._start(handle, coro)

    def _abort_waiting(self, handle: JoinHandle[T]) -> None:
        # Called by JoinHandle.abort for a task still waiting for a slot.
        self._queue.remove(handle)
        self._finish_unstarted(handle)

    def _finish_unstarted(self, handle: JoinHandle[T]) -> None:
        coro = handle._coro
        assert coro is not None  # noqa: S101
        coro.close()  # never started, so none of its body runs (S7, S14)
        handle._coro = handle._context = None
        handle._done = True
        del self._live[handle]
        self._cancelled += 1
        self._send.send_nowait(Outcome(handle._id, handle._name, CANCELLED, None))
        # No capacity to announce: a task waits only while every slot is taken,
        # so running + waiting stays at or above the limit after this one goes.

    def _notify_capacity(self) -> None:
        assert self._limit is not None  # noqa: S101
        if self._capacity is not None and self._running + len(self._queue) < self._limit:
            self._capacity.set()
            self._capacity = None

    # -- aborting (S7, S8, S9) ---------------------------------------------

    def abort_all(self) -> None:
        """
        Abort every task in the set (API.md S8).

        Never waits and is not a checkpoint. It does not cancel the body or the
        set: tasks spawned afterwards run normally. ``len`` does not change; the
        aborted tasks' outcomes still come out of the set.
        """
        if self._queue:
            # Waiting tasks end at once, in spawn order, without ever running.
            queue, self._queue = self._queue, deque()
            for handle in queue:
                handle._aborted = True
                self._finish_unstarted(handle)
        for handle in list(self._live):
            handle.abort()

    async def shutdown(self, *, grace: float | None = None) -> None:
        """
        Abort all tasks, wait for every one to finish, and discard their outcomes.

        Afterwards ``len(js) == 0`` and the set can be used again within the same
        block (API.md S9). It is a checkpoint. A failure discarded here that was
        never retrieved is logged at WARNING on the ``anyio_joinset`` logger, as at
        block exit (S13). Tasks spawned while it waits are aborted as well.

        Args:
            grace: If given, first wait up to this many seconds for the tasks to
                finish on their own (their outcomes are discarded just the same),
                then abort the rest. ``None`` (the default) or ``0`` aborts at once.

        Raises:
            ValueError: If ``grace`` is negative.
            BaseException: The backend's cancellation exception, if the caller's
                scope is cancelled while waiting; outcomes not yet discarded stay in
                the set.
        """
        if grace is not None and grace < 0:
            msg = f"shutdown() grace must be None or at least 0 seconds, got {grace}"
            raise ValueError(msg)
        if grace and self._pending:
            with move_on_after(grace):
                while (outcome := await self.join_next()) is not None:
                    _discard(outcome)
        self.abort_all()
        if not self._pending:
            await checkpoint()
            return
        aborted_up_to = self._next_id
        while self._pending:
            if self._next_id != aborted_up_to:
                self.abort_all()
                aborted_up_to = self._next_id
            outcome = await self.join_next()
            if outcome is not None:
                _discard(outcome)

    def stats(self) -> JoinSetStats:
        """
        Return a snapshot of the set's tasks: cheap, synchronous, never a checkpoint.

        Cheap enough to call on every outcome, for example to drive a progress bar.
        """
        spawned = self._next_id
        waiting = len(self._queue)
        running = self._running
        pending = self._pending
        return JoinSetStats(
            spawned=spawned,
            waiting=waiting,
            running=running,
            finished=pending - waiting - running,
            joined=spawned - pending,
            failed=self._failed,
            cancelled=self._cancelled,
        )

    # -- joining (S5, S10, S11, S12) ----------------------------------------

    def __len__(self) -> int:
        """Tasks spawned and not yet handed out: running, waiting or finished (S4)."""
        return self._pending

    async def join_next(self) -> Outcome[T] | None:
        """
        Wait for the next task to finish and return its outcome (API.md S5).

        A checkpoint on every call, even when an outcome is ready or the set is
        empty. Outcomes come out in completion order.

        Cancel-safe: if the call is cancelled, no outcome is lost; a later call
        returns it. Several tasks may call it at once; each outcome goes to exactly
        one of them, and callers still waiting when the set runs empty get ``None``.

        Returns:
            The outcome of a finished task, or ``None`` at once (after the
            checkpoint) if the set is empty.

        Raises:
            BaseException: The backend's cancellation exception, if the caller's
                scope is cancelled; any ready outcome stays in the set.
        """
        if not self._pending:
            await checkpoint()
            return None
        receive = self._receive
        while True:
            try:
                outcome = await receive.receive()
            except (EndOfStream, ClosedResourceError):
                return None  # the block was left while we waited
            if outcome is not None:
                self._handed_out()
                return outcome
            if not self._pending:
                return None
            # A stale wake-up from an earlier empty moment: keep waiting.

    def try_join_next(self) -> Outcome[T] | None:
        """
        Return a finished task's outcome if one is ready, else ``None`` (API.md S10).

        Never waits and is not a checkpoint. It never takes an outcome promised to
        a ``join_next`` already waiting in another task.

        Returns:
            An outcome, or ``None`` if nothing is ready or the set is empty.
        """
        if not self._pending:
            return None
        receive = self._receive
        while True:
            try:
                outcome = receive.receive_nowait()
            except (WouldBlock, EndOfStream, ClosedResourceError):
                return None
            if outcome is not None:
                self._handed_out()
                return outcome

    def _handed_out(self) -> None:
        if self._state == _CLOSED:
            # A join_next woken before the block ended takes its outcome after:
            # len is already 0 and every other waiter was woken by the close.
            return
        self._pending -= 1
        if not self._pending:
            # Wake the callers that are still waiting: nothing is left for them.
            send = self._send
            for _ in range(self._receive.statistics().tasks_waiting_receive):
                send.send_nowait(None)

    async def join_all(self) -> list[T]:
        """
        Wait for every task and return their values in completion order (S11).

        Fails fast: on the first outcome that is a failure or a cancellation, it
        aborts the remaining tasks, waits for them (discarding their outcomes, as
        :meth:`shutdown` does) and raises. Afterwards the set is empty. It is a
        checkpoint.

        Returns:
            The tasks' return values, in the order the tasks finished.

        Raises:
            Exception: The first failed task's own exception (the same object).
            TaskCancelled: If the first failing outcome is a cancelled task.
        """
        values: list[T] = []
        while (outcome := await self.join_next()) is not None:
            if outcome._kind == SUCCEEDED:
                values.append(outcome.result())
                continue
            try:
                await self.shutdown()
            except BaseException:
                # Interrupted while draining: the failure must not vanish.
                _discard(outcome)
                raise
            raise outcome._failure()
        return values

    async def first_success(self) -> T:
        """
        Return the value of the first task to succeed; abort and drain the rest.

        Outcomes are taken in completion order. Failures and cancellations before
        the first success are skipped (and kept for the error below); once a task
        succeeds, the remaining tasks are aborted and waited for, as by
        :meth:`shutdown`. Afterwards the set is empty. It is a checkpoint.

        Returns:
            The first successful task's return value.

        Raises:
            LookupError: If the set has no tasks.
            ExceptionGroup: If every task failed or was cancelled: their exceptions,
                in completion order (``TaskCancelled`` for a cancelled task).
        """
        if not self._pending:
            await checkpoint()
            msg = f"This {self._label} has no tasks; spawn some before first_success()."
            raise LookupError(msg)
        errors: list[Exception] = []
        while (outcome := await self.join_next()) is not None:
            if outcome._kind == SUCCEEDED:
                await self.shutdown()
                return outcome.result()
            errors.append(outcome._failure())
        msg = f"no task of the {self._label} succeeded"
        raise ExceptionGroup(msg, errors)

    def __aiter__(self) -> Self:
        """Iterate over outcomes until the set is empty, like a join_next loop (S12)."""
        return self

    async def __anext__(self) -> Outcome[T]:
        outcome = await self.join_next()
        if outcome is None:
            raise StopAsyncIteration
        return outcome

    # -- backpressure (S14) ------------------------------------------------

    async def wait_for_capacity(self) -> None:
        """
        Wait until fewer than ``limit`` tasks are running or waiting to start (S14).

        A checkpoint; returns at once (after the checkpoint) when ``limit`` is
        ``None`` or there is room. A producer that awaits it before each ``spawn``
        keeps at most ``limit`` unfinished tasks in memory.

        Raises:
            BaseException: The backend's cancellation exception, if the caller's
                scope is cancelled.
        """
        limit = self._limit
        if limit is None or self._state != _OPEN or self._running + len(self._queue) < limit:
            await checkpoint()
            return
        while self._state == _OPEN and self._running + len(self._queue) >= limit:
            if self._capacity is None:
                self._capacity = Event()
            await self._capacity.wait()

    @property
    def limit(self) -> int | None:
        """The most tasks this set runs at once, or ``None`` for no limit."""
        return self._limit

    def __repr__(self) -> str:
        state = ("new", "open", "closing", "closed")[self._state]
        return (
            f"<JoinSet {state} len={self._pending} running={self._running} "
            f"waiting={len(self._queue)} limit={self._limit}>"
        )


async def _run_in_thread(
    func: Callable[..., T],
    args: tuple[Any, ...],
    abandon_on_cancel: bool,
    limiter: CapacityLimiter | None,
) -> T:
    return await to_thread.run_sync(
        func, *args, abandon_on_cancel=abandon_on_cancel, limiter=limiter
    )


async def _run_in_process(func: Callable[..., T], args: tuple[Any, ...], cancellable: bool) -> T:
    return await to_process.run_sync(func, *args, cancellable=cancellable)


def _discard(outcome: Outcome[Any]) -> None:
    """Drop an outcome nobody will join; a failure is logged, never silent (S13)."""
    if outcome._kind == FAILED:
        exc = outcome._payload
        assert isinstance(exc, BaseException)  # noqa: S101
        logger.warning(
            "Task %r (id %d) failed and its outcome was never joined",
            outcome.name,
            outcome.id,
            exc_info=exc,
        )
