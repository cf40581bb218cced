# The handle is also the engine's per-task record, so a task costs one object of
# ours, not two. The engine (``_engine.py``) makes every state change; the
# handle only reads its state and delegates ``abort``.
# pyright: reportPrivateUsage=false
from __future__ import annotations

from collections.abc import Coroutine
from contextvars import Context
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

if TYPE_CHECKING:
    from anyio import TaskHandle

    from ._engine import Engine

T = TypeVar("T")


@final
class JoinHandle(Generic[T]):
    """
    A handle on one task of a `JoinSet` or `JoinMap`, returned by ``spawn``.

    It lets you abort the task and ask whether it has finished. It does not carry
    the task's result: the result comes through the set, exactly once.
    """

    # ``_task`` is AnyIO's TaskHandle while the task runs (None while it waits for
    # a slot under ``limit`` and once it has finished, which breaks the handle ->
    # TaskHandle -> exception -> frame -> handle cycle).
    __slots__ = (
        "__weakref__",
        "_aborted",
        "_context",
        "_coro",
        "_detached",
        "_done",
        "_id",
        "_key",
        "_kind",
        "_name",
        "_owner",
        "_payload",
        "_task",
    )

    _task: TaskHandle[None] | None
    _coro: Coroutine[Any, Any, T] | None
    _context: Context | None

    def __init__(self, owner: Engine[T], id: int, name: str, key: object) -> None:  # noqa: A002
        self._owner = owner
        self._id = id
        self._name = name
        self._key = key  # a JoinMap's key, or the input of a fed task (S16, S20)
        self._done = False
        self._aborted = False
        self._detached = False  # replaced in a JoinMap: its outcome is never handed out
        self._task = None
        # How it ended (an Outcome kind) and its value or exception, from the time
        # it finishes until its outcome is handed out (then the Outcome holds them).
        self._kind = -1
        self._payload: object = None
        # Set only while the task waits for a slot (API.md S14).
        self._coro = None
        self._context = None

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
        return self._done

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
