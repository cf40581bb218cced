# pyright: reportPrivateUsage=false
from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar, cast, final

from ._exceptions import TaskCancelled

if TYPE_CHECKING:
    from ._handle import JoinHandle

# Covariant: an Outcome only hands its value out, so an Outcome[int] is an
# Outcome[object] (a function that logs any outcome takes Outcome[object]).
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

# How a task ended; an int is the cheapest immutable tag to store per outcome.
SUCCEEDED = 0
FAILED = 1
CANCELLED = 2
# A handle's ``_kind`` before and after. Before: finished, its kind about to be
# recorded (what an instrument's task_finished sees); running; waiting for its
# rate turn (S18); waiting for a slot (S14). Its task has finished once the kind
# is FINISHING or more (``JoinHandle.done()``).
FINISHING = -1
UNFINISHED = -2
RATE_TURN = -3
QUEUED = -4
HANDED_OUT = 3  # its Outcome holds the rest
LOST = 4  # ended by an uncaptured BaseException (S6): never an outcome
# A handle's ``_flags``: aborted (S7); detached, its outcome never handed out
# (replaced in a JoinMap, S16, or detached, S22). DETACHED is the high bit, so
# the hot paths test it with ``>=``, which CPython specializes (``&`` it does not).
ABORTED = 1
DETACHED = 2


@final
class Outcome(Generic[T_co]):
    """
    How one task of a `JoinSet` ended: a value, an exception, or cancelled.

    Modelled on a finished `concurrent.futures.Future`. Outcomes are handed
    out by `JoinSet.join_next`, `JoinSet.try_join_next` and iteration,
    exactly once each. They are immutable and are not meant to be constructed by
    users.
    """

    # The task's handle (for its id, name and key) rather than copies: one
    # argument less to pass for every task. The handle holds no outcome, so no
    # reference cycle is made. No __init__: the hot paths make one with
    # ``Outcome()`` and set its three slots, the cheapest way CPython has to make
    # an instance of a class (no Python frame, no argument tuple); the rest of
    # the package calls outcome_of().
    __slots__ = ("_handle", "_kind", "_payload")

    _handle: JoinHandle[T_co]
    _kind: int
    _payload: object

    @property
    def id(self) -> int:
        """The id of the task, the same as its `JoinHandle.id`."""
        return self._handle._id

    @property
    def name(self) -> str:
        """The name of the task, the same as its `JoinHandle.name`."""
        return self._handle._name

    def succeeded(self) -> bool:
        """
        Return ``True`` if the task returned a value (API.md S6).

        Exactly one of `succeeded`, `failed` and `cancelled` is ``True``. When it
        is, `result` returns the value and `exception` returns ``None``.
        """
        return self._kind == SUCCEEDED

    def failed(self) -> bool:
        """
        Return ``True`` if the task raised an `Exception` (API.md S6).

        When it is, `exception` returns that exception and `result` raises it.
        A cancelled task has not failed: see `cancelled`.
        """
        return self._kind == FAILED

    def cancelled(self) -> bool:
        """Return ``True`` if the task ended cancelled (aborted, or by a scope)."""
        return self._kind == CANCELLED

    def result(self) -> T_co:
        """
        Return the task's return value.

        Returns:
            The value the task's function returned.

        Raises:
            TaskCancelled: If the task was cancelled.
            BaseException: The task's own exception (the same object), if it failed.
        """
        if self._kind == SUCCEEDED:
            return cast("T_co", self._payload)
        try:
            raise self._failure()
        finally:
            # The traceback keeps this frame: without ``self`` it cannot hold the
            # outcome, which holds the exception (concurrent.futures does the same).
            del self

    def exception(self) -> Exception | None:
        """
        Return the task's exception, or ``None`` if it succeeded.

        Always an `Exception`: a task that raises any other `BaseException`
        (``KeyboardInterrupt``, ``SystemExit``) has no outcome, since that
        exception propagates (API.md S6).

        Raises:
            TaskCancelled: If the task was cancelled.
        """
        if self._kind == SUCCEEDED:
            return None
        if self._kind == FAILED:
            return cast("Exception", self._payload)
        try:
            raise self._failure()
        finally:
            del self  # as in result()

    def _failure(self) -> Exception:
        # What result() raises for a task that did not succeed: its own exception
        # (always an Exception: other BaseExceptions are never captured, S6), or a
        # TaskCancelled for a cancelled one.
        if self._kind == FAILED:
            return cast("Exception", self._payload)
        msg = f"Task {self.name!r} (id {self.id}) was cancelled."
        return TaskCancelled(msg)

    def __repr__(self) -> str:
        if self._kind == SUCCEEDED:
            state = f"value={self._payload!r}"
        elif self._kind == FAILED:
            state = f"exception={_safe_repr(self._payload)}"
        else:
            state = "cancelled"
        return f"<Outcome id={self.id} name={self.name!r} {state}>"


def _safe_repr(obj: object) -> str:
    # A task's exception may have a broken __repr__; a repr must never raise.
    try:
        return repr(obj)
    except Exception:  # noqa: BLE001
        return f"<{type(obj).__name__} object (repr failed)>"


def outcome_of(handle: JoinHandle[T], kind: int, payload: object) -> Outcome[T]:
    """The outcome of ``handle``'s task: ``kind`` with its value or exception."""
    outcome: Outcome[T] = Outcome()
    outcome._handle = handle
    outcome._kind = kind
    outcome._payload = payload
    return outcome
