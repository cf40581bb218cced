# The handle is also the engine's per-task record, so a task costs one object of
# ours, not two. The engine (``_engine.py``) makes every state change; the
# handle only reads its state and delegates ``abort``.
# pyright: reportPrivateUsage=false
from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

from ._outcome import ABORTED, DETACHED, FINISHING, HANDED_OUT, QUEUED, RATE_TURN
from ._start import wait

if TYPE_CHECKING:
    from anyio import TaskHandle

    from ._engine import Engine
    from ._start import TaskStatus

T = TypeVar("T")


@final
class JoinHandle(Generic[T]):
    """
    A handle on one task of a `JoinSet` or `JoinMap`, returned by ``spawn``.

    It lets you abort the task and ask whether it has finished. It does not carry
    the task's result: the result comes through the set, exactly once.
    """

    # Made only by the engine (``Engine._add`` sets every slot, with no __init__
    # call: this runs once per task). A task costs one object of ours, and its
    # slots are kept few: each is 8 bytes per task alive (issue 17). They hold:
    # - ``_owner``, ``_id``, ``_name``; ``_key``: a JoinMap's key, or the input of
    #   a fed task (S16, S20).
    # - ``_flags``: ABORTED, and DETACHED: replaced in a JoinMap or detached
    #   (S22), its outcome is never handed out.
    # - ``_task``: AnyIO's TaskHandle while the task runs (None while it waits for
    #   a slot under ``limit`` and once it has finished, which breaks the handle ->
    #   TaskHandle -> exception -> frame -> handle cycle).
    # - ``_kind``: where it is (QUEUED for a slot, RATE_TURN, UNFINISHED: running),
    #   FINISHING while the engine records its end, then how it ended (an Outcome
    #   kind), HANDED_OUT or LOST. Finished means ``_kind >= FINISHING``.
    # - ``_payload``, by ``_kind``: QUEUED, the coroutine and context it will run
    #   (S14); RATE_TURN, UNFINISHED and FINISHING, when it started if it waited
    #   for a slot or a rate turn, or an instrument asked (else None: it started
    #   when spawned; S28, S31); finished, its value or exception until its
    #   outcome is handed out (then the Outcome holds them).
    # - ``_status``: made by start() (S21); ``_spawned``: when it was spawned,
    #   read only by a snapshot and the instruments.
    __slots__ = (
        "__weakref__",
        "_flags",
        "_id",
        "_key",
        "_kind",
        "_name",
        "_owner",
        "_payload",
        "_spawned",
        "_status",
        "_task",
    )

    _owner: Engine[T]
    _id: int
    _name: str
    _key: object
    _flags: int
    _task: TaskHandle[None] | None
    _kind: int
    _payload: object
    _status: TaskStatus[Any] | None
    _spawned: float

    @property
    def id(self) -> int:
        """Unique within its set, increasing in spawn order (starts at 1)."""
        return self._id

    @property
    def name(self) -> str:
        """The name given to ``spawn``, else the function's qualified name."""
        return self._name

    def done(self) -> bool:
        """Return ``True`` once the task has finished, whether or not it was joined."""
        return self._kind >= FINISHING

    def abort(self) -> None:
        """
        Abort the task by cancelling its own cancel scope (API.md S7).

        Never waits and is not a checkpoint; calling it again does nothing. A task
        that already finished keeps its real outcome. A task aborted before it
        started never runs any of its body and its outcome is cancelled. A task
        that catches the cancellation and returns a value yields that value.

        Raises:
            RuntimeError: If called from another thread or event loop than the
                set's (S2).
        """
        owner = self._owner
        owner._check_thread("abort()")
        owner._abort(self)

    @property
    def aborted(self) -> bool:
        """``True`` once the task was aborted (by `abort`, ``abort_all``, a shutdown...)."""
        return bool(self._flags & ABORTED)

    @property
    def state(self) -> TaskState:  # noqa: PLR0911 - one return per state
        """
        Where the task is in its life (S23): a snapshot, cheap, never a checkpoint.

        `TaskState.WAITING` for a slot under ``limit``, `TaskState.RATE_TURN`
        waiting for its start turn under ``rate`` (from its spawn, or its slot,
        until its turn), `TaskState.RUNNING`,
        `TaskState.FINISHED` (its outcome not handed out yet),
        `TaskState.HANDED_OUT`, or `TaskState.DETACHED` (finished, and its outcome
        never kept: `detach`, or a JoinMap task replaced under its key). An
        aborted task that has not finished is `TaskState.RUNNING` (unwinding:
        what a snapshot calls ``aborting``), or `TaskState.WAITING` (for a slot)
        with `aborted` true.
        """
        kind = self._kind
        if kind == HANDED_OUT:
            return TaskState.HANDED_OUT
        if kind >= FINISHING:
            return TaskState.DETACHED if self._flags >= DETACHED else TaskState.FINISHED
        if kind == QUEUED:
            return TaskState.WAITING
        if self._flags & ABORTED:
            return TaskState.RUNNING  # unwinding: what a snapshot calls aborting
        if kind == RATE_TURN:
            return TaskState.RATE_TURN
        rate = self._owner._rate
        if rate is not None and rate.waiting(self):
            return TaskState.RATE_TURN  # started, not run by the event loop yet
        if self._task is not None or self._payload is not None:
            return TaskState.RUNNING
        # No task yet: inside spawn() (a task_spawned hook), or a slot just freed
        # for it. Waiting if it is about to join the limit's queue, or the line
        # of rate turns, as a snapshot reads it (S28).
        slots = self._owner._slots
        if slots is not None and not slots.has_room(self._owner._running):
            return TaskState.WAITING
        return TaskState.RUNNING if rate is None else TaskState.RATE_TURN

    @property
    def start_value(self) -> object:
        """
        The value the task passed to ``task_status.started()`` (S21).

        Raises:
            RuntimeError: If the task was not made by ``start()``, or has not
                called ``started()``.
        """
        status = self._status
        if status is None or not status._is_started():
            msg = (
                f"Task {self._name!r} (id {self._id}) has no start value: only a task "
                f"made by start() has one, once it called task_status.started()."
            )
            raise RuntimeError(msg)
        return status._value

    async def wait(self) -> None:
        """
        Wait until the task has finished, however it ends (S23); a checkpoint.

        It does not take the outcome: that still comes through the set, exactly
        once (so a handle can be awaited by many and still joined by one).

        Raises:
            RuntimeError: If called from another thread or event loop (S2).
        """
        await wait(self)

    def detach(self) -> None:
        """
        Let the task run on its own: its outcome will never be kept (S22).

        Like tokio's ``JoinSet::detach_all`` for one task: it leaves ``len`` (and a
        JoinMap's keys) at once, keeps running, is still aborted when the block
        is left, and its outcome is dropped when it ends; a failure is logged at
        WARNING on the ``anyio_joinset`` logger (S13), never silent. A finished
        task's outcome still in the set is dropped now. Does nothing once its
        outcome was handed out.

        Raises:
            RuntimeError: If called from another thread or event loop (S2).
        """
        owner = self._owner
        owner._check_thread("detach()")
        owner._detach(self)

    def __repr__(self) -> str:
        state = self.state.name.lower()
        if self._flags & ABORTED and self._kind < FINISHING:
            state += " aborted"
        return f"<JoinHandle id={self._id} name={self._name!r} {state}>"


@final
class TaskState(Enum):
    """Where a task is in its life: `JoinHandle.state` (S23)."""

    WAITING = "waiting"
    """Waiting for a slot under ``limit`` (S14)."""
    RATE_TURN = "rate turn"
    """Started, waiting for its start turn under ``rate`` before its body (S18)."""
    RUNNING = "running"
    """Running (or, aborted, unwinding)."""
    FINISHED = "finished"
    """Finished; its outcome is in the set, not handed out yet."""
    HANDED_OUT = "handed out"
    """Finished, and its outcome was handed out."""
    DETACHED = "detached"
    """Finished, and its outcome was never kept (detached or replaced)."""
