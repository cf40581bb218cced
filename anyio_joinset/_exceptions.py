from __future__ import annotations

from typing import final

import anyio


@final
class TaskCancelled(anyio.TaskCancelled):
    """
    The task was cancelled (aborted, or cancelled by an enclosing scope).

    Raised by `Outcome.result`, `Outcome.exception` and `JoinSet.join_all` (API.md
    S11) for a task that ended cancelled. A subclass of AnyIO's own
    ``anyio.TaskCancelled`` (itself an ``anyio.TaskFailed``, an `Exception`), so
    ``except anyio.TaskCancelled`` catches both. It is not the backend's
    cancellation exception, so catching it never swallows a real cancellation.
    """
