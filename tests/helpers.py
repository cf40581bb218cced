"""Small task bodies shared by the tests; each is ordered by events, never sleeps."""

from __future__ import annotations

import sys

import anyio

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup, ExceptionGroup
else:
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup

__all__ = ["BaseExceptionGroup", "ExceptionGroup", "Gate", "fail_with", "forever", "value_of"]


class Gate:
    """A task body that records that it started, then waits to be released."""

    def __init__(self) -> None:
        self.started = False
        self.finished = False
        self.cleaned_up = False
        self.release = anyio.Event()

    async def wait(self, value: object = None) -> object:
        self.started = True
        try:
            await self.release.wait()
        finally:
            self.cleaned_up = True
        self.finished = True
        return value


async def value_of(value: object) -> object:
    """Return ``value`` after one checkpoint."""
    await anyio.lowlevel.checkpoint()
    return value


async def fail_with(exc: BaseException) -> None:
    """Raise ``exc`` after one checkpoint."""
    await anyio.lowlevel.checkpoint()
    raise exc


async def forever() -> None:
    """Wait until cancelled."""
    await anyio.sleep_forever()
