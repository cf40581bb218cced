# Work off the event loop (API.md S17)
# ------------------------------------
# Threads, processes and concurrent.futures futures become ordinary tasks of a
# set: each face's spawn_thread/spawn_process/spawn_future/spawn_submit checks
# its arguments here, at the call, then spawns one of the async functions below.
#
# A concurrent.futures.Future completes in whatever thread its executor uses.
# The task that waits for it sleeps on an anyio.Event; the future's done
# callback, which runs in that completing thread (or in ours, if the future is
# already done), sets the event through the event loop's own thread-safe,
# non-blocking "call soon" (asyncio's call_soon_threadsafe, Trio's TrioToken
# run_sync_soon). So no thread is tied up per future, the completing thread never
# waits for the loop, and a future completed on the loop thread cannot deadlock.
# Once the task stops waiting, the callback does nothing: a future that finishes
# after the event loop has ended logs nothing.
#
# An adopted future is wrapped in an awaitable whose ``close()`` cancels it: the
# engine closes the coroutine of a task aborted before it starts, so such a
# future never runs, waiting for a slot or not.
from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Generator
from concurrent.futures import Executor, Future
from contextlib import suppress
from typing import Any, Generic, TypeVar, cast

import anyio
from anyio import CapacityLimiter, to_process, to_thread
from anyio.lowlevel import checkpoint, current_token

from ._calling import (
    check_flag,
    check_name,
    close_coroutines,
    describe,
    returned_coroutine,
    spawn_hint,
    sync_task_name,
)

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
        waiting = [True]

        def on_done(_: object) -> None:
            if waiting[0]:
                # The event loop may have ended meanwhile: then there is nobody to tell (S17).
                with suppress(Exception):
                    call_soon(done.set)

        future.add_done_callback(on_done)
        try:
            await done.wait()
        except BaseException:
            future.cancel()  # a pending future never runs; a running one is left to finish
            raise
        finally:
            waiting[0] = False
    else:
        await checkpoint()
    return future.result()


class AdoptedFuture(Generic[T]):
    """``wait_future(future)`` as an awaitable whose ``close()`` cancels the future."""

    __slots__ = ("_future",)

    def __init__(self, future: Future[T]) -> None:
        self._future = future

    def __await__(self) -> Generator[Any, Any, T]:
        return wait_future(self._future).__await__()

    def close(self) -> None:
        self._future.cancel()


def _sync_result(result: T, func: object, where: str) -> T:
    """``result``, unless a sync function returned a coroutine: then fail the task (S3)."""
    error = returned_coroutine(result, func, where)
    if error is not None:
        raise error
    return result


async def submit_and_wait(
    executor: Executor, func: Callable[..., T], args: tuple[Any, ...], where: str
) -> T:
    """Submit ``func(*args)`` only now (when the task runs), then wait for it."""
    return _sync_result(await wait_future(executor.submit(func, *args)), func, where)


async def run_in_thread(
    func: Callable[..., T],
    args: tuple[Any, ...],
    abandon_on_cancel: bool,
    limiter: CapacityLimiter | None,
    where: str,
) -> T:
    # Checked in the worker thread: Trio would refuse a coroutine with its own message.
    return await to_thread.run_sync(
        _checked_call, func, args, where, abandon_on_cancel=abandon_on_cancel, limiter=limiter
    )


def _checked_call(func: Callable[..., T], args: tuple[Any, ...], where: str) -> T:
    return _sync_result(func(*args), func, where)


async def run_in_process(func: Callable[..., T], args: tuple[Any, ...], cancellable: bool) -> T:
    return await to_process.run_sync(func, *args, cancellable=cancellable)


def thread_call(  # noqa: PLR0913, PLR0917 - spawn_thread's own arguments
    func: object,
    args: tuple[Any, ...],
    name: str | None,
    abandon: object,
    limiter: object,
    where: str,
) -> tuple[Coroutine[Any, Any, Any], str]:
    """Check ``spawn_thread``'s arguments; return the task's coroutine and name."""
    name = sync_task_name(func, name, where)
    check_flag(abandon, "abandon_on_cancel", where)
    if limiter is not None and not isinstance(limiter, CapacityLimiter):
        msg = (
            f"{where} limiter must be an anyio.CapacityLimiter or None, "
            f"got {type(limiter).__name__}."
        )
        raise TypeError(msg)
    return run_in_thread(
        cast("Callable[..., Any]", func), args, cast("bool", abandon), limiter, where
    ), name


def process_call(
    func: object, args: tuple[Any, ...], name: str | None, cancellable: object, where: str
) -> tuple[Coroutine[Any, Any, Any], str]:
    """Check ``spawn_process``'s arguments; return the task's coroutine and name."""
    name = sync_task_name(func, name, where)
    check_flag(cancellable, "cancellable", where)
    return run_in_process(cast("Callable[..., Any]", func), args, cast("bool", cancellable)), name


def future_call(future: object, name: str | None, where: str) -> tuple[AdoptedFuture[Any], str]:
    """Check ``spawn_future``'s argument; return the task's awaitable and name."""
    if not isinstance(future, Future):
        kind = type(future).__name__
        if inspect.iscoroutine(future):
            future.close()  # passed by mistake: no "never awaited" warning
            shown = describe(future)
            msg = (
                f"{where} expects a concurrent.futures.Future, but got a coroutine object "
                f"({shown}); pass the async function to {spawn_hint(where, shown)} instead."
            )
        elif hasattr(future, "get_loop"):
            msg = (
                f"{where} expects a concurrent.futures.Future, but got an asyncio {kind}; "
                f"await it in an async function and pass that to spawn()."
            )
        else:
            msg = f"{where} expects a concurrent.futures.Future, got {kind}."
        raise TypeError(msg)
    adopted_future: Future[Any] = future  # pyright: ignore[reportUnknownVariableType]
    adopted: AdoptedFuture[Any] = AdoptedFuture(adopted_future)
    label = check_name(name, where)
    return adopted, type(adopted_future).__qualname__ if label is None else label


def submit_call(
    executor: object, func: object, args: tuple[Any, ...], name: str | None, where: str
) -> tuple[Coroutine[Any, Any, Any], str]:
    """Check ``spawn_submit``'s arguments; return the task's coroutine and name."""
    if not isinstance(executor, Executor):
        close_coroutines(executor, func)
        msg = (
            f"{where} expects a concurrent.futures.Executor as its first argument "
            f"(e.g. a ThreadPoolExecutor or a Dask client.get_executor()), "
            f"got {describe(executor)} ({type(executor).__name__})."
        )
        raise TypeError(msg)
    name = sync_task_name(func, name, where)
    return submit_and_wait(executor, cast("Callable[..., Any]", func), args, where), name
