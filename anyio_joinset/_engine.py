# How this works
# ==============
#
# ``JoinSet`` and ``JoinMap`` are two faces of this one engine: every task of
# either runs through the code below (spawn, the task wrapper, the hand-off);
# the faces add their public signatures and docstrings, the combinators
# (``_combinators.py``) are written once against the engine's operations.
#
# One AnyIO task group runs the tasks. ``spawn`` calls the function (which only
# creates the coroutine) and starts ``_run(handle, coro)`` in the task group.
# AnyIO (>= 4.14) runs every task inside its own cancel scope, held by the
# TaskHandle that ``create_task`` returns; aborting a task cancels that scope,
# so each task can be aborted alone at no extra cost.
#
# The exactly-once hand-off
# -------------------------
# Outcomes travel as the design card draws it: through an AnyIO memory object
# stream. The task wrapper records how its task ended on the task's handle (the
# engine's per-task record) and pushes the handle into the stream with
# ``send_nowait``; ``join_next`` takes it out with ``receive_nowait`` and only
# then makes the public ``Outcome`` (a short-lived object, which the garbage
# collector never has to scan). Only the stream's synchronous calls are used:
# its waiting ``receive()`` checkpoints before it registers as a waiting
# receiver, and a waiting receiver is handed an item inside the sender's call,
# where a native asyncio cancellation could then lose it. The stream is
# unbounded and no receiver ever waits on it, so ``send_nowait`` only appends.
#
# Invariants, enforced by the code below and checked by tests/test_explore.py:
#
# 1. A finished task's handle sits in the stream (or, put back by a cancelled
#    combinator, its outcome sits in ``_front``, read first: S11) until a
#    caller takes it, and it is only ever taken *synchronously*: by ``_pop``,
#    with no await between taking it and returning it. So no cancellation of
#    any kind (AnyIO, Trio, or a native asyncio ``Task.cancel()`` /
#    ``asyncio.timeout``) can land between the two and lose it.
# 2. ``_pending`` (== ``len``) counts tasks whose outcome has not been handed out:
#    waiting for a slot + running + ready. ``_nready`` counts the ready ones.
#    They go down in ``_pop``, when an uncaptured BaseException ends a task, and
#    when a JoinMap key is replaced (the replaced task's handle may still be in
#    the stream: it is marked detached and skipped when it comes out).
# 3. A ``join_next`` caller waits only on a wake-up of its own (an Event in
#    ``_waiters``), and only after checking, synchronously, that nothing is
#    ready and ``_pending`` is not 0. Every change that could end a wait wakes
#    waiters: a new outcome wakes one; ``_pending`` reaching 0 or the block
#    closing wakes all. A woken caller that is cancelled before it runs passes
#    its wake-up on to the next waiter if an outcome is ready. So no caller
#    waits while an outcome is ready or while ``len`` is 0.
#
# Garbage collector: a finished, unjoined task costs one GC-tracked object of
# ours (its handle); the handle holds a failure's exception (whose traceback
# holds the wrapper's frame and so the handle) only until the outcome is handed
# out or discarded, which breaks that cycle, so every object of a task is freed
# by reference counting alone. A finished handle stays in the set's list of
# tasks (``_live``) until a compaction drops it (``_bury``), which keeps at most
# about as many finished handles as there are tasks alive, and no outcome.
#
# Limit and rate
# --------------
# Under ``limit=n``, ``_Slots`` (``_limit.py``) keeps the tasks beyond n running
# ones in spawn order; a finishing task starts the next. ``rate`` (``_rate.py``)
# makes each task wait for its start turn inside its wrapper, before its body.
#
# JoinHandle and Outcome are records this module reads and writes: all state
# changes of a task happen here, the handle only delegates.
# pyright: reportPrivateUsage=false
from __future__ import annotations

import logging
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from contextvars import Context, copy_context
from threading import Lock, get_ident
from traceback import format_exception_only
from types import FunctionType, TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast
from weakref import WeakSet

from anyio import (
    Event,
    create_memory_object_stream,
    create_task_group,
    current_effective_deadline,
    get_cancelled_exc_class,
    get_current_task,
)
from anyio.lowlevel import checkpoint

from ._calling import CO_COROUTINE, call_async, check_name, close_coroutines, task_name
from ._handle import JoinHandle
from ._introspect import register
from ._limit import Slots
from ._native import ended_unstepped, guard, unguard, unstepped_tasks
from ._outcome import (
    ABORTED,
    CANCELLED,
    DETACHED,
    FAILED,
    FINISHING,
    HANDED_OUT,
    LOST,
    RATE_TURN,
    SUCCEEDED,
    UNFINISHED,
    Outcome,
    outcome_of,
)
from ._rate import parse_rate
from ._states import CLOSED, CLOSING, NEW, OPEN, SHUTTING

if TYPE_CHECKING:
    from anyio import CancelScope, TaskHandle
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._instrument import Hooks
    from ._rate import StartRate
    from ._start import TaskStatus

    class _Feeder(Protocol):
        def cancel(self) -> None: ...
        def ended_unstepped(self, waiting: set[int]) -> None: ...

    if sys.version_info >= (3, 11):
        from typing import Self
    else:
        from typing_extensions import Self

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup

T = TypeVar("T")

logger = logging.getLogger("anyio_joinset")

_now = time.monotonic
_exc_info = sys.exc_info
_MISSING: Any = object()
_PLAN_LOCK = Lock()  # see _replan
_COMPACT_MIN = 32  # finished handles _live may keep before its first compaction
_SPAWN_TIME_SHARED = 0.001  # seconds: spawns this close share one spawn time
NO_KEY: Any = object()  # the key of a task spawned into a JoinSet


