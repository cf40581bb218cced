"""
Virtual time for the docs' code blocks: their sleeps end in the order of their lengths.

A block's sleeps stand for work of different lengths ("later inputs finish
first"), a few milliseconds apart. On real time that order is only likely: Trio
starts a batch of tasks in any order, and a busy machine can stall a task for
longer than the gaps. On virtual time the clock stands still while any task can
run and jumps to the next deadline once none can, so every task of a batch
starts at the same instant and the order is exact, on every run. Trio has such a
clock built in (``MockClock(autojump_threshold=0)``); an asyncio loop gets one
from a selector that moves the loop's clock forward instead of waiting. uvloop's
clock cannot be replaced: blocks that sleep do not run on it.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any

from trio.testing import MockClock

__all__ = ["VirtualTimeLoop", "eager_virtual_time_loop", "trio_clock"]


class _JumpingSelector(selectors.BaseSelector):
    """A selector that, with nothing ready and a timer due later, jumps to that timer."""

    def __init__(self, clock: list[float]) -> None:
        self._real = selectors.DefaultSelector()
        self._clock = clock

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        if timeout is None:  # no timer at all: wait for real I/O (a thread's wake-up)
            return self._real.select(None)
        self._clock[0] += timeout  # nothing can run before the next timer: jump to it
        return []

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Any:
        return self._real.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop on virtual time, starting at 0."""

    def __init__(self) -> None:
        self._virtual_now = [0.0]
        super().__init__(_JumpingSelector(self._virtual_now))

    def time(self) -> float:
        return self._virtual_now[0]


def eager_virtual_time_loop() -> asyncio.AbstractEventLoop:
    """VirtualTimeLoop with asyncio's eager task factory (the asyncio+eager backend)."""
    loop = VirtualTimeLoop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    return loop


def trio_clock() -> MockClock:
    """Trio's own virtual clock, jumping as soon as every task is blocked."""
    return MockClock(autojump_threshold=0)
