# The task-group face (API.md S24-S27): an ``anyio.abc.TaskGroup`` whose
# spawning methods put their tasks into a JoinSet or JoinMap, so an API that
# takes a task group (``Listener.serve(handler, task_group=...)``) fills the set.
#
# It owns nothing: the set's own ``async with`` block owns the task group and
# the lifetime, so entering the face is refused. ``start_soon`` is AnyIO's own
# (final in the ABC): it calls the function and hands the coroutine to
# ``create_task`` below, which adds it to the set like any spawn. What a spawn
# returns is the AnyIO ``TaskHandle`` of the task the set runs (S25).
# pyright: reportPrivateUsage=false
from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar, cast, final, overload
from weakref import WeakSet

from anyio.abc import TaskGroup

from . import _start as starting
from ._calling import close_coroutines, describe, is_coroutine, reject_uncallable, unwrap_partials
from ._engine import NO_KEY, Engine

if TYPE_CHECKING:
    from contextvars import Context
    from types import TracebackType

    from anyio import CancelScope, TaskHandle

    from ._start import TaskStatus

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@final
class SetTaskGroup(TaskGroup):
    """
    The open set seen as an ``anyio.abc.TaskGroup``: `JoinSet.task_group`, `JoinMap.task_group`.

    Pass it wherever AnyIO or a library expects a task group (for example
    ``listener.serve(handler, task_group=js.task_group)``): every task it starts
    (``start_soon``, ``start``, ``create_task``) is a task of the set, counted in
    ``len``, aborted by `JoinSet.abort_all` and `JoinSet.shutdown`, and its outcome
    comes through `JoinSet.join_next` exactly once (API.md S24).

    It is not a second task group and it is never entered: the set's own
    ``async with`` block owns the lifetime, and it has no ``cancel_scope`` to
    give: its ``cancel()`` aborts every task of the set, as `JoinSet.abort_all`
    (S26). Its spawning methods return the AnyIO ``TaskHandle`` of the set's task,
    which does not carry the outcome (S25). The ABC's signatures are generic per
    call, so a task of any result type can come in through it: give the set the
    type its handlers return. Get one from the set; do not make one yourself.
    """

    __slots__ = ("_engine", "_key_func")

    def __init__(self, engine: Engine[Any], key_func: Callable[[], object] | None) -> None:
        self._engine = engine
        self._key_func = key_func

    def _next_key(self, *spawned: object) -> object:
        """The key of the next task: a JoinMap's from its ``key_func`` (S27)."""
        if self._key_func is None:
            return NO_KEY
        try:
            key = self._key_func()
            hash(key)
        except BaseException:
            close_coroutines(*spawned)  # no "never awaited" warning
            raise
        return key

    def _where(self, method: str) -> str:
        face = self._engine._face
        return f"{face}.task_group.{method}"

    # -- spawning (S24, S25) -------------------------------------------------

    def create_task(
        self,
        coro: Coroutine[Any, Any, T_co],
        *,
        name: object = None,
        context: Context | None = None,
    ) -> TaskHandle[T_co]:
        """
        Make ``coro`` a task of the set, as `JoinSet.spawn` would (API.md S25).

        Synchronous: the task starts at the next scheduling point (S2); its
        coroutine is the one given. ``start_soon`` (AnyIO's own) calls the function
        and comes here with the coroutine.

        Args:
            coro: A coroutine object.
            name: The task's name (``str(name)``); defaults to the coroutine's
                qualified name. (AnyIO's ``start_soon`` always passes one: the
                function's module and qualified name.)
            context: Run the task in a copy of this ``contextvars`` context instead
                of a copy of the current one.

        Returns:
            The AnyIO ``TaskHandle`` of the task the set runs for ``coro`` (S25):
            ``cancel()`` aborts the task, ``wait()`` returns once it has ended. It
            does not carry the outcome (awaiting it gives ``None``, whatever the
            ABC's ``TaskHandle[T]`` says): the outcome comes through the set.

        Raises:
            TypeError: If ``coro`` is not a coroutine object (S3).
            RuntimeError: If the set is not open, or if called from another thread
                or event loop (S2, S3).
        """
        engine = self._engine
        where = self._where("create_task()")
        if not is_coroutine(coro):
            msg = (
                f"{where} takes a coroutine object, not {type(coro).__name__}; "
                f"pass a function and its arguments to start_soon() instead."
            )
            raise TypeError(msg)
        engine._check_spawn("task_group.create_task()", coro)
        label = getattr(coro, "__qualname__", None) if name is None else name
        key = self._next_key(coro)
        if context is None:
            handle = engine._add(coro, str(label), key)
        else:
            handle = context.run(engine._add, coro, str(label), key)
        # As a task group's task: aborted before it starts, it still starts and
        # meets the cancellation at its first checkpoint, so a resource it was
        # handed (serve()'s stream) is closed by its own ``async with`` (S25).
        if engine._bodies is None:
            engine._bodies = WeakSet()
        engine._bodies.add(handle)
        task = handle._task
        assert task is not None  # noqa: S101 - a set with a limit has no face (S24)
        return cast("TaskHandle[T_co]", task)

    @overload
    async def start(
        self,
        func: Callable[..., Coroutine[Any, Any, T_co]],
        *args: object,
        name: object = None,
        return_handle: Literal[False] = ...,
    ) -> Any: ...  # noqa: ANN401 - as AnyIO's TaskGroup.start: the start value is untyped

    @overload
    async def start(
        self,
        func: Callable[..., Coroutine[Any, Any, T_co]],
        *args: object,
        name: object = None,
        return_handle: Literal[True],
    ) -> TaskHandle[T_co, Any]: ...

    async def start(
        self,
        func: Callable[..., Coroutine[Any, Any, T_co]],
        *args: object,
        name: object = None,
        return_handle: Literal[False, True] = False,
    ) -> Any:
        """
        Start ``func(*args, task_status=...)`` in the set and wait until it is ready (S21, S25).

        The set's own `JoinSet.start` (S21), with AnyIO's and Trio's
        ``task_status`` protocol: returns the value the task passes to
        ``task_status.started()``; from then on the task is in the set and its
        outcome comes through `JoinSet.join_next` exactly once. A task that ends
        before ``started()`` is never in the set: ``start()`` raises how it ended.
        A checkpoint.

        Args:
            func: An async function that takes a ``task_status`` keyword argument.
            *args: Positional arguments for ``func``.
            name: The task's name (``str(name)``); defaults to the function's
                qualified name.
            return_handle: Return the AnyIO ``TaskHandle`` of the set's task (its
                ``start_value`` holds the value; see S25) instead of the value.

        Returns:
            The start value, or the ``TaskHandle`` with ``return_handle=True``.

        Raises:
            Exception: The task's own exception, if it failed before ``started()``.
            TaskCancelled: If it was aborted before ``started()``.
            RuntimeError: If it returned without calling ``started()``, if the set
                is not open, or if called from another thread or event loop.
        """
        engine = self._engine
        label = None if name is None else str(name)
        if return_handle is not True:
            key = self._next_key(func)
            return await starting.start(engine, func, args, label, key, return_handle)
        where = self._where("start()")
        engine._check_spawn("task_group.start()", func)
        reject_uncallable(func, where, engine._thread_hint())
        key = self._next_key(func)
        # The TaskHandle is found while the task runs or right after start():
        # a task that already ended has let go of it (see _recording).
        box: list[TaskHandle[Any]] = []
        recording = partial(_recording, func, box)
        if label is None:
            label = describe(unwrap_partials(func))
        handle = await starting.start(engine, recording, args, label, key, True)
        task = box[0] if box else handle._task
        assert task is not None  # noqa: S101 - see _recording
        task._start_value = handle.start_value
        return task

    # -- lifetime and cancelling (S26) -------------------------------------------------

    @property
    def cancel_scope(self) -> CancelScope:
        """
        Refused (API.md S26): the face has no cancel scope to give.

        The only scope around every task of the set is the set's own task group's,
        and the body of the set's ``async with`` block runs inside it too:
        cancelling it would cancel the body, and the block (which swallows nothing,
        S13) would let that cancellation out to code whose scope was never
        cancelled. To abort the set's tasks, call `cancel` (or `JoinSet.abort_all`);
        to stop everything, cancel a scope around the block.

        Raises:
            RuntimeError: Always, naming the fix.
        """
        face = self._engine._face
        msg = (
            f"{face}.task_group has no cancel scope to give: the set's task group's "
            f"scope would also cancel the body of its async with block; call "
            f"task_group.cancel() or {face}.abort_all() to abort its tasks, or cancel "
            f"a scope around the block."
        )
        raise RuntimeError(msg)

    @cancel_scope.setter
    def cancel_scope(self, value: CancelScope) -> NoReturn:  # pyright: ignore[reportIncompatibleVariableOverride]  # noqa: ARG002 - the ABC declares a writable attribute
        face = self._engine._face
        msg = f"{face}.task_group.cancel_scope cannot be set; the set's block owns its scope."
        raise AttributeError(msg)

    def cancel(self, reason: str | None = None) -> None:  # noqa: ARG002 - no reason to carry
        """
        Abort every task of the set: `JoinSet.abort_all` (API.md S26, S8).

        ``TaskGroup.cancel()`` for the face. Unlike cancelling a task group, it
        cancels neither the body of the set's block nor the tasks started
        afterwards: they run normally. Never waits and is not a checkpoint.

        Args:
            reason: Accepted for the ABC's signature; an abort carries no reason.

        Raises:
            RuntimeError: If called from another thread or event loop (S2).
        """
        engine = self._engine
        engine._check_thread("task_group.cancel()")
        engine._abort_all()

    async def __aenter__(self) -> NoReturn:
        """Refused: the set's own ``async with`` block owns the lifetime (S26)."""
        raise RuntimeError(_entered_msg(self._engine._face))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> NoReturn:
        """Refused, as ``__aenter__`` (S26)."""
        raise RuntimeError(_entered_msg(self._engine._face))

    def __repr__(self) -> str:
        return f"<{self._engine._face}.task_group of {self._engine!r}>"


