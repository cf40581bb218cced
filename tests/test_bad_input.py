"""The rows of docs/bad-input.md that no other test asserts, each message exactly (S3)."""

from __future__ import annotations

import asyncio
import re
import sys
from typing import Any

import anyio
import pytest

from anyio_joinset import JoinMap, JoinSet
from anyio_joinset.backends import BACKENDS, run

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup


async def value_of(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x


def blocking(x: int) -> int:
    return x


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


async def test_leaving_from_another_task_raises() -> None:
    """S1: leaving the block from another task is a RuntimeError naming the rule."""
    js = JoinSet[int]()
    await js.__aenter__()
    message = (
        "This JoinSet must be left by the task that entered it (S1): "
        "leave its async with block in that task."
    )

    async def leave() -> None:
        with pytest.raises(RuntimeError, match=exactly(message)):
            await js.__aexit__(None, None, None)

    async with anyio.create_task_group() as tg:
        tg.start_soon(leave)
    await js.__aexit__(None, None, None)


@pytest.mark.parametrize(("func", "kind"), [(len, "a builtin function"), (dict, "a class")])
async def test_spawn_of_a_builtin_or_a_class_raises(func: Any, kind: str) -> None:
    """S3: what cannot return a coroutine is refused, never called, spawn_thread suggested."""
    name = func.__qualname__
    async with JoinSet[Any]() as js:
        message = (
            f"JoinSet.spawn() expects an async function, but {name} is {kind}, which cannot "
            f"return a coroutine; to run it in a worker thread, use spawn_thread({name}, *args)."
        )
        with pytest.raises(TypeError, match=exactly(message)):
            js.spawn(func)
        assert len(js) == 0


async def test_unhashable_key_raises_before_anything_starts() -> None:
    """S16: an unhashable key is a TypeError, for spawn and the off-loop spawns alike."""
    async with JoinMap[Any, int]() as jm:
        for where, call in [
            ("JoinMap.spawn()", lambda: jm.spawn([], value_of, 1)),
            ("JoinMap.spawn_thread()", lambda: jm.spawn_thread([], blocking, 1)),
        ]:
            message = (
                f"{where} needs a hashable key, got unhashable list: []; "
                "use a hashable key such as a str, an int or a tuple."
            )
            with pytest.raises(TypeError, match=exactly(message)):
                call()
        assert len(jm) == 0


async def test_calls_from_a_worker_thread_raise() -> None:
    """S2: a method called from a worker thread names anyio.from_thread, changes nothing."""
    async with JoinSet[int]() as js:
        message = (
            "JoinSet.spawn() was called from another thread or event loop than the one that "
            "entered the JoinSet (S2); call it from that event loop, e.g. through "
            "anyio.from_thread.run_sync or anyio.from_thread.run."
        )

        def from_thread() -> None:
            with pytest.raises(RuntimeError, match=exactly(message)):
                js.spawn(value_of, 1)

        await anyio.to_thread.run_sync(from_thread)
        assert len(js) == 0
        assert js.stats().spawned == 0


async def test_off_loop_spawns_check_their_arguments() -> None:
    """S3, S17: each off-loop spawn names the argument it got wrong."""
    async with JoinSet[Any]() as js, JoinMap[str, Any]() as jm:
        cases: list[tuple[Any, str]] = [
            (
                lambda: js.spawn_thread(42),
                (
                    "JoinSet.spawn_thread() expects a synchronous function, but got 42 (int), "
                    "which is not callable."
                ),
            ),
            (
                lambda: js.spawn_thread(blocking, 1, limiter=3),
                "JoinSet.spawn_thread() limiter must be an anyio.CapacityLimiter or None, got int.",
            ),
            (
                lambda: js.spawn_thread(blocking, 1, abandon_on_cancel=1),
                "JoinSet.spawn_thread() abandon_on_cancel must be True or False, got 1.",
            ),
            (
                lambda: js.spawn_process(blocking, 1, cancellable=1),
                "JoinSet.spawn_process() cancellable must be True or False, got 1.",
            ),
            (
                lambda: js.spawn_future(3),
                "JoinSet.spawn_future() expects a concurrent.futures.Future, got int.",
            ),
            (
                lambda: js.spawn_submit(3, blocking, 1),
                (
                    "JoinSet.spawn_submit() expects a concurrent.futures.Executor as its first "
                    "argument (e.g. a ThreadPoolExecutor or a Dask client.get_executor()), "
                    "got 3 (int)."
                ),
            ),
            (
                lambda: js.spawn_thread(blocking, 1, name=3),
                "JoinSet.spawn_thread() name must be a str or None, got int.",
            ),
            (
                lambda: js.spawn(value_of, 1, name=3),
                "JoinSet.spawn() name must be a str or None, got int.",
            ),
            (
                lambda: jm.abort_matching(3),
                "JoinMap.abort_matching() expects a callable predicate, got 3.",
            ),
        ]
        for call, message in cases:
            with pytest.raises(TypeError, match=exactly(message)):
                call()
        assert len(js) == 0
        assert len(jm) == 0


@pytest.mark.parametrize("grace", ["1", [1], True])
async def test_shutdown_grace_of_wrong_type_raises(grace: object) -> None:
    """S3: grace must be None or a real number of seconds."""
    async with JoinSet[int]() as js:
        name = type(grace).__name__
        message = f"JoinSet.shutdown() grace must be None or a number of seconds, got {name}."
        with pytest.raises(TypeError, match=exactly(message)):
            await js.shutdown(grace=grace)  # type: ignore[arg-type]


async def test_shutdown_grace_of_nan_raises() -> None:
    """S3: NaN is not a number of seconds."""
    async with JoinSet[int]() as js:
        message = "JoinSet.shutdown() grace must be None or at least 0 seconds, got nan."
        with pytest.raises(ValueError, match=exactly(message)):
            await js.shutdown(grace=float("nan"))


async def test_join_all_without_fail_fast_groups_every_failure() -> None:
    """S11: join_all(fail_fast=False) raises an ExceptionGroup naming how many failed."""

    async def fail() -> int:
        await anyio.lowlevel.checkpoint()
        raise LookupError

    async with JoinSet[int]() as js:
        js.spawn(fail)
        js.spawn(value_of, 1)
        message = "1 of the JoinSet's 2 tasks failed or were cancelled"
        with pytest.raises(ExceptionGroup, match=exactly(message)) as info:
            await js.join_all(fail_fast=False)
        assert [type(e) for e in info.value.exceptions] == [LookupError]


def test_unknown_backend_raises() -> None:
    """backends.run names the event loops this machine has."""
    known = ", ".join(BACKENDS)
    message = f"backend must be one of {known} on this machine, got 'nope'."
    with pytest.raises(ValueError, match=exactly(message)):
        run(asyncio.sleep, 0, backend="nope")