class Engine(Generic[T]):
    """The mechanism both faces share; see the notes at the top of this module."""

    __slots__ = (
        "__weakref__",
        "_bodies",
        "_cancel_seen",
        "_cancelled",
        "_cancelled_exc",
        "_caught",
        "_compact_at",
        "_dead",
        "_draining",
        "_failed",
        "_feeders",
        "_front",
        "_holding",
        "_hooks",
        "_host",
        "_keys",
        "_last_spawned",
        "_live",
        "_next_id",
        "_nready",
        "_outer_cancelled",
        "_pending",
        "_plain",
        "_pull",
        "_push",
        "_rate",
        "_ready_since",
        "_receive",
        "_reraised",
        "_room",
        "_running",
        "_send",
        "_share_until",
        "_slots",
        "_state",
        "_swept",
        "_tg",
        "_thread",
        "_waiters",
        "_watched",
    )

    _face = "JoinSet"  # the public class name, for messages
    _tg: TaskGroup
    _cancelled_exc: type[BaseException]
    _keys: dict[Any, JoinHandle[T]] | None
    _send: MemoryObjectSendStream[JoinHandle[T]]
    _pending: int
    _nready: int
    _push: Callable[[JoinHandle[T]], None]
    _pull: Callable[[], JoinHandle[T]]
    _receive: MemoryObjectReceiveStream[JoinHandle[T]]

    def __init__(self, limit: int | None, rate: object) -> None:
        face = self._face
        if limit is not None:
            if not isinstance(limit, int) or isinstance(limit, bool):  # pyright: ignore[reportUnnecessaryIsInstance]
                msg = f"{face} limit must be an int or None, not {type(limit).__name__}."
                raise TypeError(msg)
            if limit < 1:
                msg = f"{face} limit must be at least 1, got {limit}; use limit=None for no limit."
                raise ValueError(msg)
        self._slots: Slots[T] | None = None if limit is None else Slots(limit)
        self._rate: StartRate | None = parse_rate(rate, face)
        self._keys = None
        self._failed = 0
        self._cancelled = 0
        self._caught: BaseException | None = None  # from _run's handlers to their call
        self._draining = 0  # shutdowns and fail-fast drains running (S9)
        self._state = NEW
        self._next_id = 0
        self._pending = 0
        # Tasks started and not finished, counted under a limit only (its slots,
        # S14); without one, the unfinished tasks of _live: see _running_now.
        self._running = 0
        # Every task in spawn order, finished ones too until a compaction drops
        # them (see _bury): an entry costs 8 bytes, where a dict's cost 50.
        self._live: list[JoinHandle[T]] = []
        self._dead = 0  # finished handles still in _live
        self._compact_at = _COMPACT_MIN
        self._last_spawned = -math.inf  # a spawn time that later spawns may share
        self._share_until = -math.inf  # until when: _last_spawned + _SPAWN_TIME_SHARED
        self._nready = 0  # outcomes ready to hand out: in the stream or in _front
        self._front: deque[Outcome[T]] = deque()  # put back by a cancelled combinator (S11)
        # The outcomes each running join_all / first_success has taken: it may put
        # them back (S11), unless their key was spawned again meanwhile (S16).
        self._holding: list[list[Outcome[T]]] = []
        # -> when it began to wait, and whether it is a follow() (for a snapshot, S28)
        self._waiters: dict[Event, tuple[float, bool]] = {}
        self._watched: dict[JoinHandle[T], Event] = {}  # handle.wait() callers (S23)
        # Tasks of the task-group face: their body runs even if aborted first (S25).
        self._bodies: WeakSet[JoinHandle[T]] | None = None
        self._room: Event | None = None  # a feeder waiting for len to drop (S20)
        # Feeds still feeding, or holding an error of their inputs (S20, _feed.py):
        # _stop_feeding calls their cancel().
        self._feeders: dict[_Feeder, None] = {}
        # asyncio tasks found ended by _ended_unstarted's last sweep, and tasks
        # that let a scope's cancellation out, whose done callbacks need none.
        self._swept: WeakSet[object] | None = None
        self._reraised = 0
        self._thread: int | None = None
        self._host: object = None
        self._hooks: Hooks | None = None  # the instruments (_instrument.py), if any
        # Open, with no limit, no rate and no instrument: a task's path skips
        # every one of them in one test (_add, _run). Once open, _state and
        # _hooks change only through _set_state and _set_hooks, which keep it true.
        self._plain = False
        # When the set last went from no ready outcome to one (S30): since then it
        # has always had one, so nobody has emptied it for that long.
        self._ready_since = 0.0

    # -- scope (S1, S13) ---------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != NEW:
            face = self._face
            msg = (
                f"This {face} has already been used; "
                f"create a new {face} for each async with block (S1)."
            )
            raise RuntimeError(msg)
        tg = create_task_group()
        await tg.__aenter__()
        self._tg = tg
        # Unbounded, and nobody ever waits on it: see "the exactly-once hand-off".
        self._send, self._receive = create_memory_object_stream[JoinHandle[T]](math.inf)
        self._push = self._send.send_nowait  # bound once: they run once per task
        self._pull = self._receive.receive_nowait
        self._cancelled_exc = get_cancelled_exc_class()
        self._outer_cancelled = _cancelled_check(tg)
        # asyncio: a native Task.cancel() before a first step (S7); and a hint
        # that lets each task skip the walk up the cancel scopes until a
        # cancellation has reached the task group (_native.py). Elsewhere (Trio,
        # whose check is one attribute) every task asks.
        self._cancel_seen = not guard(tg, self) or self._outer_cancelled()
        self._thread = get_ident()
        self._host = get_current_task().id
        self._set_state(OPEN)
        register(self)  # in the weak registry of open sets (_introspect.py)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        # Returns None: the block never swallows an exception (S13), so a type
        # checker knows the code after it runs only if the body completed.
        if self._state in (NEW, CLOSING, CLOSED):
            msg = f"This {self._face} is not open; __aexit__ must follow __aenter__ once (S1)."
            raise RuntimeError(msg)
        self._check_thread("__aexit__")
        if get_current_task().id != self._host:
            msg = (
                f"This {self._face} must be left by the task that entered it (S1): "
                f"leave its async with block in that task."
            )
            raise RuntimeError(msg)
        self._set_state(CLOSING)
        self._stop_feeding()
        self._abort_all()
        # The task group only needs to see a cancellation (so its scope can
        # account for it). Any other exception of the body is ours to let
        # propagate: returning None re-raises the very same object, unwrapped
        # and with no "during handling of" context (S13). The task group's own
        # scope is never cancelled while the body runs (nothing exposes it, and
        # no task of ours raises into it but KeyboardInterrupt & co., which make
        # it raise), so a body's cancellation always belongs to a scope outside
        # the block; the one thing the task group would claim is a stale
        # cancellation re-raised by the body after its scope ended, and that
        # goes on out as it would without the set (tests/test_scope.py).
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
        except BaseException as exc:
            if exc_val is None or cancelled:
                raise  # the task group grouped what it had to, cancellations aside
            # A task raised KeyboardInterrupt & co. (S6) while the body raised:
            # neither is lost, grouped as an AnyIO task group groups them.
            tasks: list[BaseException] = (
                list(cast("BaseExceptionGroup[BaseException]", exc).exceptions)
                if isinstance(exc, BaseExceptionGroup)
                else [exc]
            )
            # The body's own may be a task's too (start() raises it, S21): once.
            others = [task for task in tasks if task is not exc_val]
            if others:
                group = BaseExceptionGroup("unhandled errors in a TaskGroup", [exc_val, *others])
                raise group from None
            # Else the body's exception propagates as it is, as below.
        finally:
            self._close()

    def _close(self) -> None:
        self._set_state(CLOSED)
        unguard(self._tg)
        self._pending = 0
        self._live = []
        self._dead = 0
        if self._slots is not None:
            self._slots.clear()
        self._drop_ready()
        self._send.close()
        self._receive.close()
        if self._keys is not None:
            self._keys.clear()
        self._wake_all()
        self._made_room()

    # -- misuse (S1, S2) ------------------------------------------------------

    def _check_thread(self, method: str) -> None:
        if self._thread is not None and get_ident() != self._thread:
            face = self._face
            msg = (
                f"{face}.{method} was called from another thread or event loop than the "
                f"one that entered the {face} (S2); call it from that event loop, e.g. "
                f"through anyio.from_thread.run_sync or anyio.from_thread.run."
            )
            raise RuntimeError(msg)

    def _not_open(self, method: str) -> RuntimeError:
        face = self._face
        if self._state == NEW:
            msg = f"This {face} is not open yet; call {method} inside its async with block."
        else:
            msg = f"This {face} is closed; {method} can no longer start tasks."
        return RuntimeError(msg)

    # -- spawning (S2, S3, S14) ---------------------------------------------

    def _spawn(
        self,
        func: Callable[..., Coroutine[Any, Any, T]],
        args: tuple[Any, ...],
        name: object,
        key: object,
        method: str = "spawn()",
    ) -> JoinHandle[T]:
        if self._state != OPEN or self._thread != get_ident():
            self._check_spawn(method, func)
        where = f"{self._face}.{method}"
        try:
            label = check_name(name, where)
        except TypeError:
            close_coroutines(func)  # passed by mistake: no "never awaited" warning
            raise
        if type(func) is FunctionType and func.__code__.co_flags & CO_COROUTINE:
            # The common case, a plain ``async def``: it can only make a coroutine.
            coro = func(*args)
            if label is None:
                label = coro.__qualname__
        else:
            coro = call_async(func, args, where, self._thread_hint())
            if label is None:
                label = task_name(func, coro)
        return self._add(coro, label, key)

    def _thread_hint(self) -> str:
        return "spawn_thread({f}, *args)"

    def _check_spawn(self, method: str, *args: object) -> None:
        """Refuse a spawn from the wrong thread or outside the block (S2, S3)."""
        try:
            self._check_thread(method)
            if self._state not in (OPEN, SHUTTING):
                raise self._not_open(method)
        except RuntimeError:
            close_coroutines(*args)  # passed by mistake: no "never awaited" warning
            raise

    def _add(
        self,
        coro: Coroutine[Any, Any, T],
        name: str,
        key: object,
        status: TaskStatus[Any] | None = None,
    ) -> JoinHandle[T]:
        """
        Count and start (or queue) a task whose coroutine is made (S2, S14).

        For a JoinMap, the new task goes under its key first, before anything is
        counted: a key whose hash or ``__eq__`` raises, on any of the calls it
        gets, fails here with nothing changed (S16). A start the backend refuses
        (an asyncio task factory that raises) leaves the set as it was: the old
        task of the key keeps running and ``stats()`` has not moved.

        A task made by ``start()`` (``status`` given) is not in the set until it
        calls ``task_status.started()`` (S21): until then it is detached, not
        counted in ``len`` and not under its key.
        """
        # JoinHandle has no __init__: its slots are set here (the cheapest way to
        # make one), as this runs once per task.
        handle: JoinHandle[T] = JoinHandle()
        handle._owner = self
        handle._name = name
        handle._key = key
        handle._flags = 0
        handle._task = handle._payload = handle._status = None
        handle._kind = UNFINISHED
        keys = self._keys
        old: JoinHandle[T] | None = None
        if keys is not None and status is None:
            # ``in`` hashes the key even in an empty dict, and is an operator, not
            # a method call (this runs once per task).
            try:
                if key in keys:
                    old = self._rekey(keys, key, handle)
                elif self._holding:
                    self._replace_held(keys, key, handle)
                else:
                    keys[key] = handle
            except BaseException:
                coro.close()  # no "never awaited" warning
                raise
        self._next_id = handle._id = self._next_id + 1  # counted only now
        # Spawns within a millisecond share one float (24 bytes a task in a burst):
        # a snapshot's ages are to the millisecond (S28); an instrument's run
        # times start from a start time of their own.
        spawned = _now()
        if spawned < self._share_until:
            spawned = self._last_spawned
        else:
            self._last_spawned = spawned
            self._share_until = spawned + _SPAWN_TIME_SHARED
        handle._spawned = spawned
        self._live.append(handle)
        try:
            if self._plain and status is None:
                # The common case (no limit, rate or instrument; not start()), inline
                # with _launch's and _start's: this runs once per task.
                self._pending += 1
                wrapper = self._run(handle, coro)
                try:
                    handle._task = self._tg.create_task(wrapper, name=name)
                except BaseException:
                    wrapper.close()
                    self._refused(handle, coro)
                    raise
            else:
                self._add_other(handle, coro, status)
        except BaseException:
            self._unadd(old)
            raise
        if old is not None:
            self._retire(old)
        return handle

    def _add_other(
        self, handle: JoinHandle[T], coro: Coroutine[Any, Any, T], status: TaskStatus[Any] | None
    ) -> None:
        """``_add`` with an instrument, a limit, a rate, ``start()``, or not open."""
        if self._hooks is not None:
            self._hooks.spawned(self, handle)
        if status is None:
            self._pending += 1
        else:
            handle._flags |= DETACHED
            handle._status = status
            status._handle = handle
        self._launch(handle, coro)

    def _set_state(self, state: int) -> None:
        with _PLAN_LOCK:
            self._state = state
            self._replan()

    def _set_hooks(self, hooks: Hooks | None) -> None:
        """Give the set its instruments (_instrument.py); any thread may call it (S31)."""
        with _PLAN_LOCK:
            self._hooks = hooks
            self._replan()

    def _replan(self) -> None:
        # Under _PLAN_LOCK: add_instrument() may run on another thread while the
        # loop's thread changes _state, and _plain must see both changes.
        self._plain = (
            self._state == OPEN
            and self._hooks is None
            and self._slots is None
            and self._rate is None
        )

    def _unadd(self, old: JoinHandle[T] | None) -> None:
        """The backend refused ``_add``'s task: as if never spawned, ``old`` kept (S3)."""
        self._next_id -= 1
        if old is not None:
            assert self._keys is not None  # noqa: S101
            self._keys[old._key] = old

    def _launch(self, handle: JoinHandle[T], coro: Coroutine[Any, Any, T]) -> None:
        slots = self._slots
        if self._state == SHUTTING:
            # Spawned while shutdown() waits: aborted before it starts (S9).
            self._mark_aborted(handle)
            if slots is not None and not slots.has_room(self._running):
                self._end_unstarted(handle, coro)
                return
        if slots is None or slots.has_room(self._running):
            self._start(handle, coro, None)
        else:
            slots.queue(handle, coro, copy_context())

    def _start(
        self, handle: JoinHandle[T], coro: Coroutine[Any, Any, T], context: Context | None
    ) -> None:
        if self._slots is not None:
            self._running += 1
        if self._rate is not None:
            self._rate.expect(handle)  # it joins the line of rate turns (S18)
        wrapper = self._run(handle, coro)
        try:
            handle._task = self._tg.create_task(wrapper, name=handle._name, context=context)
        except BaseException:
            if self._rate is not None:
                self._rate.skip(handle)  # the wrapper never ran
            wrapper.close()
            self._refused(handle, coro)
            raise

    def _refused(self, handle: JoinHandle[T], coro: Coroutine[Any, Any, T]) -> None:
        """The backend refused to start the task: undo its counting (S3)."""
        if self._slots is not None:
            self._running -= 1
        handle._kind = LOST  # it never ran: out of every count, and of _live at
        self._bury()  # its next compaction (a hook may hold the handle: done)
        if self._keys is not None and self._keys.get(handle._key) is handle:
            del self._keys[handle._key]
        if handle._flags < DETACHED:
            self._pending -= 1  # just added: never detached (only older tasks are)
        coro.close()

    def _never_runs(self, handle: JoinHandle[T], coro: Coroutine[Any, Any, T]) -> bool:
        """
        End a task aborted before it started without running its body (S7, S14).

        Aborted, or started from the queue into a cancelled task group: it ends
        cancelled here. Except a task spawned through the task-group face: it runs, as a task
        group's task would, and meets the cancellation at its first checkpoint, so
        a resource it was handed (serve()'s stream) is closed by its own code (S25).
        """
        if self._bodies is not None and handle in self._bodies:
            _task_scope(cast("TaskHandle[None]", handle._task)).cancel()
            return False
        self._ends_unrun(handle, coro)
        return True

    def _ends_unrun(self, handle: JoinHandle[T], coro: Coroutine[Any, Any, T]) -> None:
        """A started task whose body never ran ends cancelled (S7): no rate turn owed."""
        if self._rate is not None:
            self._rate.skip(handle)
        coro.close()  # no "never awaited" warning
        self._cancelled += 1
        handle._payload = None  # it never started: a run time from its spawn (S31)
        self._finish(handle, CANCELLED, None)

    async def _run(self, handle: JoinHandle[T], coro: Coroutine[Any, Any, T]) -> None:  # noqa: C901, PLR0912 - _finish inline
        # The task wrapper: record however ``coro`` ends on its handle (kind and
        # value or exception) and push the handle into the stream. No local
        # variable holds an exception past its ``except`` block: a failure's
        # traceback keeps this frame alive, and a local would close a reference
        # cycle through it that nothing breaks (exception -> traceback -> frame ->
        # exception). The one through the handle is broken when the outcome is
        # handed out or discarded.
        # A fresh task's flags are 0: one truth test (CPython has no fast ``&``).
        if (
            (handle._flags and handle._flags & ABORTED)
            or (self._cancel_seen and self._outer_cancelled())
        ) and self._never_runs(handle, coro):
            return
        try:
            if not self._plain:
                if self._rate is not None:
                    handle._kind = RATE_TURN
                    await self._rate.wait_turn(handle)
                    handle._kind = UNFINISHED
                    handle._payload = _now()  # its start time (see JoinHandle)
                    # Aborted in the very loop iteration its turn came: asyncio may
                    # hold the cancellation back for the next checkpoint, which
                    # would be in its body (S7).
                    if (handle._flags & ABORTED or self._outer_cancelled()) and self._never_runs(
                        handle, coro
                    ):
                        return
                if self._hooks is not None:
                    self._hooks.started(self, handle)
            value = await coro
        # The handlers hand the exception over in ``_caught`` and call with one
        # argument: the wrapper's frame is part of every task's coroutine, and
        # this keeps it as small as the floor's (four locals, a stack of four).
        except Exception:  # noqa: BLE001 - errors are values (S6)
            self._caught = _exc_info()[1]
            self._failure(handle)
        except BaseException:
            coro.close()  # in case it was cancelled while waiting for its rate turn
            self._caught = _exc_info()[1]
            if self._ended_by_base(handle):
                raise
        else:
            if self._plain and handle._flags < DETACHED:
                # _finish's common case, inline: this runs once per task.
                handle._kind = SUCCEEDED
                handle._task = None
                self._dead += 1  # _bury, inline
                if self._dead > self._compact_at:
                    self._compact()
                handle._payload = value
                self._push(handle)
                if not self._nready:
                    self._ready_since = _now()  # for a snapshot's warning (S30)
                self._nready += 1
                if self._waiters:
                    self._wake_one()
                if self._watched:
                    self._notify(handle)
                return
            self._success(handle, value)

    def _success(self, handle: JoinHandle[T], value: object) -> None:
        self._finish(handle, SUCCEEDED, value)

    def _failure(self, handle: JoinHandle[T]) -> None:
        """A task raised an Exception, which ``_run`` put in ``_caught`` (S6)."""
        exc = self._caught
        self._caught = None
        self._failed += 1
        self._finish(handle, FAILED, exc)

    def _ended_by_base(self, handle: JoinHandle[T]) -> bool:
        """
        Record a task ended by a BaseException; return whether it must propagate.

        ``_run`` put the exception in ``_caught``. This frame is not in the
        exception's traceback, so its locals close no cycle (see _run).
        """
        exc = cast("BaseException", self._caught)
        self._caught = None
        kind = _kind_of(exc, self._cancelled_exc)
        if kind == CANCELLED:
            if handle._kind == RATE_TURN:
                handle._payload = None  # it never started: a run time from its spawn (S31)
            self._cancelled += 1
            aborted = self._had_aborted(handle)
            self._finish(handle, CANCELLED, None)
            # Aborted (our own scope, maybe with a native Task.cancel() on top), or
            # no scope around us was cancelled: a native asyncio Task.cancel() of
            # this one task. Its outcome says so; letting the cancellation out
            # would make the task group cancel everything (AnyIO's scope would not
            # swallow a native one).
            if aborted or not self._outer_cancelled():
                return False
            self._reraised += 1  # its done callback needs no sweep (_native.py)
            return True
        if kind == FAILED:
            # An error raised during the abort, grouped with the cancellation
            # (Trio does that): the task's failed outcome, not a tear-down (S6).
            self._failed += 1
            failure = cast("BaseExceptionGroup[BaseException]", exc).split(self._cancelled_exc)[1]
            self._finish(handle, FAILED, failure)
            return False
        # KeyboardInterrupt & co. are not captured (S6): the task group tears
        # everything down and the exception propagates. The task is counted off,
        # so a shielded drain in a ``finally`` still ends.
        self._lost(handle, exc)
        return True

    def _ended_unstarted(self, ended: object) -> bool:
        """
        asyncio: end as cancelled the tasks whose own task ended before its first step.

        A native ``Task.cancel()`` before a task's first step never reaches
        ``_run`` (see ``_native.py``). Such a task is still in ``_live`` with an
        AnyIO TaskHandle whose wrapper never ran and that no task of the task
        group is yet to run; a Feed's feeder likewise. Called from AnyIO's
        task-done callback for the asyncio task ``ended``, a child that ended
        cancelled. One sweep ends every such task at once (O(tasks)); the done
        callbacks of the other asyncio tasks it found ended cost nothing more,
        so a thousand tasks cancelled at once cost one sweep, not a thousand; a
        task whose ``_run`` let a scope's cancellation out costs none either
        (``_reraised``: any sweep after it still finds what it would have).
        Returns False where nothing can be told (see ``unstepped_tasks``).
        """
        if self._reraised:
            self._reraised -= 1
            return True
        swept = self._swept
        if swept is not None and ended in swept:
            swept.discard(ended)
            return True
        found = unstepped_tasks(self._tg)
        if found is None:
            return False  # AnyIO's own answer, as if the set were not there
        waiting, done = found
        self._swept = WeakSet(done)
        for handle in [handle for handle in self._live if handle._task is not None]:
            task = cast("TaskHandle[None]", handle._task)
            arguments = ended_unstepped(task, waiting)
            if arguments is not None:
                self._had_aborted(handle)  # the face's TaskHandle.cancel() first (S25)
                self._ends_unrun(handle, arguments["coro"])
        for feeding in list(self._feeders):
            feeding.ended_unstepped(waiting)
        return True

    def _had_aborted(self, handle: JoinHandle[T]) -> bool:
        """
        Whether the set had aborted a task that ends cancelled.

        If not, but the task's own scope was cancelled, the ``TaskHandle.cancel()``
        of a task spawned through the task-group face did it (S25): AnyIO's method,
        which the set never sees, so the task is marked aborted now (S31).
        """
        if handle._flags & ABORTED:
            return True
        task = handle._task
        if task is not None and _task_scope(task).cancel_called:
            self._mark_aborted(handle)
        return False

    def _finish(self, handle: JoinHandle[T], kind: int, payload: object) -> None:
        handle._kind = FINISHING  # finished; _deliver records how
        handle._task = None
        if self._hooks is not None:
            self._hooks.finished(self, handle, kind)
        self._bury()
        if self._slots is not None:
            self._running -= 1
            self._slots.freed(self)
        self._deliver(handle, kind, payload)

    def _bury(self) -> None:
        """
        A task of ``_live`` has finished (its handle's kind is FINISHING or more).

        It stays in the list until finished handles outnumber the rest; then one
        pass drops them: O(1) per task, amortized, and memory follows the tasks
        alive (at most twice as many entries, plus ``_COMPACT_MIN``).
        """
        self._dead += 1
        if self._dead > self._compact_at:
            self._compact()

    def _compact(self) -> None:
        # A new list, not one changed in place: a snapshot from another thread
        # may be copying the old one (S28).
        live = self._unfinished()
        self._live = live
        self._dead = 0
        self._compact_at = max(_COMPACT_MIN, len(live))

    def _running_now(self) -> int:
        """Tasks started and not finished (``stats().running``)."""
        if self._slots is not None:
            return self._running
        # Without a limit every task starts when spawned: the unfinished ones.
        return len(self._live) - self._dead

    def _unfinished(self) -> list[JoinHandle[T]]:
        """The tasks of ``_live`` that have not finished, in spawn order."""
        return [handle for handle in self._live if handle._kind < FINISHING]

    def _ended(self, handle: JoinHandle[T]) -> None:
        handle._kind = LOST
        handle._task = None
        self._bury()
        if self._slots is not None:
            self._running -= 1
            self._slots.freed(self)

    def _unclaimed(self, handle: JoinHandle[T], kind: int, payload: object) -> None:
        """A task whose outcome nobody in the set will take has ended."""
        handle._kind = kind
        status = handle._status
        if status is not None and status._waiting():
            status._ended(kind, payload)  # start() raises it (S21)
        elif kind == FAILED:
            # Replaced (S16), detached (S22), or after the block: logged (S13).
            log_failures([outcome_of(handle, kind, payload)])
        if self._watched:
            self._notify(handle)

    def _notify(self, handle: JoinHandle[T]) -> None:
        """Wake the callers of ``handle.wait()`` (S23)."""
        event = self._watched.pop(handle, None)
        if event is not None:
            event.set()

    def _deliver(self, handle: JoinHandle[T], kind: int, payload: object = None) -> None:
        """An ended task's outcome into the stream, or to _unclaimed (S5, S13)."""
        if handle._flags >= DETACHED or self._state == CLOSED:
            self._unclaimed(handle, kind, payload)
            return
        handle._kind = kind
        handle._payload = payload
        self._push(handle)
        if not self._nready:
            self._ready_since = _now()  # for a snapshot's warning (S30)
        self._nready += 1
        if self._waiters:
            self._wake_one()
        if self._watched:
            self._notify(handle)

    def _lost(self, handle: JoinHandle[T], exc: BaseException) -> None:
        if self._hooks is not None:
            self._hooks.finished(self, handle, -1)
        self._ended(handle)
        status = handle._status
        if status is not None and status._waiting():
            status._ended(LOST, exc)  # start() raises it too, as AnyIO's does
        if self._watched:
            self._notify(handle)
        if handle._flags < DETACHED and self._state != CLOSED:
            self._pending -= 1
            self._made_room()
            if self._keys is not None:
                del self._keys[handle._key]
            if not self._pending:
                self._wake_all()

    # -- the hand-off (S5, S10) ----------------------------------------------

    def _wake_one(self) -> None:
        waiters = self._waiters
        event = next(iter(waiters))
        del waiters[event]
        event.set()

    def _wake_all(self) -> None:
        waiters = self._waiters
        if waiters:
            self._waiters = {}
            for event in waiters:
                event.set()

    def _take(self) -> JoinHandle[T]:
        """The next ready handle from the stream (``_nready`` > 0, ``_front`` empty)."""
        handle = self._pull()
        while handle._flags >= DETACHED:
            # A JoinMap task replaced after it finished: already counted off (S16).
            handle = self._pull()
        self._nready -= 1
        return handle

    def _pop(self) -> Outcome[T]:
        # Synchronous from taking to returning (invariant 1).
        outcome: Outcome[T]
        if self._front:
            outcome = self._front.popleft()
            outcome._handle._kind = HANDED_OUT
            hooks = None  # put back by a combinator: reported when first taken (S31)
        else:
            hooks = self._hooks
            # _take, inline: this runs once per task.
            handle = self._pull()
            while handle._flags >= DETACHED:
                handle = self._pull()  # see _take
            outcome = Outcome()
            outcome._handle = handle
            outcome._kind = handle._kind
            outcome._payload = handle._payload
            handle._payload = None  # the outcome holds it now: no cycle is left
            handle._kind = HANDED_OUT
        self._nready -= 1
        self._pending -= 1
        if self._room is not None:
            self._made_room()
        if self._keys is not None:
            del self._keys[outcome._handle._key]
        if hooks is not None:
            hooks.handed_out(self, outcome)
        if self._waiters:
            if not self._pending:
                self._wake_all()  # nothing is left for them (S5)
            elif self._nready:
                self._wake_one()
        return outcome

    def _made_room(self) -> None:
        room = self._room
        if room is not None:
            self._room = None
            room.set()

    async def _wait_for_room(self, limit: int) -> None:
        """Wait until fewer than ``limit`` outcomes are pending (a feeder, S20)."""
        while self._pending >= limit and self._state <= SHUTTING:
            if self._room is None:
                self._room = Event()
            await self._room.wait()

    async def _wait(self, follow: bool = False) -> None:
        """Wait for a wake-up of our own (invariant 3 above)."""
        event = Event()
        waiters = self._waiters
        waiters[event] = (_now(), follow)  # for a snapshot
        try:
            await event.wait()
        except BaseException:
            if waiters.pop(event, _MISSING) is _MISSING and self._nready and self._waiters:
                # Woken, then cancelled before taking anything: pass it on.
                self._wake_one()
            raise

    async def _next(self) -> Outcome[T] | None:
        """Wait for the next outcome and take it; ``None`` once nothing is left (S5)."""
        if self._thread != get_ident():
            self._check_thread("join_next()")
        await checkpoint()
        while not self._nready:
            if not self._pending or self._state == CLOSED:
                return None
            await self._wait()
        return self._pop()

    def _try_next(self) -> Outcome[T] | None:
        if self._thread != get_ident():
            self._check_thread("try_join_next()")
        return self._pop() if self._nready else None

    def _hold(self, taken: list[Outcome[T]]) -> None:
        """A combinator takes outcomes into ``taken`` and may put them back (S11)."""
        self._holding.append(taken)

    def _unhold(self, taken: list[Outcome[T]]) -> None:
        holding = self._holding
        del holding[next(i for i, held in enumerate(holding) if held is taken)]

    def _rekey(
        self, keys: dict[Any, JoinHandle[T]], key: object, handle: JoinHandle[T]
    ) -> JoinHandle[T]:
        """
        Put ``handle`` under ``key``, which has a task: return that old task (S16).

        The entry is taken out and put in again, so the new key object is stored,
        even under an equal key. A key whose hash or ``__eq__`` raises on one of
        these later calls leaves ``keys`` as they were: the old task is put back
        (and if even that fails, it is replaced, so that ``len``, ``keys()`` and
        ``join_next`` still agree).
        """
        old = keys.pop(key)
        try:
            keys[key] = handle
        except BaseException:
            try:
                keys[old._key] = old
            except BaseException:  # noqa: BLE001 - the first error is the one raised
                self._retire(old)
            raise
        return old

    def _replace_held(
        self, keys: dict[Any, JoinHandle[T]], key: object, handle: JoinHandle[T]
    ) -> None:
        """
        Put ``handle`` under ``key``, spawned while a combinator holds outcomes.

        If one of them is ``key``'s old outcome, the newer task wins (S16 over
        S11): if the combinator is cancelled, that outcome is not put back, even
        once the newer task's own outcome has been handed out and the key is gone
        again. The keys are compared before anything changes, as their
        ``__eq__`` may raise.
        """
        held = [
            outcome._handle
            for taken in self._holding
            for outcome in taken
            if outcome._handle._key is key or outcome._handle._key == key
        ]
        keys[key] = handle
        for old in held:
            old._flags |= DETACHED

    def _put_back(self, outcomes: list[Outcome[T]]) -> None:
        """Return outcomes taken and not handed out, ahead of the rest, in order (S11)."""
        front = self._front
        keys = self._keys
        dropped: list[Outcome[T]] = []
        for outcome in reversed(outcomes):
            handle = outcome._handle
            if (
                self._state == CLOSED
                or handle._flags >= DETACHED
                or (keys is not None and handle._key in keys)
            ):
                # The block ended, or the key was spawned again meanwhile: the
                # newer task wins (S16 over S11).
                dropped.append(outcome)
                continue
            front.appendleft(outcome)
            handle._kind = outcome._kind  # finished again, not handed out
            self._nready += 1
            self._pending += 1
            if keys is not None:
                keys[handle._key] = handle
        discard_all(reversed(dropped))
        for _ in range(min(self._nready, len(self._waiters))):
            self._wake_one()

    # -- keys (S16) ------------------------------------------------------------

    def _retire(self, old: JoinHandle[T]) -> None:
        """A JoinMap key was spawned again: its old task is replaced (S16)."""
        # The old task's outcome is never handed out: it stops counting now, so
        # len, keys() and join_next agree at once (S16).
        self._drop(old)
        self._abort(old)

    def _adopt(self, handle: JoinHandle[T]) -> None:
        """A task made by ``start()`` called ``started()``: it joins the set (S21)."""
        keys = self._keys
        old = None
        if keys is not None:
            # First, so a key whose hash or __eq__ raises fails here with nothing
            # changed (S16); its key's old task is replaced only now.
            key = handle._key
            if key in keys:
                old = self._rekey(keys, key, handle)
            else:
                keys[key] = handle
        handle._flags &= ~DETACHED
        self._pending += 1
        if old is not None:
            self._retire(old)

    def _detach_all(self) -> None:
        """Detach every task and drop every ready outcome: ``len`` is 0 (S22)."""
        for handle in self._unfinished():
            self._detach(handle)
        self._pending -= self._drop_ready()
        if self._keys is not None:
            self._keys.clear()
        self._made_room()
        self._wake_all()

    def _drop_ready(self) -> int:
        """
        Drop every ready outcome (put back or in the stream); return how many.

        Their tasks become detached (their outcomes were never kept, S23), and
        their failures are logged in one record, in completion order (S13).
        """
        front = self._front
        failures = [outcome for outcome in front if outcome._kind == FAILED]
        for outcome in front:
            outcome._handle._flags |= DETACHED
        dropped = len(front)
        self._nready -= dropped
        front.clear()
        while self._nready:
            handle = self._take()
            handle._flags |= DETACHED
            if self._hooks is not None:  # leaves the set, discarded (S31)
                self._hooks.handed_out(self, outcome_of(handle, handle._kind, handle._payload))
            if handle._kind == FAILED:
                failures.append(outcome_of(handle, FAILED, handle._payload))
            handle._payload = None
            dropped += 1
        log_failures(failures)
        return dropped

    def _detach(self, handle: JoinHandle[T]) -> None:
        """Keep the task running, but never its outcome (S22)."""
        if handle._flags >= DETACHED or handle._kind == HANDED_OUT:
            return
        keys = self._keys
        if keys is not None and keys.get(handle._key) is handle:
            del keys[handle._key]
        self._drop(handle)
        if not self._pending:
            self._wake_all()  # nothing is left for a join_next (S5)

    def _drop(self, old: JoinHandle[T]) -> None:
        """Count off a task whose outcome will never be handed out."""
        old._flags |= DETACHED
        self._pending -= 1
        self._made_room()
        if old._kind < FINISHING:
            return
        # It had finished: its outcome is never handed out (a failure is logged,
        # S13). Put back by a combinator, it is in _front; else its handle is in
        # the stream, where _take skips it.
        self._nready -= 1
        for outcome in self._front:
            if outcome._handle is old:
                self._front.remove(outcome)
                discard(outcome)
                return
        outcome = outcome_of(old, old._kind, old._payload)
        old._payload = None
        if self._hooks is not None:  # leaves the set, discarded (S31)
            self._hooks.handed_out(self, outcome)
        discard(outcome)

    # -- aborting (S7, S8) -------------------------------------------------------

    def _abort(self, handle: JoinHandle[T]) -> None:
        # Callers check the thread once (abort_all for every task at once, S2).
        if handle._kind >= FINISHING or handle._flags & ABORTED:
            return
        self._mark_aborted(handle)
        if handle._task is not None:
            # Cancel the task's own scope with no frame on this call stack holding
            # its TaskHandle: on Trio the Cancelled's traceback keeps the frames of
            # the call that cancelled it, and the TaskHandle keeps that Cancelled,
            # so a frame holding the TaskHandle (a local here, or TaskHandle.cancel's
            # ``self``) would make a reference cycle of every aborted task.
            scope = _task_scope(handle._task)
            scope.cancel()
        else:  # not started: it waits for a slot (S14)
            slots = self._slots
            assert slots is not None  # noqa: S101
            slots.abort(self, handle)

    def _mark_aborted(self, handle: JoinHandle[T]) -> None:
        handle._flags |= ABORTED
        if self._hooks is not None:
            self._hooks.aborted(self, handle)

    def _stop_feeding(self) -> None:
        for feeder in list(self._feeders):
            feeder.cancel()

    def _abort_all(self) -> None:
        if self._slots is not None:
            self._slots.abort_all(self)
        for handle in self._unfinished():
            self._abort(handle)

    def _end_unstarted(self, handle: JoinHandle[T], coro: Coroutine[Any, Any, T]) -> None:
        """A task aborted while waiting for a slot: it never runs (S7, S14)."""
        if not handle._flags & ABORTED:
            self._mark_aborted(handle)
        handle._kind = FINISHING
        if self._hooks is not None:
            self._hooks.finished(self, handle, CANCELLED)
        coro.close()
        self._bury()
        self._cancelled += 1
        self._deliver(handle, CANCELLED)

    # -- shared by the faces ----------------------------------------------------

    def _stats(self) -> tuple[int, int, int, int, int, int, int]:
        spawned = self._next_id
        waiting = 0 if self._slots is None else self._slots.waiting
        running = self._running_now()
        finished = self._nready
        joined = spawned - waiting - running - finished
        return spawned, waiting, running, finished, joined, self._failed, self._cancelled

    async def _wait_for_capacity(self) -> None:
        self._check_thread("wait_for_capacity()")
        await checkpoint()
        slots, rate = self._slots, self._rate
        # A free slot and the rate turn at one instant: each wait may undo the other.
        while True:
            if slots is not None and not slots.has_capacity(self):
                await slots.wait_room(self)
            elif rate is not None and self._state == OPEN and not rate.has_capacity():
                await rate.wait_capacity()
            else:
                return

    def _state_name(self) -> str:
        return ("new", "open", "shutting down", "closing", "closed")[self._state]