async def _recording(
    func: Callable[..., Coroutine[Any, Any, T_co]],
    box: list[TaskHandle[Any]],
    *args: object,
    task_status: TaskStatus[Any],
) -> T_co:
    # What the set runs for ``start(..., return_handle=True)``: the AnyIO
    # TaskHandle of the task is on its JoinHandle while it runs, and is let go
    # when it ends; keep it. (An eager task that ends inside the spawn call ends
    # before the handle is stored: then start() finds it on the JoinHandle.)
    try:
        return await func(*args, task_status=task_status)
    finally:
        handle = task_status._handle
        assert handle is not None  # noqa: S101
        if handle._task is not None:
            box.append(handle._task)


def _entered_msg(face: str) -> str:
    return (
        f"{face}.task_group is the task group of the open {face} and cannot be entered; "
        f"pass it where a task group is expected, inside the {face}'s own async with block."
    )


def face_of(engine: Engine[T], key_func: Callable[[], object] | None) -> SetTaskGroup:
    """The task-group face of ``engine``; refused for a set with a ``limit`` (S24)."""
    if engine._slots is not None:
        face = engine._face
        msg = (
            f"This {face} has a limit, and a task group starts every task at once: "
            f"use a {face} without limit for its task_group, and bound the work "
            f"with wait_for_capacity() or an anyio.CapacityLimiter."
        )
        raise RuntimeError(msg)
    return SetTaskGroup(engine, key_func)
