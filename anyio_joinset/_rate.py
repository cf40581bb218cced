# Rate (API.md S18)
# -----------------
# Starts are evenly spaced: start k may happen no earlier than ``interval``
# after start k-1, so any window of ``per_seconds`` holds at most ``count``
# starts, and there is no burst after an idle period. Tasks wait for their turn
# in arrival order, in a FIFO of their own wake-ups; only the head of the FIFO
# sleeps, until ``_next``. No start time is reserved ahead: a task aborted while
# it waits just leaves the FIFO (O(1)), so aborted tasks give their turn back
# and the next task after a shutdown waits at most one interval after the last
# real start (that one is kept: a shutdown never allows a burst, S9).
#
# ``wait_for_capacity`` promises that a task spawned when it returns starts at
# once. A task spawned a moment ago may not have reached its wrapper yet (Trio
# runs a batch of ready tasks in any order), so it is not in the FIFO: ``_owed``
# counts those, from the spawn (``expect``) until the wrapper asks for its turn
# or ends without one (``skip``), and capacity waits for them too.
from __future__ import annotations

import math
from typing import final

import anyio
from anyio import Event

from ._calling import real_number

_GONE = object()


@final
class StartRate:
    """Spread task starts evenly: one start per ``interval`` seconds at most."""

    __slots__ = ("_idle", "_interval", "_next", "_owed", "_queue")

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next = -math.inf  # the earliest time of the next start
        self._queue: dict[Event, None] = {}  # tasks waiting for their turn, FIFO
        self._idle: Event | None = None  # set when the FIFO empties and nothing is owed
        self._owed = 0  # tasks started whose wrapper has not asked for its turn yet

    def _take_turn(self, now: float) -> None:
        # From the actual start, not from the planned one: a start that is a
        # little late never lets the next one come sooner than ``interval``.
        self._next = now + self._interval

    def delay(self) -> float:
        """Seconds until the next turn is due (0 if it is)."""
        return max(0.0, self._next - anyio.current_time())

    def expect(self) -> None:
        """A task was started: its wrapper will ask for a turn (or `skip` it)."""
        self._owed += 1

    def skip(self) -> None:
        """A started task ends without asking for its turn (aborted before it ran)."""
        self._owed -= 1
        self._settle()

    def _settle(self) -> None:
        if not self._owed and not self._queue and self._idle is not None:
            self._idle.set()
            self._idle = None

    def has_capacity(self) -> bool:
        """Whether a task spawned now would start at once: nobody ahead, turn due."""
        return not self._owed and not self._queue and self.delay() <= 0

    async def wait_turn(self) -> None:
        """Wait for this start's turn; returns at once (no checkpoint) when it is due."""
        self._owed -= 1
        now = anyio.current_time()
        queue = self._queue
        if not queue and now >= self._next:
            self._take_turn(now)
            self._settle()
            return
        me = Event()
        queue[me] = None
        if len(queue) == 1:
            me.set()  # first in line: only the clock to wait for
        try:
            await me.wait()
            while (delay := self._next - anyio.current_time()) > 0:  # noqa: ASYNC110 - a clock, not a flag
                await anyio.sleep(delay)
            self._take_turn(anyio.current_time())
        finally:
            self._leave(me)

    def _leave(self, me: Event) -> None:
        queue = self._queue
        was_head = next(iter(queue)) is me
        del queue[me]
        if queue:
            if was_head:
                next(iter(queue)).set()  # the next in line now waits for the clock
        else:
            self._settle()

    async def wait_capacity(self) -> None:
        """Wait until nobody waits for a turn or is about to, and the next is due (S18)."""
        while True:
            if self._queue or self._owed:
                if self._idle is None:
                    self._idle = Event()
                await self._idle.wait()
            elif (delay := self.delay()) > 0:
                await anyio.sleep(delay)
            else:
                return


def parse_rate(rate: object, owner: str) -> StartRate | None:
    """
    Check ``rate=``: ``None``, starts per second, or a ``(count, per_seconds)`` pair.

    ``owner`` names the class in messages ("JoinSet").
    """
    if rate is None:
        return None
    per_second = real_number(rate)
    if per_second is not None:
        if math.isnan(per_second) or per_second <= 0:
            msg = (
                f"{owner} rate must be a positive number of starts per second (or "
                f"math.inf or None for no limit), got {rate!r}."
            )
            raise ValueError(msg)
        return None if math.isinf(per_second) else StartRate(1.0 / per_second)
    items: tuple[object, ...] = rate if isinstance(rate, tuple) else ()  # pyright: ignore[reportUnknownVariableType]
    count, per = items if len(items) == 2 else (None, None)
    per_seconds = real_number(per)
    if not isinstance(count, int) or isinstance(count, bool) or per_seconds is None:
        msg = (
            f"{owner} rate must be None, starts per second as a number, or a "
            f"(count, per_seconds) tuple, got {rate!r}."
        )
        raise TypeError(msg)
    if count < 1 or not per_seconds > 0 or math.isinf(per_seconds):
        msg = (
            f"{owner} rate must allow at least 1 start per a finite, positive number of "
            f"seconds, got {rate!r}."
        )
        raise ValueError(msg)
    return StartRate(per_seconds / count)
