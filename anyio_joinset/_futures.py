# How an external future becomes a task
# -------------------------------------
# A concurrent.futures.Future completes in whatever thread its executor uses.
# The task that waits for it sleeps on an anyio.Event; the future's done
# callback, which runs in that completing thread (or in ours, if the future is
# already done), sets the event through the event loop's own thread-safe,
# non-blocking "call soon" (asyncio's call_soon_threadsafe, Trio's TrioToken
# run_sync_soon). So no thread is tied up per future, the completing thread never
# waits for the loop, and a future completed on the loop thread cannot deadlock.
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar, cast

import anyio
from anyio.lowlevel import checkpoint, current_token

T = TypeVar("T")


def _call_soon_threadsafe() -> Callable[[Callable[[], object]], object]:
    """The running event loop's thread-safe, non-blocking way to schedule a call."""
    native: Any = current_token().native_token
    call = getattr(native, "call_soon_threadsafe", None)  # an asyncio event loop
    if call is None:
        call = native.run_sync_soon  # a trio.lowlevel.TrioToken
    return cast("Callable[[Callable[[], object]], object]", call)


async def wait_future(future: Future[T]) -> T:
    """
    Wait for ``future`` without a thread; on cancellation, ``future.cancel()``.

    Returns its result or raises its exception (``concurrent.futures.CancelledError``
    if it was cancelled by someone else).
    """
    if not future.done():
        done = anyio.Event()
        call_soon = _call_soon_threadsafe()
        future.add_done_callback(lambda _: call_soon(done.set))
        try:
            await done.wait()
        except BaseException:
            future.cancel()  # a pending future never runs; a running one is left to finish
            raise
    else:
        await checkpoint()
    return future.result()


async def submit_and_wait(executor: Executor, func: Callable[..., T], args: tuple[Any, ...]) -> T:
    """Submit ``func(*args)`` only now (when the task runs), then wait for it."""
    return await wait_future(executor.submit(func, *args))
