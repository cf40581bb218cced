from __future__ import annotations

import math
from typing import final

import anyio


@final
class StartRate:
    """
    Spread task starts evenly: at most ``count`` starts per ``per`` seconds.

    The smooth form of a GCRA with no burst: start k may happen no earlier than
    ``per / count`` seconds after start k-1, so any window of ``per`` seconds
    holds at most ``count`` starts, however long the set keeps growing. Each
    start reserves its turn before it sleeps, so turns go in arrival order; a
    task aborted while it waits leaves its turn unused (the rate is never
    exceeded, only under-used).
    """

    __slots__ = ("_interval", "_next")

    def __init__(self, count: int, per: float) -> None:
        self._interval = per / count
        self._next = -math.inf

    async def wait_turn(self) -> None:
        """Wait for this start's turn; returns at once (no checkpoint) when it is due."""
        now = anyio.current_time()
        start_at = max(now, self._next)
        self._next = start_at + self._interval
        if start_at > now:
            await anyio.sleep(start_at - now)


def parse_rate(rate: object) -> StartRate | None:
    """Check ``JoinSet(rate=...)``: None or a (count, per_seconds) pair."""
    if rate is None:
        return None
    items: tuple[object, ...] = rate if isinstance(rate, tuple) else ()  # pyright: ignore[reportUnknownVariableType]
    count, per = items if len(items) == 2 else (None, None)
    if (
        not isinstance(count, int)
        or isinstance(count, bool)
        or not isinstance(per, (int, float))
        or isinstance(per, bool)
    ):
        msg = f"JoinSet rate must be None or a (count, per_seconds) tuple, got {rate!r}."
        raise TypeError(msg)
    if count < 1 or not per > 0 or math.isinf(per):
        msg = (
            f"JoinSet rate must allow at least 1 start per a finite, positive number of "
            f"seconds, got {rate!r}."
        )
        raise ValueError(msg)
    return StartRate(count, float(per))
