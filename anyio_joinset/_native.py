"""
asyncio: a task natively cancelled before its first step (S7).

AnyIO runs every task inside a wrapper coroutine of its own
(``TaskHandle._run_coro``), which awaits the set's wrapper (``Engine._run``).
An asyncio ``Task.cancel()`` that lands before the task's first step is thrown
into AnyIO's wrapper before it has awaited anything, so the set's wrapper never
runs: the task would get no outcome, its coroutines would be dropped unawaited,
and AnyIO's task group, seeing a child end with ``CancelledError``, would cancel
itself and with it every other task and the body of the ``async with`` block.

``guard()`` gives the set's task group scope a subclass (no new slots, so
``__class__`` can be assigned) whose ``cancel()``, when AnyIO's task-done
callback calls it for a child that ended cancelled, lets the set end that task
as cancelled instead (``Engine._ended_unstarted``), as it ends a natively
cancelled task that had started, and leaves the task group alone. Nothing is added per task: the cost is one
class assignment per set, and the check runs only when the scope is cancelled.
Where AnyIO's internals differ from what this reads, ``cancel()`` does what
AnyIO's does.
"""

# pyright: reportPrivateUsage=false
from __future__ import annotations

import sys
from asyncio import CancelledError
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import FrameType

    from anyio import CancelScope
    from anyio.abc import TaskGroup

    from ._engine import Engine

_ASYNCIO_BACKEND = "anyio._backends._asyncio"

# id(scope) -> the open set whose task group the scope is (removed by unguard).
_engines: dict[int, Engine[Any]] = {}
_classes: dict[type[CancelScope], type[CancelScope]] = {}


def guard(tg: TaskGroup, engine: Engine[Any]) -> None:
    """Make ``tg``'s scope hand a task cancelled before its first step to ``engine``."""
    scope = tg.cancel_scope
    base = type(scope)
    if base.__module__ != _ASYNCIO_BACKEND or not hasattr(tg, "_tasks"):
        return  # Trio has no native cancellation of one task
    guarded = _classes.get(base)
    if guarded is None:
        guarded = _classes[base] = _guarded(base)
    scope.__class__ = guarded
    _engines[id(scope)] = engine


def unguard(tg: TaskGroup) -> None:
    """The set is closed: its scope's ``cancel()`` is AnyIO's again."""
    _engines.pop(id(tg.cancel_scope), None)


def _guarded(base: type[CancelScope]) -> type[CancelScope]:
    def cancel(self: CancelScope, reason: str | None = None) -> None:
        engine = _engines.get(id(self))
        if (
            engine is not None
            and not self.cancel_called
            and _a_child_ended_cancelled(sys._getframe(1))
        ):
            # Every task of the set runs _run, which lets a cancellation out only
            # when a scope around the set is cancelled (then AnyIO does not call
            # this). So the child never ran _run: it, and any other that ended so
            # in the same batch of callbacks, ends as cancelled in the set.
            engine._ended_unstarted()
            return
        base.cancel(self, reason)

    return type(base.__name__, (base,), {"__slots__": (), "cancel": cancel, "__module__": __name__})


def _a_child_ended_cancelled(caller: FrameType) -> bool:
    """Whether ``caller`` is AnyIO's task-done callback, for a child that ended cancelled."""
    return caller.f_code.co_name == "task_done" and isinstance(
        caller.f_locals.get("exc"), CancelledError
    )
