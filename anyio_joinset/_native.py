"""
asyncio: a task natively cancelled before its first step (S7, S20).

AnyIO runs every task inside a wrapper coroutine of its own
(``TaskHandle._run_coro``), which awaits the set's wrapper (``Engine._run``, or
a Feed's feeder). An asyncio ``Task.cancel()`` that lands before the task's
first step is thrown into AnyIO's wrapper before it has awaited anything, so the
set's wrapper never runs: the task would get no outcome, its coroutines would be
dropped unawaited, and AnyIO's task group, seeing a child end with
``CancelledError``, would cancel itself and with it every other task and the
body of the ``async with`` block (or, if a scope around it is already
cancelled, say nothing, and a drain in a shielded ``finally`` would wait for the
task for ever).

AnyIO's task-done callback asks the task group scope's ``_effectively_cancelled``
for every child that ended with an exception, and cancels the task group if it
is false. ``guard()`` gives the set's task group scope a subclass (no new
slots, so ``__class__`` can be assigned) whose ``_effectively_cancelled``, when
that callback asks for a child that ended cancelled, first lets the set end
every task of its own that ended so before its first step
(``Engine._ended_unstarted``: a cancelled outcome, as a natively cancelled task
that had started gets), and answers true so that AnyIO leaves the task group
alone: every task of the set runs a wrapper that lets a cancellation out only
when a scope around the set is cancelled, so a child ending cancelled never
calls for the task group to be cancelled. Nothing is added per task: one class
assignment per set, and the check runs only when a task ends with an exception.
Where AnyIO's internals differ from what this reads, AnyIO's own answer is given.
"""

# pyright: reportPrivateUsage=false
from __future__ import annotations

import sys
from asyncio import CancelledError
from inspect import CORO_CLOSED, CORO_CREATED, getcoroutinestate
from types import CoroutineType
from typing import TYPE_CHECKING, Any, cast
from weakref import WeakValueDictionary

from anyio import TaskHandle

if TYPE_CHECKING:
    from collections.abc import Callable

    from anyio import CancelScope
    from anyio.abc import TaskGroup

    from ._engine import Engine

_ASYNCIO_BACKEND = "anyio._backends._asyncio"
# The code of AnyIO's wrapper, which every task of a task group runs.
_RUN_CORO = getattr(getattr(TaskHandle, "_run_coro", None), "__code__", None)

# id(scope) -> the open set whose task group the scope is (removed by unguard;
# weakly, so a set abandoned without leaving its block is not kept alive).
_engines: WeakValueDictionary[int, Engine[Any]] = WeakValueDictionary()
_classes: dict[type[CancelScope], type[CancelScope]] = {}


def guard(tg: TaskGroup, engine: Engine[Any]) -> bool:
    """
    Make ``tg``'s scope hand a task cancelled before its first step to ``engine``.

    Also: a cancellation delivered to the scope (by its own ``cancel()`` or one
    of a scope around it, which AnyIO delivers down its child scopes at once)
    sets ``engine._cancel_seen``, so a task need not walk up the scopes before
    one has. Returns whether the scope is guarded (else every task walks).
    """
    scope = tg.cancel_scope
    base = type(scope)
    effectively = getattr(base, "_effectively_cancelled", None)
    deliver = getattr(base, "_deliver_cancellation", None)
    if (
        base.__module__ != _ASYNCIO_BACKEND
        or not isinstance(effectively, property)
        or not callable(deliver)
    ):
        return False  # Trio has no native cancellation of one task
    guarded = _classes.get(base)
    if guarded is None:
        guarded = _classes[base] = _guarded(base, effectively, cast("Callable[..., bool]", deliver))
    scope.__class__ = guarded
    _engines[id(scope)] = engine
    return True


def unguard(tg: TaskGroup) -> None:
    """The set is closed: its scope answers as AnyIO's again."""
    _engines.pop(id(tg.cancel_scope), None)


def _guarded(
    base: type[CancelScope], effectively: property, deliver: Callable[..., bool]
) -> type[CancelScope]:
    answer = cast("Callable[[CancelScope], bool]", effectively.fget)

    def _deliver_cancellation(self: CancelScope, *args: object) -> bool:
        engine = _engines.get(id(self))
        if engine is not None:
            engine._cancel_seen = True
        return deliver(self, *args)

    def _effectively_cancelled(self: CancelScope) -> bool:
        # Also asked as an aborted task's own scope exits: the frame's name first,
        # the cheapest test.
        caller = sys._getframe(1)
        if caller.f_code.co_name == "task_done":
            local = caller.f_locals
            if isinstance(local.get("exc"), CancelledError):
                engine = _engines.get(id(self))
                if engine is not None and engine._ended_unstarted(local.get("_task")):
                    return True  # so AnyIO's callback does not cancel the task group
        return answer(self)

    namespace = {
        "__slots__": (),
        "__module__": __name__,
        "_effectively_cancelled": property(_effectively_cancelled),
        "_deliver_cancellation": _deliver_cancellation,
    }
    return type(base.__name__, (base,), namespace)


def unstepped_tasks(tg: TaskGroup) -> tuple[set[int], list[object]] | None:
    """
    The task group's tasks yet to take their first step, and those that have ended.

    Returns the ids of the AnyIO TaskHandles of the first, and the asyncio tasks
    of the second (their done callbacks still to run). A task that is running
    is skipped at once: only one yet to step can hold a task of the set that
    never ran, and only its frame is read. ``None`` if a task does not run
    AnyIO's wrapper (a task factory that wraps coroutines): then nothing can
    be told for sure.
    """
    waiting: set[int] = set()
    ended: list[object] = []
    for task in getattr(tg, "_tasks", ()):
        coro = task.get_coro()
        if type(coro) is not CoroutineType or coro.cr_code is not _RUN_CORO:
            return None
        state = getcoroutinestate(cast("Any", coro))
        if state == CORO_CREATED:
            frame: Any = coro.cr_frame
            waiting.add(id(frame.f_locals.get("self")))
        elif state == CORO_CLOSED:
            ended.append(task)
    return waiting, ended


def ended_unstepped(task: TaskHandle[Any], waiting: set[int]) -> dict[str, Any] | None:
    """
    The arguments of ``task``'s wrapper if its asyncio task ended before its first step.

    Then the wrapper is closed (no "never awaited" warning), and AnyIO's TaskHandle
    reads cancelled and wakes its waiters. Its arguments are returned, so the
    caller can close what the wrapper would have awaited.
    """
    wrapper: Any = task._coro
    if getcoroutinestate(wrapper) != CORO_CREATED or id(task) in waiting:
        return None
    arguments = dict(wrapper.cr_frame.f_locals)
    wrapper.close()
    task._exception = CancelledError()
    task._finished_event.set()
    return arguments