def _cancelled_check(tg: TaskGroup) -> Callable[[], bool]:
    """
    A cheap "is the set's task group cancelled, by itself or a scope around it?".

    Asked by every task before its body (S7): a task not yet started when a scope
    around the set is cancelled must not run any of its body. The public
    ``current_effective_deadline() == -math.inf`` costs 12,600 CPU instructions
    a call on asyncio and 19,100 on Trio; this reads what the backend keeps
    anyway: on Trio the ``effectively_cancelled`` flag of the task group's
    nursery; on asyncio AnyIO's cancel scopes, walked up from the task group's
    as AnyIO's own ``_effectively_cancelled`` does (about 900 instructions a
    task with the call, callgrind). Where AnyIO's internals moved, the public call.
    """
    nursery = getattr(tg, "_nursery", None)
    status = getattr(getattr(nursery, "cancel_scope", None), "_cancel_status", None)
    if status is not None and hasattr(status, "effectively_cancelled"):
        return lambda: status.effectively_cancelled
    scope: Any = tg.cancel_scope
    if all(hasattr(scope, name) for name in ("_cancel_called", "_shield", "_parent_scope")):

        def cancelled() -> bool:
            outer = scope
            while outer is not None:
                if outer._cancel_called:
                    return True
                if outer._shield:
                    return False
                outer = outer._parent_scope
            return False

        return cancelled
    return _deadline_passed  # pragma: no cover - an AnyIO whose internals moved


