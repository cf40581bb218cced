# JoinHandle hands abort of a waiting task back to its JoinSet's private API.
# pyright: reportPrivateUsage=false
from __future__ import annotations

from collections.abc import Coroutine
from contextvars import Context
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

if TYPE_CHECKING:
    from anyio import TaskHandle

    from ._joinset import JoinSet

T = TypeVar("T")


@final
class JoinHandle(Generic[T]):
    """
    A handle on one task of a :class:`JoinSet`, returned by :meth:`JoinSet.spawn`.

    It lets you abort the task and ask whether it has finished. It does not carry
    the task's result: the result comes through the set, exactly once.
    """

    # The handle is also the set's per-task record, so a task costs one object of
    # ours, not two. ``_task`` is AnyIO's TaskHandle while the task runs (None
    # while it waits for a slot under ``limit`` and once it has finished, which
    # breaks the handle -> TaskHandle -> exception -> frame -> handle cycle).
    __slots__ = (
        "__weakref__",
        "_aborted",
        "_context",
        "_coro",
        "_done",
        "_id",
        "_name",
        "_owner",
        "_task",
    )

    _task: TaskHandle[None] | None
    _coro: Coroutine[Any, Any, T] | None
    _context: Context | None

    def __init__(self, owner: JoinSet[T], id: int, name: str) -> None:  # noqa: A002
        self._owner = owner
        self._id = id
        self._name = name
        self._done = False
        self._aborted = False
        self._task = None
        # Set only while the task waits for a slot (API.md S14).
        self._coro = None
        self._context = None

    @property
    def id(self) -> int:
        """Unique within its set, increasing in spawn order (starts at 1)."""
        return self._id

    @property
    def name(self) -> str:
        """The name given to :meth:`JoinSet.spawn`, else the function's qualified name."""
        return self._name

    def done(self) -> bool:
        """Return ``True`` once the task has finished, whether or not it was joined."""
        return self._done

    def abort(self) -> None:
        """
        Abort the task by cancelling its own cancel scope (API.md S7).

        Never waits and is not a checkpoint; calling it again does nothing. A task
        that already finished keeps its real outcome. A task aborted before it
        started never runs any of its body and its outcome is cancelled. A task
        that catches the cancellation and returns a value yields that value.
        """
        if self._done or self._aborted:
            return
        self._aborted = True
        if self._task is not None:
            self._task.cancel()
        else:
            self._owner._abort_waiting(self)

    def __repr__(self) -> str:
        if self._done:
            state = "done"
        elif self._aborted:
            state = "aborting"
        elif self._task is None:
            state = "waiting"
        else:
            state = "running"
        return f"<JoinHandle id={self._id} name={self._name!r} {state}>"
