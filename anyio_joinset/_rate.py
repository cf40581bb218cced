# Rate (API.md S18)
# -----------------
# Starts are evenly spaced: start k may happen no earlier than ``interval``
# after start k-1, so any window of ``per_seconds`` holds at most ``count``
# starts, and there is no burst after an idle period. Tasks take their turns in
# the order they were started (spawn order, or the order their slots came under
# ``limit``): a task joins the line when it is started (``expect``), not when
# the event loop first runs it, since Trio runs a batch of ready tasks in any
# order. Only the head of the line waits for the clock; the others wait for a
# wake-up of their own. No start time is reserved ahead: a task aborted while it
# waits just leaves the line (O(1)), so aborted tasks give their turn back and
# the next task after a shutdown waits at most one interval after the last real
# start (that one is kept: a shutdown never allows a burst, S9).
#
# Every task in the line leaves it exactly once: its wrapper takes its turn
# (``wait_turn``), or it ends without one (``skip``: aborted before it ran, or
# refused by the backend). ``wait_for_capacity`` promises that a task spawned
# when it returns starts at once, so it waits until the line is empty.
from __future__ import annotations

import math
from typing import final

import anyio
from anyio import Event

from ._calling import real_number


@final
class StartRate:
    """Spread task starts evenly: one start per ``interval`` seconds at most."""

    __slots__ = ("_idle", "_interval", "_line", "_next")

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next = -math.inf  # the earliest time of the next start
        # The tasks started and not through their turn yet, in order (a ticket,
        # the task's handle, each): their wake-up once they wait for it.
        self._line: dict[object, Event | None] = {}
        self._idle: Event | None = None  # set when the line empties

    def delay(self) -> float:
        """Seconds until the next turn is due (0 if it is)."""
        return max(0.0, self._next - anyio.current_time())

    def expect(self, ticket: object) -> None:
        """A task was started: it joins the line (it will `wait_turn` or `skip`)."""
        self._line[ticket] = None

    def skip(self, ticket: object) -> None:
        """A started task ends without running (aborted before it ran): it leaves."""
        if ticket in self._line:  # else aborted in the very step its turn came
            self._leave(ticket)

    def waiting(self, ticket: object) -> bool:
        """Whether this task is started and has not had its turn yet (S23)."""
        return ticket in self._line

    def has_capacity(self) -> bool:
        """Whether a task spawned now would start at once: nobody in line, turn due."""
        return not self._line and self.delay() <= 0

    async def wait_turn(self, ticket: object) -> None:
        """Wait for this task's turn; returns at once (no checkpoint) when it is due."""
        line = self._line
        head = next(iter(line)) is ticket
        now = anyio.current_time()
        if head and now >= self._next:
            self._take_turn(now, ticket)
            return
        line[ticket] = me = Event()
        if head:
            me.set()  # first in line: only the clock to wait for
        try:
            await me.wait()
            while (delay := self._next - anyio.current_time()) > 0:  # noqa: ASYNC110 - a clock, not a flag
                await anyio.sleep(delay)
            self._take_turn(anyio.current_time(), ticket)
        except BaseException:
            self._leave(ticket)
            raise

    def _take_turn(self, now: float, ticket: object) -> None:
        # From the actual start, not from the planned one: a start that is a
        # little late never lets the next one come sooner than ``interval``.
        self._next = now + self._interval
        self._leave(ticket)

    def _leave(self, ticket: object) -> None:
        line = self._line
        was_head = next(iter(line)) is ticket
        del line[ticket]
        if not line:
            if self._idle is not None:
                self._idle.set()
                self._idle = None
        elif was_head:
            event = next(iter(line.values()))
            if event is not None:
                event.set()  # the next in line waits for the clock now
            # else its task has not asked yet: it finds itself at the head

    async def wait_capacity(self) -> None:
        """Wait until nobody is in line and the next turn is due (S18)."""
        while True:
            if self._line:
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