def _deadline_passed() -> bool:  # pragma: no cover - see _cancelled_check
    return current_effective_deadline() == -math.inf


def _task_scope(task: TaskHandle[None]) -> CancelScope:
    """The cancel scope of an AnyIO task (``TaskHandle.cancel`` cancels it too)."""
    return task._cancel_scope


def _kind_of(exc: BaseException, cancelled: type[BaseException]) -> int:
    """
    How a BaseException that is not an Exception ends a task (S6).

    CANCELLED for the backend's cancellation (or a group of nothing else); FAILED
    for a group of cancellations and Exceptions (an error raised while the task
    was being aborted, as Trio groups it); -1 for anything else (not captured).
    """
    if isinstance(exc, cancelled):
        return CANCELLED
    if not isinstance(exc, BaseExceptionGroup):
        return -1
    _, rest = exc.split(cancelled)  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
    if rest is None:
        return CANCELLED
    return FAILED if isinstance(rest, ExceptionGroup) else -1


def discard(outcome: Outcome[Any]) -> None:
    """Drop an outcome nobody will join; a failure is logged, never silent (S13)."""
    if outcome._kind == FAILED:
        log_failures([outcome])


def discard_all(outcomes: Iterable[Outcome[Any]]) -> None:
    """Drop outcomes nobody will join; their failures are logged in one record (S13)."""
    log_failures([outcome for outcome in outcomes if outcome._kind == FAILED])


