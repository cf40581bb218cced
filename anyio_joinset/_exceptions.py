from __future__ import annotations

from typing import final


@final
class TaskCancelled(Exception):
    """
    The task was cancelled (aborted, or cancelled by an enclosing scope).

    Raised by :meth:`Outcome.result`, :meth:`Outcome.exception` and
    :meth:`JoinSet.join_all` (API.md S11) for a task that ended cancelled. It is
    an ordinary :class:`Exception`, not the backend's cancellation exception, so
    catching it never swallows a real cancellation.
    """
