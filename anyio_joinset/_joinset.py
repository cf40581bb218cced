# The JoinSet face of the engine (``_engine.py``): public signatures and
# docstrings, each delegating to the engine or a combinator in a line or two.
# pyright: reportPrivateUsage=false
from __future__ import annotations

import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Iterable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from threading import get_ident
from types import FunctionType
from typing import TYPE_CHECKING, Any, Literal, final, overload

from anyio.lowlevel import checkpoint

from . import _combinators as combinators
from . import _instrument as instrument_hooks
from . import _introspect as introspect
from . import _start as starting
from ._calling import CO_COROUTINE, check_flag
from ._engine import NO_KEY, Engine
from ._feed import feed
from ._offload import future_call, process_call, submit_call, thread_call
from ._outcome import DETACHED, HANDED_OUT, Outcome
from ._states import CLOSED, OPEN
from ._taskgroup import face_of

# PEP 696 type parameter defaults: typing has them from 3.13 on.
if sys.version_info < (3, 13):
    from typing_extensions import TypeVar
else:
    from typing import TypeVar

if TYPE_CHECKING:
    from anyio import CapacityLimiter

    from ._feed import Feed
    from ._handle import JoinHandle
    from ._introspect import SetSnapshot
    from ._start import Follow
    from ._taskgroup import SetTaskGroup

    if sys.version_info >= (3, 11):
        from typing import TypeVarTuple, Unpack
    else:
        from typing_extensions import TypeVarTuple, Unpack

    PosArgsT = TypeVarTuple("PosArgsT")

# A bare JoinSet() is a JoinSet[object]: it takes any task, and its values are
# typed as what they are, unknown, until narrowed (docs/API.md, Typing).
T = TypeVar("T", default=object)
I = TypeVar("I")  # noqa: E741


@final
@dataclass(frozen=True)
class JoinSetStats:
    """
    A snapshot of a set's tasks, from `JoinSet.stats` or `JoinMap.stats`.

    ``spawned == waiting + running + finished + joined`` always holds.
    """

    spawned: int
    """Tasks ever spawned into the set."""
    waiting: int
    """Tasks waiting for a slot under ``limit``."""
    running: int
    """Tasks started and not finished (waiting for a rate turn included)."""
    finished: int
    """Tasks finished whose outcome has not been handed out."""
    joined: int
    """Outcomes handed out or discarded (by joining, iteration, ``join_all``,
    ``shutdown``, or a JoinMap key's replacement)."""
    failed: int
    """Tasks that ended with an exception, joined or not."""
    cancelled: int
    """Tasks that ended cancelled, joined or not."""


