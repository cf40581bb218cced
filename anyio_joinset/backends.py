"""
The event loops this library is tested on, by name, ready for ``anyio.run``.

One list for the tests, the examples and the benchmarks (and for libraries built
on this one that want to test on the same loops)::

    from anyio_joinset.backends import BACKENDS, run

    run(main, backend="trio")  # or "asyncio", "asyncio+uvloop", "asyncio+eager"

``asyncio+eager`` is asyncio with :func:`asyncio.eager_task_factory` (Python 3.12
and later): a task runs up to its first suspension inside ``create_task``. It is
listed only where it exists; ``asyncio+uvloop`` only where uvloop is installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio

__all__ = ["BACKENDS", "run"]

T = TypeVar("T")


def _eager_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]  # pyright: ignore[reportAttributeAccessIssue,reportUnknownMemberType,reportUnknownArgumentType]
    return loop


def _backends() -> dict[str, tuple[str, dict[str, Any]]]:
    found: dict[str, tuple[str, dict[str, Any]]] = {"asyncio": ("asyncio", {})}
    # What is installed decides; a test run sees only one side of these.
    if (
        sys.platform != "win32" and importlib.util.find_spec("uvloop") is not None
    ):  # pragma: no branch
        found["asyncio+uvloop"] = ("asyncio", {"use_uvloop": True})
    if sys.version_info >= (3, 12):  # pragma: no branch
        found["asyncio+eager"] = ("asyncio", {"loop_factory": _eager_loop})
    if importlib.util.find_spec("trio") is not None:  # pragma: no branch
        found["trio"] = ("trio", {})
    return found


BACKENDS: Mapping[str, tuple[str, dict[str, Any]]] = _backends()
"""Name -> ``(backend, backend_options)`` for :func:`anyio.run`, for what is installed."""


def run(func: Callable[..., Awaitable[T]], *args: object, backend: str = "asyncio") -> T:
    """
    ``anyio.run(func, *args)`` on the event loop named ``backend`` (see ``BACKENDS``).

    Raises:
        ValueError: If ``backend`` is not one of ``BACKENDS`` on this machine.
    """
    found = BACKENDS.get(backend) if isinstance(backend, str) else None  # pyright: ignore[reportUnnecessaryIsInstance]
    if found is None:
        known = ", ".join(BACKENDS)
        msg = f"backend must be one of {known} on this machine, got {backend!r}."
        raise ValueError(msg)
    name, options = found
    return anyio.run(func, *args, backend=name, backend_options=options)
