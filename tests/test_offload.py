"""Work outside the event loop in the same set: threads, processes, external futures."""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import anyio
import pytest

from anyio_joinset import JoinMap, JoinSet
from offload_work import fail, pid_and_square, sleep_then, square


async def test_spawn_thread_runs_in_a_worker_thread() -> None:
    """spawn_thread runs the sync function in a thread; its outcome comes through the set."""
    main_thread = threading.get_ident()
    async with JoinSet[object]() as js:
        handle = js.spawn_thread(threading.get_ident)
        js.spawn_thread(fail, "boom", name="failing")
        outcomes = {o.name: o async for o in js}
    assert handle.name == "get_ident"
    assert outcomes["get_ident"].result() != main_thread
    assert isinstance(outcomes["failing"].exception(), ValueError)


async def test_spawn_thread_aborted_before_start_never_runs() -> None:
    """A thread task aborted before it starts never calls the function."""
    calls: list[int] = []
    async with JoinSet[None]() as js:
        js.spawn_thread(calls.append, 1).abort()
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.cancelled()
    assert calls == []


@pytest.mark.parametrize("abandon", [False, True])
async def test_spawn_thread_abort_while_running(abandon: bool) -> None:
    """Aborting a running thread: by default the real outcome; abandoned: cancelled."""
    started = threading.Event()
    release = threading.Event()

    def blocking() -> str:
        started.set()
        release.wait(10)
        return "finished"

    async with JoinSet[str]() as js:
        handle = js.spawn_thread(blocking, abandon_on_cancel=abandon)
        await anyio.to_thread.run_sync(started.wait, 10)
        handle.abort()
        if abandon:
            outcome = await js.join_next()
            release.set()
        else:
            release.set()
            outcome = await js.join_next()
    assert outcome is not None
    assert outcome.cancelled() is abandon
    if not abandon:
        assert outcome.result() == "finished"


async def test_spawn_thread_respects_limit_and_limiter() -> None:
    """Thread tasks count against limit, and a CapacityLimiter can be given."""
    limiter = anyio.CapacityLimiter(1)
    async with JoinSet[int](limit=2) as js:
        for i in range(5):
            js.spawn_thread(square, i, limiter=limiter)
        assert js.stats().waiting == 3
        values = sorted([o.result() async for o in js])
    assert values == [0, 1, 4, 9, 16]


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_spawn_process_runs_in_a_worker_process() -> None:
    """spawn_process runs a picklable function in another process."""
    async with JoinSet[tuple[int, int]]() as js:
        js.spawn_process(pid_and_square, 7)
        outcome = await js.join_next()
    assert outcome is not None
    pid, value = outcome.result()
    assert value == 49
    assert pid != os.getpid()


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_spawn_process_failure_is_a_value() -> None:
    """A failing process task comes back as its exception."""
    async with JoinSet[None]() as js:
        js.spawn_process(fail, "in a process")
        outcome = await js.join_next()
    assert outcome is not None
    assert isinstance(outcome.exception(), ValueError)


async def test_spawn_future_from_thread_pool() -> None:
    """spawn_future adopts a thread pool's futures; results and errors come through."""
    with ThreadPoolExecutor(2) as pool:
        async with JoinSet[int]() as js:
            js.spawn_future(pool.submit(square, 3), name="three")
            js.spawn_future(pool.submit(fail, "pool"))
            outcomes = [o async for o in js]
    values = [o.result() for o in outcomes if o.exception() is None]
    assert values == [9]
    assert sum(isinstance(o.exception(), ValueError) for o in outcomes) == 1


async def test_spawn_future_already_done_or_completed_on_loop_thread() -> None:
    """A future already done, or completed on the event loop's thread, cannot deadlock."""
    done: Future[int] = Future()
    done.set_result(1)
    later: Future[int] = Future()
    failed: Future[int] = Future()
    failed.set_exception(KeyError("x"))
    async with JoinSet[int]() as js:
        js.spawn_future(done)
        js.spawn_future(failed)
        js.spawn_future(later)
        await anyio.wait_all_tasks_blocked()
        later.set_result(2)  # on the loop thread, from inside a task
        outcomes = [o async for o in js]
    assert sorted(o.result() for o in outcomes if o.exception() is None) == [1, 2]
    assert sum(isinstance(o.exception(), KeyError) for o in outcomes) == 1


async def test_aborting_a_future_task_cancels_the_pending_future() -> None:
    """Aborting a task that waits on a pending future calls future.cancel()."""
    pending: Future[int] = Future()
    async with JoinSet[int]() as js:
        handle = js.spawn_future(pending)
        await anyio.wait_all_tasks_blocked()
        handle.abort()
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.cancelled()
    assert pending.cancelled()


async def test_spawn_submit_submits_only_when_a_slot_is_free() -> None:
    """spawn_submit submits when the task starts: under limit, and never if aborted first."""
    submitted: list[int] = []

    class CountingPool(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
            submitted.append(args[-1])
            return super().submit(fn, *args, **kwargs)

    with CountingPool(4) as pool:
        async with JoinSet[int](limit=1) as js:
            js.spawn_submit(pool, sleep_then, 0.01, 1)
            aborted = js.spawn_submit(pool, sleep_then, 0.01, 2)
            js.spawn_submit(pool, sleep_then, 0.01, 3)
            assert submitted == []
            aborted.abort()
            values = [o.result() async for o in js if not o.cancelled()]
    assert values == [1, 3]
    assert submitted == [1, 3]


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_spawn_future_from_process_pool() -> None:
    """Futures of a ProcessPoolExecutor work the same way."""
    # "spawn": forking a process that runs threads is deprecated on 3.12+.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        async with JoinSet[int]() as js:
            for i in range(3):
                js.spawn_submit(pool, square, i)
            values = sorted([o.result() async for o in js])
    assert values == [0, 1, 4]


class Squarer:
    """A callable object: spawn_thread names its task Squarer.__call__, never by its repr."""

    def __call__(self, x: int) -> int:
        return x * x


async def async_square(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x * x


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
async def test_off_loop_spawns_name_a_partial_after_its_function(face: str) -> None:
    """S17: a partial's task is named after its function, as spawn() names it; no address."""
    key: tuple[str, ...] = () if face == "JoinSet" else ("k",)
    with ThreadPoolExecutor(1) as pool:
        async with JoinSet[int]() if face == "JoinSet" else JoinMap[str, int]() as js:
            s: Any = js
            handles = [
                s.spawn(*key, functools.partial(async_square, 2)),
                s.spawn_thread(*key, functools.partial(square, 2)),
                s.spawn_thread(*key, functools.partial(functools.partial(square), 2)),
                s.spawn_submit(*key, pool, functools.partial(square, 2)),
                s.spawn_thread(*key, Squarer(), 2),
                s.spawn_thread(*key, functools.partial(Squarer(), 2)),
                s.spawn_thread(*key, functools.partial(square, 2), name="given"),
            ]
            assert [h.name for h in handles] == [
                "async_square",
                "square",
                "square",
                "square",
                "Squarer.__call__",
                "Squarer.__call__",
                "given",
            ]
            await s.shutdown()


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_spawn_process_names_a_partial_after_its_function() -> None:
    """S17: spawn_process names a partial's task after its function too."""
    async with JoinSet[int]() as js:
        handle = js.spawn_process(functools.partial(square, 3))
        assert handle.name == "square"
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.result() == 9
