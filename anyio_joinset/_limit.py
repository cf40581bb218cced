# Limit (API.md S14)
# ------------------
# Under ``limit=n``, a spawn beyond n running tasks keeps its coroutine and a
# copy of its ``contextvars`` context on its handle (kind QUEUED, the pair in
# ``_payload``), in ``_queue`` (spawn order). A finishing task starts the next
# ones while there is room and the set is open. Aborting a waiting task is
# O(1): it ends at once and stays in the deque as a finished handle that
# ``freed`` skips (and that a compaction drops once they outnumber the waiting
# ones), so aborting n waiting tasks one by one costs O(n) in all (a
# ``deque.remove`` each would be O(n^2)).
# ``wait_for_capacity`` waits on an Event that is set when running + waiting
# drops below n; with ``rate`` it checks the slot again after the rate turn
# (the engine's ``_wait_for_capacity``), since another producer may have taken
# it meanwhile.
# pyright: reportPrivateUsage=false
from __future__ import annotations

import time
from collections import deque
from collections.abc import Coroutine
from contextvars import Context
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar, cast, final

from anyio import Event

from ._outcome import QUEUED, UNFINISHED
from ._states import SHUTTING

if TYPE_CHECKING:
    from ._engine import Engine
    from ._handle import JoinHandle

T = TypeVar("T")
_Queued: TypeAlias = tuple[Coroutine[Any, Any, T], Context]  # a waiting task's _payload


@final
class Slots(Generic[T]):
    """The tasks waiting for a slot under ``limit``, and the producers waiting for room."""

    __slots__ = ("_capacity", "_queue", "limit", "waiting")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.waiting = 0  # handles in _queue that are not finished
        self._queue: deque[JoinHandle[T]] = deque()
        self._capacity: Event | None = None

    def has_room(self, running: int) -> bool:
        """Whether a new task may start now (nobody ahead of it waits)."""
        return running < self.limit and not self.waiting

    def has_room_for_one(self, running: int) -> bool:
        """Whether running + waiting is below the limit (``wait_for_capacity``)."""
        return running + self.waiting < self.limit

    def queue(self, handle: JoinHandle[T], coro: Coroutine[Any, Any, T], context: Context) -> None:
        handle._kind = QUEUED
        handle._payload = (coro, context)
        self._queue.append(handle)
        self.waiting += 1

    def freed(self, engine: Engine[T]) -> None:
        """A running task ended: start waiting ones while there is room (S14)."""
        if self.waiting:
            # Only while the set is open or shutting down: leaving the block ends
            # every waiting task first (abort_all), so none is left to start.
            queue = self._queue
            while self.waiting and engine._running < self.limit:
                handle = queue.popleft()
                if handle._kind != QUEUED:
                    continue  # aborted while it waited
                self.waiting -= 1
                coro, context = _unqueue(handle)
                handle._payload = time.monotonic()  # its start time, for a snapshot
                engine._start(handle, coro, context)
        if self._capacity is not None:
            self.notify(engine._running)

    def notify(self, running: int) -> None:
        if self._capacity is not None and self.has_room_for_one(running):
            self._capacity.set()
            self._capacity = None

    def abort(self, engine: Engine[T], handle: JoinHandle[T]) -> None:
        """End one waiting task without running it, in O(1) (S7)."""
        coro = _unqueue(handle)[0]
        self.waiting -= 1
        queue = self._queue
        if not self.waiting:
            queue.clear()  # only finished handles are left in it
        elif len(queue) > 2 * self.waiting + 64:
            # Mostly aborted handles: drop them, so memory follows the waiting
            # tasks. O(len) once per len/2 aborts: still O(1) per abort.
            self._queue = deque(h for h in queue if h._kind == QUEUED)
        engine._end_unstarted(handle, coro)
        self.notify(engine._running)

    def abort_all(self, engine: Engine[T]) -> None:
        """End every waiting task, in spawn order, without running any (S8)."""
        queue, self._queue = self._queue, deque()
        self.waiting = 0
        for handle in queue:
            if handle._kind == QUEUED:
                engine._end_unstarted(handle, _unqueue(handle)[0])
        self.notify(engine._running)

    def clear(self) -> None:
        self._queue.clear()
        self.waiting = 0
        self.notify(0)  # no producer keeps waiting on a closed set

    def has_capacity(self, engine: Engine[T]) -> bool:
        """Whether ``wait_for_capacity`` may return: room for one, or the set closing."""
        return engine._state > SHUTTING or self.has_room_for_one(engine._running)

    async def wait_room(self, engine: Engine[T]) -> None:
        """Wait until running + waiting is below the limit, or the set is closing."""
        while not self.has_capacity(engine):
            if self._capacity is None:
                self._capacity = Event()
            await self._capacity.wait()


def _unqueue(handle: JoinHandle[T]) -> _Queued[T]:
    """Take a waiting task's coroutine and context off its handle: it no longer waits."""
    queued = cast("_Queued[T]", handle._payload)
    handle._kind = UNFINISHED
    handle._payload = None
    return queued