@final
class JoinSet(Engine[T]):
    """
    A set of concurrent tasks whose outcomes you take as they finish.

    Use it as an async context manager; leaving the block aborts every task still
    running and waits for it (API.md S1, S13). Subscript it at the call site with
    the tasks' result type: ``async with JoinSet[int]() as js: ...``.

    Args:
        limit: Run at most this many tasks at once; the others wait in spawn
            order (API.md S14). ``None`` (the default) means no limit.
        rate: Starts per second as a number (``math.inf``: no limit), or
            ``(count, per_seconds)``: at most ``count`` starts per ``per_seconds``,
            evenly spaced (S18). A task waits for its turn after it got its slot
            under ``limit``, before any of its body runs. ``None`` (the default)
            means no rate limit.

    Raises:
        ValueError: If ``limit`` is an integer below 1, or ``rate`` allows no start.
        TypeError: If ``limit`` is not an integer or ``None``, or ``rate`` is not a
            number, a ``(count, per_seconds)`` tuple or ``None``.
    """

    __slots__ = ()

    def __init__(
        self, *, limit: int | None = None, rate: float | tuple[int, float] | None = None
    ) -> None:
        super().__init__(limit, rate)

    # -- spawning (S2, S3, S14, S17) ---------------------------------------

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
        call. ``func`` is anything that returns a coroutine when called: an async
        function, a ``functools.partial`` of one (the way to pass keyword
        arguments), a lambda, an object with an async ``__call__``.

        Args:
            func: A callable that returns a coroutine.
            *args: Positional arguments for ``func``.
            name: The task's name; defaults to the function's qualified name.

        Returns:
            A handle to abort the task or ask whether it is done.

        Raises:
            RuntimeError: If the set is not open (before ``async with`` or after
                it), or if called from another thread or event loop (S2, S3).
            TypeError: If ``func`` does not return a coroutine (a synchronous
                function: use `spawn_thread`), or is a coroutine object (which is
                closed) (S3).
        """
        if (
            type(func) is FunctionType
            and func.__code__.co_flags & CO_COROUTINE
            and self._state == OPEN
            and self._thread == get_ident()
            and (name is None or type(name) is str)
        ):
            # The common case, a plain ``async def``, in one call less.
            coro = func(*args)
            return self._add(coro, coro.__qualname__ if name is None else name, NO_KEY)
        return self._spawn(func, args, name, NO_KEY)

    @overload
    async def start(
        self,
        func: Callable[..., Coroutine[Any, Any, T]],
        /,
        *args: object,
        name: str | None = None,
        return_handle: Literal[False] = False,
    ) -> Any: ...  # noqa: ANN401 - as AnyIO's TaskGroup.start: the start value is untyped

    @overload
    async def start(
        self,
        func: Callable[..., Coroutine[Any, Any, T]],
        /,
        *args: object,
        name: str | None = None,
        return_handle: Literal[True],
    ) -> JoinHandle[T]: ...

    async def start(
        self,
        func: Callable[..., Coroutine[Any, Any, T]],
        /,
        *args: object,
        name: str | None = None,
        return_handle: bool = False,
    ) -> Any:
        """
        Start ``func(*args, task_status=...)`` and wait until it is ready (S21).

        ``TaskGroup.start`` for a set, with AnyIO's and Trio's ``task_status``
        protocol: the task calls ``task_status.started(value)`` once it is ready
        (a server once it listens), and ``start()`` returns ``value``. From then
        on the task is in the set like any other and its outcome comes through
        `join_next` exactly once. Until then it is not in the set (not in
        ``len``), so nothing it does before ``started()`` reaches a `join_next`.
        Under ``limit`` and ``rate`` it waits for its slot and turn first. A
        checkpoint.

        Args:
            func: An async function that takes a ``task_status`` keyword argument.
            *args: Positional arguments for ``func``.
            name: The task's name; defaults to the function's qualified name.
            return_handle: Return the task's `JoinHandle` (its
                `JoinHandle.start_value` holds the value) instead of the value.

        Returns:
            The value passed to ``task_status.started()`` (``None`` by default),
            or the handle with ``return_handle=True``.

        Raises:
            Exception: The task's own exception, if it failed before ``started()``.
            TaskCancelled: If it was aborted before ``started()``.
            RuntimeError: If it returned without calling ``started()``, or the set
                is not open, or if called from another thread or event loop.
            TypeError: As `spawn` (S3).

        If ``start()`` itself is cancelled while it waits, the task is aborted and
        never joins the set (a failure it ends with is logged, S13).
        """
        return await starting.start(self, func, args, name, NO_KEY, return_handle)

    def follow(self) -> Follow[T, Outcome[T]]:
        """
        Outcomes as they finish, for the life of the block (S22).

        ``async for outcome in js.follow()`` is ``async for outcome in js`` for a
        long-lived set (a server's handlers): an empty set does not end it, it
        waits for the next task to finish; it ends once the set's block is being
        left and every outcome was taken. Cancel-safe, as `join_next`. Run it in
        a task group that encloses the set (it then ends by itself when the block
        is left), or cancel it to stop earlier: no outcome is lost.

        Raises:
            RuntimeError: If the set is not open, or if called from another thread
                or event loop.
        """
        return starting.follow(self, combinators.outcome_only)

    def detach_all(self) -> None:
        """
        Detach every task, as tokio's ``JoinSet::detach_all`` (S22).

        Every task keeps running on its own (still aborted when the block is
        left); outcomes ready now are dropped (failures logged, S13); ``len`` is 0.
        Never waits, not a checkpoint.
        """
        self._check_thread("detach_all()")
        self._detach_all()

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
        Run the sync ``func(*args)`` in a worker thread, as a task of this set (S17).

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

        Raises:
            TypeError: If ``func`` is not a synchronous callable, or ``limiter`` is
                not an ``anyio.CapacityLimiter`` (S3).
        """
        self._check_spawn("spawn_thread()", func)
        coro, name = thread_call(
            func, args, name, abandon_on_cancel, limiter, "JoinSet.spawn_thread()"
        )
        return self._add(coro, name, NO_KEY)

    def spawn_process(
        self,
        func: Callable[[Unpack[PosArgsT]], T],
        /,
        *args: Unpack[PosArgsT],
        name: str | None = None,
        cancellable: bool = False,
    ) -> JoinHandle[T]:
        """
        Run the picklable sync ``func(*args)`` in a worker process, as a task (S17).

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
        self._check_spawn("spawn_process()", func)
        coro, name = process_call(func, args, name, cancellable, "JoinSet.spawn_process()")
        return self._add(coro, name, NO_KEY)

    def spawn_future(self, future: Future[T], /, *, name: str | None = None) -> JoinHandle[T]:
        """
        Adopt a `concurrent.futures.Future` from any executor as a task (S17).

        Thread pools, process pools, loky, a Dask cluster's ``client.get_executor()``
        or Ray's ``ObjectRef.future()``: the task ends when the future does, with its
        result or exception. Completion reaches the event loop through its
        thread-safe call-soon, so no thread waits per future, and a future that is
        already done, or completes on the event loop's thread, cannot deadlock.
        Aborting the task calls ``future.cancel()``, whether it runs or still waits
        for a slot: a future still pending never runs; one already running is left
        to finish and its result is dropped.

        Args:
            future: The future to wait for.
            name: The task's name; defaults to the future's class name ("Future").

        Returns:
            The task's handle.
        """
        self._check_spawn("spawn_future()", future)
        awaitable, name = future_call(future, name, "JoinSet.spawn_future()")
        return self._add(awaitable, name, NO_KEY)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    def spawn_submit(
        self,
        executor: Executor,
        func: Callable[[Unpack[PosArgsT]], T],
        /,
        *args: Unpack[PosArgsT],
        name: str | None = None,
    ) -> JoinHandle[T]:
        """
        Submit ``func(*args)`` to ``executor`` when the task starts, and wait (S17).

        Unlike `spawn_future`, nothing is submitted until the task runs: under
        ``limit`` only when a slot is free, and never if the task is aborted first.
        Aborting the running task calls ``future.cancel()`` as `spawn_future`.

        Args:
            executor: Any `concurrent.futures.Executor` (a Dask
                ``client.get_executor()`` included).
            func: A function the executor can run.
            *args: Its positional arguments.
            name: The task's name; defaults to the function's qualified name.

        Returns:
            The task's handle.
        """
        self._check_spawn("spawn_submit()", executor, func)
        coro, name = submit_call(executor, func, args, name, "JoinSet.spawn_submit()")
        return self._add(coro, name, NO_KEY)

    def map(
        self,
        func: Callable[[I], Coroutine[Any, Any, T]],
        inputs: Iterable[I] | AsyncIterable[I],
        /,
    ) -> Feed[T, tuple[I | None, Outcome[T]]]:
        """
        Feed the set from ``inputs``: ``async for item, outcome in js.map(func, inputs)``.

        Spawns ``func(item)`` for each item of a sync or async iterable, lazily, as
        ``limit`` and ``rate`` allow (S20): a feeder of its own takes the next item
        only when fewer than ``limit`` of the set's outcomes are still to be taken
        (running, waiting or finished) and the rate turn is due; it takes no slot
        and does not count in ``len``. So memory stays O(limit) for any number of
        inputs, however slow the consumer. Yields
        each outcome in completion order with its item; tasks spawned by hand
        meanwhile (a crawler's new links) come through the same loop with ``None``
        for the item. Iteration ends once the inputs are exhausted and the set is
        empty. An exception raised by ``inputs`` is raised by the iteration.
        Nothing happens until the Feed is iterated or entered: ``async with
        js.map(func, inputs) as feed:`` feeds for the block's lifetime (leaving it
        stops the feeding and waits for the inputs' cleanup); breaking out of the
        bare loop, ``aclose()``, `shutdown` and leaving the set's block stop it too.
        The Feed never closes an iterator or stream passed in that the caller owns
        (see `Feed`). Without ``limit`` or ``rate``, every input is spawned at once.

        Args:
            func: A callable that returns a coroutine, called with each item.
            inputs: The items, a sync or async iterable.

        Returns:
            An async iterator of ``(item, outcome)`` pairs.

        Raises:
            TypeError: If ``func`` cannot return a coroutine (a builtin, a class) or
                ``inputs`` is not iterable (S3).
            RuntimeError: If called from another thread or event loop (S2).
        """
        return feed(
            self,
            func,
            inputs,
            lambda item: self._spawn(func, (item,), None, item, "map()"),
            _tagged,
        )

    # -- the task-group face (S24-S26) ----------------------------------------

    @property
    def task_group(self) -> SetTaskGroup:
        """
        This set as an ``anyio.abc.TaskGroup``, for APIs that take a task group (S24).

        ``listener.serve(handler, task_group=js.task_group)`` runs every handler as
        a task of this set: ``start_soon``, ``start`` and ``create_task`` spawn into
        it, so the tasks count in ``len``, are aborted by `abort_all` and `shutdown`
        and their outcomes come through `join_next` exactly once. Its spawning
        methods return AnyIO ``TaskHandle`` objects that do not carry outcomes
        (S25). It is never entered: the set's own block owns the lifetime; its
        ``cancel()`` is `abort_all`, and it has no ``cancel_scope`` to give (S26).
        Cheap: a new small object on each access, never a checkpoint.

        Raises:
            RuntimeError: If the set has a ``limit``: a task group starts every task
                at once, so a set that queues them has no task-group face (S24).
        """
        return face_of(self, None)

    # -- joining (S5, S10, S11, S12, S19) -----------------------------------

    async def join_next(self) -> Outcome[T] | None:
        """
        Wait for the next task to finish and return its outcome (API.md S5).

        A checkpoint on every call, even when an outcome is ready or the set is
        empty. Outcomes come out in completion order.

        Cancel-safe: if the call is cancelled (by AnyIO, Trio, or natively by
        asyncio), no outcome is lost; a later call returns it. Several tasks may
        call it at once; each outcome goes to exactly one of them, and callers still
        waiting when the set runs empty get ``None``.

        Returns:
            The outcome of a finished task, or ``None`` (after the checkpoint) if the
            set is empty.

        Raises:
            BaseException: The backend's cancellation exception, if the caller's
                scope is cancelled; any ready outcome stays in the set.
        """
        # The engine's _next, inline: this runs once per task.
        if self._thread != get_ident():
            self._check_thread("join_next()")
        await checkpoint()
        while not self._nready:
            if not self._pending or self._state == CLOSED:
                return None
            await self._wait()
        if self._front or self._waiters or self._room is not None or self._hooks is not None:
            return self._pop()
        # _pop's common case, inline (nothing put back, nobody else waiting).
        handle = self._pull()
        while handle._flags >= DETACHED:
            handle = self._pull()  # a task detached after it finished: skipped
        self._nready -= 1
        self._pending -= 1
        outcome: Outcome[T] = Outcome()
        outcome._handle = handle
        outcome._kind = handle._kind
        outcome._payload = handle._payload
        handle._payload = None  # the outcome holds it now: no cycle is left
        handle._kind = HANDED_OUT
        return outcome

    def try_join_next(self) -> Outcome[T] | None:
        """
        Return a finished task's outcome if one is ready, else ``None`` (API.md S10).

        Never waits and is not a checkpoint. It never takes an outcome away from a
        ``join_next`` already waiting in a way that leaves that caller hanging.
        """
        return self._try_next()

    async def join_all(self, *, fail_fast: bool = True) -> list[T]:
        """
        Wait for every task and return their values in completion order (S11).

        With ``fail_fast`` (the default), on the first outcome that is a failure or
        a cancellation it aborts the remaining tasks, waits for them (discarding
        their outcomes, as `shutdown` does) and raises. With ``fail_fast=False`` it
        waits for every task and, if any failed or was cancelled, raises an
        ``ExceptionGroup`` of all their exceptions in completion order, like
        ``asyncio.TaskGroup``. Afterwards the set is empty. A checkpoint.
        Cancel-safe: cancelled part-way, every outcome it took goes back to the set.

        Returns:
            The tasks' return values, in the order the tasks finished.

        Raises:
            Exception: With ``fail_fast``, the first failed task's own exception.
            TaskCancelled: With ``fail_fast``, if the first failing outcome is a
                cancelled task.
            ExceptionGroup: Without ``fail_fast``, if any task failed or was
                cancelled (``TaskCancelled`` for each cancelled one).
        """
        self._check_thread("join_all()")
        check_flag(fail_fast, "fail_fast", "JoinSet.join_all()")
        return await combinators.join_all(self, combinators.value_only, fail_fast, "JoinSet")

    async def first_success(self) -> T:
        """
        Return the value of the first task to succeed; abort and drain the rest (S19).

        Failures and cancellations before the first success are skipped (and kept
        for the error below). Afterwards the set is empty. A checkpoint.
        Cancel-safe, as `join_all`.

        Returns:
            The first successful task's return value.

        Raises:
            LookupError: If the set has no tasks (also when another consumer took
                the last outcome).
            ExceptionGroup: If every task failed or was cancelled: their exceptions,
                in completion order (``TaskCancelled`` for a cancelled task).
        """
        self._check_thread("first_success()")
        return await combinators.first_success(self, combinators.value_only, "JoinSet")

    def __aiter__(self) -> AsyncIterator[Outcome[T]]:
        """Iterate over outcomes until the set is empty, like a join_next loop (S12)."""
        return self

    async def __anext__(self) -> Outcome[T]:
        outcome = await self._next()
        if outcome is None:
            raise StopAsyncIteration
        return outcome

    # -- aborting (S7, S8, S9) ---------------------------------------------

    def abort_all(self) -> None:
        """
        Abort every task in the set (API.md S8).

        Never waits and is not a checkpoint. It does not cancel the body or the
        set: tasks spawned afterwards run normally. ``len`` does not change; the
        aborted tasks' outcomes still come out of the set.
        """
        self._check_thread("abort_all()")
        self._abort_all()

    async def shutdown(self, *, grace: float | None = None) -> None:
        """
        Abort all tasks, wait for every one to finish, and discard their outcomes.

        Afterwards ``len(js) == 0`` and the set can be used again within the same
        block, as if new (API.md S9). A checkpoint. A failure discarded here is
        logged at WARNING on the ``anyio_joinset`` logger, as at block exit (S13).
        Tasks spawned while it waits are aborted before they start. Cancelled
        part-way, the set stays consistent: ``len`` and `stats` describe exactly
        the outcomes still in it.

        Args:
            grace: If given, first wait up to this many seconds for the tasks to
                finish on their own (their outcomes are discarded just the same),
                then abort the rest. ``None`` (the default) or ``0`` aborts at once.

        Raises:
            TypeError: If ``grace`` is not a number or ``None``.
            ValueError: If ``grace`` is negative or NaN.
        """
        self._check_thread("shutdown()")
        await combinators.shutdown(self, combinators.check_grace(grace, "JoinSet"))

    # -- introspection and instruments (S28-S32) --------------------------------

    def snapshot(self, *, stale_after: float = 5.0) -> SetSnapshot:
        """
        Describe every task of this set now: state, age and where it waits (S28).

        Synchronous, never a checkpoint, and callable from any thread. Costs time
        in proportion to the tasks and the depth of their await chains; nothing
        before it is called. Sets entered by its tasks come out nested
        (`TaskSnapshot.sets`); ``print(js.snapshot().format())`` shows it as text.

        Never raises for the state of the set, even from another thread or
        inside an instrument's hook (a snapshot taken meanwhile may mix two
        instants of a set that changes).

        Args:
            stale_after: Seconds after which a finished outcome that nobody is
                joining is worth a warning (S30): a number, at least 0.

        Returns:
            The snapshot.

        Raises:
            TypeError: If ``stale_after`` is not a number.
            ValueError: If ``stale_after`` is negative or NaN.
        """
        return introspect.snapshot(self, stale_after=stale_after)

    def add_instrument(self, instrument: object) -> None:
        """
        Call ``instrument``'s hooks for every task event of this set (S31).

        ``instrument`` is an `Instrument` or any object with some of its hooks
        (methods or attributes). Registered before or inside the ``async with``
        block, on its event loop (S2); adding it twice, or also process-wide, does
        nothing more. Its hooks run synchronously on the event loop's thread; one
        that raises is logged and the instrument removed (S32). Not a checkpoint.

        Raises:
            TypeError: If ``instrument`` has none of `Instrument`'s hooks.
            RuntimeError: If called from another thread or event loop, or after
                the block.
        """
        instrument_hooks.add_to_set(self, instrument)

    def remove_instrument(self, instrument: object) -> None:
        """
        Stop calling ``instrument`` for this set; one not registered is ignored (S31).

        On the set's event loop, before or inside its block, as `add_instrument`.

        Raises:
            RuntimeError: If called from another thread or event loop, or after
                the block.
        """
        instrument_hooks.remove_from_set(self, instrument)

    # -- backpressure and inspection (S14) ------------------------------------

    async def wait_for_capacity(self) -> None:
        """
        Wait until a new task could start at once (S14, S18).

        Under ``limit``: until fewer than ``limit`` tasks are running or waiting to
        start; under ``rate``: until nobody waits for a start turn and the next one
        is due. A checkpoint; returns at once (after the checkpoint) without either.
        A producer that awaits it before each `spawn` keeps at most ``limit``
        unfinished tasks in memory.
        """
        await self._wait_for_capacity()

    @property
    def limit(self) -> int | None:
        """The most tasks this set runs at once, or ``None`` for no limit."""
        return None if self._slots is None else self._slots.limit

    def stats(self) -> JoinSetStats:
        """
        Return a snapshot of the set's tasks: cheap, synchronous, never a checkpoint.

        Cheap enough to call on every outcome, for example to drive a progress bar.
        """
        return JoinSetStats(*self._stats())

    def __len__(self) -> int:
        """Tasks spawned and not yet handed out: running, waiting or finished (S4)."""
        return self._pending

    def __repr__(self) -> str:
        stats = self._stats()
        return (
            f"<JoinSet {self._state_name()} len={self._pending} running={stats[2]} "
            f"waiting={stats[1]} limit={self.limit}>"
        )


def _tagged(outcome: Outcome[Any]) -> tuple[Any, Outcome[Any]]:
    key = outcome._handle._key
    return (None if key is NO_KEY else key), outcome