# At most this many tasks are listed by name in one record (the rest are counted).
_LISTED = 20


def log_failures(failures: list[Outcome[Any]]) -> None:
    """
    Log failed outcomes never joined: one WARNING record for all of them (S13).

    One failure: its exception is the record's ``exc_info``, as before. Several
    (leaving a block, a shutdown): the message counts them and names each task
    with its exception's line, and ``exc_info`` is an ``ExceptionGroup`` of all
    the exceptions in completion order, so a handler that wants every traceback
    has it (Python's formatter prints the first 15 of a group).
    """
    if not failures:
        return
    if len(failures) == 1:
        outcome = failures[0]
        logger.warning(
            "Task %r (id %d) failed and its outcome was never joined",
            outcome.name,
            outcome.id,
            exc_info=cast("Exception", outcome._payload),
        )
        return
    lines = [
        f"  {outcome.name!r} (id {outcome.id}): {_exception_line(outcome._payload)}"
        for outcome in failures[:_LISTED]
    ]
    if len(failures) > _LISTED:
        lines.append(f"  ... and {len(failures) - _LISTED} more")
    group = ExceptionGroup(
        f"{len(failures)} failed tasks never joined",
        [cast("Exception", outcome._payload) for outcome in failures],
    )
    logger.warning(
        "%d tasks failed and their outcomes were never joined:\n%s",
        len(failures),
        "\n".join(lines),
        exc_info=group,
    )
    del group  # no local may hold an exception


def _exception_line(exc: object) -> str:
    # The last line of a traceback (a broken __str__ shows as "<exception str()
    # failed>": format_exception_only never raises for it).
    return "".join(format_exception_only(cast("BaseException", exc))).strip()
