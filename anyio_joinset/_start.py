# Long-lived sets (API.md S21-S23), written against the engine's operations as
# the combinators are: start() with AnyIO's and Trio's ``task_status`` protocol,
# following a set that may be empty for a while, and waiting for one task.
#
# start(): the task is spawned detached (not in ``len``, not under its key, its
# outcome unclaimed), so nothing it does before ``task_status.started()`` can
# reach a ``join_next``. ``started(value)`` adopts it into the set (a JoinMap
# key replaces its old task only then); if it ends first, the engine hands how
# it ended to the waiting ``start()``, which raises it. So its outcome is
# delivered exactly once, by ``start()`` or by ``join_next``.
# pyright: reportPrivateUsage=false
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar, cast, final

from anyio import Event
from anyio.lowlevel import checkpoint

from ._calling import call_async, check_flag, check_name, reject_uncallable, task_name
from ._exceptions import TaskCancelled
from ._outcome import CANCELLED, FAILED, LOST, Outcome, outcome_of
from ._states import CLOSED, CLOSING, OPEN, SHUTTING

if TYPE_CHECKING:
    from ._engine import Engine
    from ._handle import JoinHandle

T = TypeVar("T")
V = TypeVar("V")
T_contra = TypeVar("T_contra", contravariant=True)

_WAITING, _STARTED, _ENDED, _ABANDONED = range(4)


@final
class TaskStatus(Generic[T_contra]):
    """
    The ``task_status`` that `JoinSet.start` passes to its task (S21).

    It follows AnyIO's ``anyio.abc.TaskStatus`` protocol (and Trio's): the task
    calls ``task_status.started(value)`` once it is ready, and ``start()``
    returns ``value``.
    """

    __slots__ = ("_engine", "_event", "_handle", "_kind", "_payload", "_state", "_value")

    def __init__(self, engine: Engine[Any]) -> None:
        self._engine = engine
        self._event = Event()
        self._handle: JoinHandle[Any] | None = None
        self._state = _WAITING
        self._value: object = None
        self._kind = -1
        self._payload: object = None

    def started(self, value: T_contra | None = None) -> None:
        """
        Signal that the task is ready: it joins the set and ``start()`` returns ``value``.

        Raises:
            RuntimeError: If called twice.
        """
        if self._state == _STARTED:
            msg = "called 'started' twice on the same task status"
            raise RuntimeError(msg)
        if self._state != _WAITING:
            return  # start() was cancelled: the task is being aborted, it stays out
        handle = self._handle
        assert handle is not None  # noqa: S101
        engine = self._engine
        if engine._state < CLOSING:
            engine._adopt(handle)  # a JoinMap key whose __eq__ raises: raised here
        self._state = _STARTED
        self._value = value
        self._event.set()

    def _waiting(self) -> bool:
        return self._state == _WAITING

    def _is_started(self) -> bool:
        return self._state == _STARTED

    def _ended(self, kind: int, payload: object) -> None:
        """The task ended before ``started()``: ``start()`` raises how (S21)."""
        self._state = _ENDED
        self._kind = kind
        self._payload = payload
        self._event.set()


async def start(  # noqa: PLR0913, PLR0917 - the face's arguments, passed through
    engine: Engine[T],
    func: Callable[..., Any],
    args: tuple[Any, ...],
    name: object,
    key: object,
    return_handle: object,
) -> Any:  # noqa: ANN401 - the start value is untyped, as in AnyIO
    """Start ``func(*args, task_status=...)`` and wait until it is ready (S21)."""
    where = f"{engine._face}.start()"
    engine._check_spawn("start()", func)
    reject_uncallable(func, where, engine._thread_hint())  # before it is bound below
    check_flag(return_handle, "return_handle", where)
    label = check_name(name, where)
    status: TaskStatus[Any] = TaskStatus(engine)
    bound = partial(func, task_status=status)
    coro = call_async(bound, args, where, engine._thread_hint())
    handle = engine._add(coro, task_name(func, coro) if label is None else label, key, status)
    try:
        await status._event.wait()
    except BaseException:
        if status._state == _WAITING:
            # Cancelled before the task was ready: it is aborted and never joins
            # the set; a failure it ends with is logged (S13), nothing leaks.
            status._state = _ABANDONED
            engine._abort(handle)
        raise
    if status._state != _STARTED:
        _not_started(status, handle)
    return handle if return_handle else status._value


def _not_started(status: TaskStatus[Any], handle: JoinHandle[Any]) -> NoReturn:
    kind, payload = status._kind, status._payload
    status._payload = None  # no cycle through the exception's traceback
    if kind == FAILED:
        try:
            raise outcome_of(handle, FAILED, payload)._failure()
        finally:
            del payload
    if kind == LOST:
        # KeyboardInterrupt & co. (S6): raised here, as AnyIO's start() does, and
        # by the task group; the block does not group the same object twice.
        try:
            raise cast("BaseException", payload)
        finally:
            del payload
    if kind == CANCELLED:
        msg = f"Task {handle._name!r} (id {handle._id}) was cancelled before it called started()."
        raise TaskCancelled(msg)
    msg = f"Task {handle._name!r} (id {handle._id}) ended without calling task_status.started()."
    raise RuntimeError(msg)


@final
class Follow(Generic[T, V]):
    """
    What ``follow()`` returns: the outcomes of a long-lived set as they finish (S22).

    Unlike ``async for outcome in js``, an empty set does not end it: it waits
    for the next outcome while the set is open, and ends once the set's block is
    left and every outcome was taken. Cancel-safe, as `JoinSet.join_next`.
    """

    __slots__ = ("_engine", "_present")

    def __init__(self, engine: Engine[T], present: Callable[[Outcome[T]], V]) -> None:
        self._engine = engine
        self._present = present

    def __aiter__(self) -> Follow[T, V]:
        """The iterator itself."""
        return self

    async def __anext__(self) -> V:
        """The next outcome; waits while the set is open and empty."""
        engine = self._engine
        engine._check_thread("follow()")
        await checkpoint()
        while not engine._nready:
            if engine._state == CLOSED:  # the block was left: _close woke us
                raise StopAsyncIteration
            await engine._wait(follow=True)  # an empty set is no error here (S22, S30)
        return self._present(engine._pop())


def follow(engine: Engine[T], present: Callable[[Outcome[T]], V]) -> Follow[T, V]:
    """Check the call (S2, S3) and make the iterator (S22)."""
    engine._check_thread("follow()")
    if engine._state == CLOSED:
        msg = f"This {engine._face} is closed; call follow() inside its async with block."
        raise RuntimeError(msg)
    if engine._state not in (OPEN, SHUTTING, CLOSING):
        # While the block is being left it still takes what comes, then ends.
        raise engine._not_open("follow()")
    return Follow(engine, present)


async def wait(handle: JoinHandle[Any]) -> None:
    """Wait until ``handle``'s task has finished (S23); a checkpoint."""
    engine = handle._owner
    engine._check_thread("wait()")
    await checkpoint()
    if handle.done():
        return
    event = engine._watched.get(handle)
    if event is None:
        event = engine._watched[handle] = Event()
    await event.wait()
