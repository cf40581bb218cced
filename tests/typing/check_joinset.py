"""
Typing tests: checked by mypy --strict and pyright strict, never run.

Every call that must be rejected carries a ``type: ignore[...]`` (mypy) and a
``pyright: ignore[...]``, so a regression shows up as an unused ignore.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import AsyncIterator, Hashable, KeysView
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import anyio
from anyio.abc import TaskStatus

from anyio_joinset import (
    JoinHandle,
    JoinMap,
    JoinSet,
    JoinSetStats,
    Outcome,
    TaskCancelled,
    TaskState,
)

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type


async def returns_int(x: int, label: str) -> int:
    await anyio.lowlevel.checkpoint()
    return x + len(label)


async def returns_str() -> str:
    return "text"


async def no_args() -> int:
    return 1


def sync_function() -> int:
    return 1


async def with_keywords(x: int, *, factor: int) -> int:
    return x * factor


async def check() -> None:
    async with JoinSet[int]() as js:
        assert_type(js, JoinSet[int])
        handle = js.spawn(returns_int, 1, "a")
        assert_type(handle, JoinHandle[int])
        assert_type(handle.id, int)
        assert_type(handle.name, str)
        assert_type(handle.done(), bool)
        assert_type(handle.abort(), None)
        js.spawn(no_args, name="named")
        js.spawn(functools.partial(with_keywords, factor=2), 3)

        # Wrong return type for a JoinSet[int].
        js.spawn(returns_str)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        # Wrong argument types and counts.
        js.spawn(returns_int, "1", "a")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        js.spawn(returns_int, 1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        js.spawn(returns_int, 1, "a", 2)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        # Not an async function.
        js.spawn(sync_function)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        # A coroutine object instead of a function.
        js.spawn(no_args())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        # name is keyword-only and a str.
        js.spawn(no_args, name=3)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

        outcome = await js.join_next()
        assert_type(outcome, Outcome[int] | None)
        if outcome is not None:
            assert_type(outcome.result(), int)
            assert_type(outcome.exception(), Exception | None)
            assert_type(outcome.succeeded(), bool)
            assert_type(outcome.failed(), bool)
            assert_type(outcome.cancelled(), bool)
            assert_type(outcome.id, int)
            assert_type(outcome.name, str)
        assert_type(js.try_join_next(), Outcome[int] | None)
        assert_type(await js.join_all(), list[int])
        assert_type(len(js), int)
        assert_type(js.abort_all(), None)
        assert_type(await js.shutdown(), None)
        assert_type(await js.wait_for_capacity(), None)
        assert_type(js.limit, int | None)
        async for item in js:
            assert_type(item, Outcome[int])

    JoinSet[str](limit=4)
    JoinSet[str](limit="4")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    JoinSet[str](4)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    assert_type(TaskCancelled("x"), TaskCancelled)


async def check_extensions() -> None:
    async with JoinSet[int]() as js:
        assert_type(js.stats(), JoinSetStats)
        assert_type(js.stats().failed, int)
        assert_type(await js.shutdown(grace=1.5), None)
        assert_type(await js.first_success(), int)
        await js.shutdown(grace="1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    async with JoinMap[str, int]() as jm:
        assert_type(jm, JoinMap[str, int])
        assert_type(jm.spawn("key", returns_int, 1, "a"), JoinHandle[int])
        jm.spawn(1, no_args)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        jm.spawn("key", returns_str)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        jm.spawn("key", returns_int, 1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        assert_type(await jm.join_next(), tuple[str, Outcome[int]] | None)
        assert_type(jm.try_join_next(), tuple[str, Outcome[int]] | None)
        assert_type(jm.abort("key"), bool)
        jm.abort_matching(lambda key: key.startswith("k"))
        assert_type("key" in jm, bool)
        assert_type(len(jm), int)
        async for key, outcome in jm:
            assert_type(key, str)
            assert_type(outcome, Outcome[int])


def sync_square(x: int) -> int:
    return x * x


async def check_offload(future: Future[int], pool: ThreadPoolExecutor) -> None:
    async with JoinSet[int]() as js:
        assert_type(js.spawn_thread(sync_square, 2), JoinHandle[int])
        assert_type(js.spawn_thread(sync_square, 2, abandon_on_cancel=True), JoinHandle[int])
        assert_type(js.spawn_process(sync_square, 2, cancellable=True), JoinHandle[int])
        assert_type(js.spawn_future(future), JoinHandle[int])
        assert_type(js.spawn_submit(pool, sync_square, 3), JoinHandle[int])
        js.spawn_thread(sync_square, "2")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        js.spawn_thread(returns_int, 1, "a")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        js.spawn_submit(pool, sync_square)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    async with JoinSet[str]() as js_str:
        js_str.spawn_future(future)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def check_rate() -> None:
    JoinSet[int](rate=(10, 1.0))
    JoinSet[int](limit=2, rate=(10, 1))
    JoinSet[int](rate=10)  # starts per second (S18)
    JoinSet[int](rate=2.5)
    JoinSet[int](rate=math.inf)
    JoinSet[int](rate=None)
    JoinMap[str, int](rate=0.5, limit=3)
    JoinSet[int](rate="10")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    JoinSet[int](rate=(1.5, 1.0))  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


async def double(x: int) -> int:
    return 2 * x


async def from_key(key: str) -> int:
    return len(key)


async def int_inputs() -> AsyncIterator[int]:
    yield 1


async def check_any_coroutine_callable() -> None:
    async with JoinSet[int]() as js:
        assert_type(js.spawn(lambda: returns_int(1, "a")), JoinHandle[int])
        js.spawn(lambda: returns_str())  # type: ignore[arg-type,return-value]  # pyright: ignore[reportArgumentType]  # noqa: PLW0108


async def check_join_all_modes() -> None:
    async with JoinSet[int]() as js:
        assert_type(await js.join_all(fail_fast=False), list[int])
        assert_type(await js.join_all(fail_fast=True), list[int])
        await js.join_all(False)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
    async with JoinMap[str, int]() as jm:
        assert_type(await jm.join_all(), list[tuple[str, int]])
        assert_type(await jm.join_all(fail_fast=False), list[tuple[str, int]])
        assert_type(await jm.first_success(), tuple[str, int])


async def check_map() -> None:
    async with JoinSet[int](limit=3) as js:
        async for item, outcome in js.map(double, range(10)):
            assert_type(item, int | None)
            assert_type(outcome, Outcome[int])
        async for item, outcome in js.map(double, int_inputs()):
            assert_type(item, int | None)
            assert_type(outcome, Outcome[int])
        js.map(double, ["a"])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        js.map(from_key, [1])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        js.map(sync_square, [1])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    async with JoinSet[str]() as js_str:
        js_str.map(double, [1])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    async with JoinMap[str, int](limit=3) as jm:
        async for key, result in jm.map(from_key, ["a", "bb"]):
            assert_type(key, str)
            assert_type(result, Outcome[int])
        jm.map(double, [1])  # type: ignore[arg-type,list-item]  # pyright: ignore[reportArgumentType]


async def check_joinmap_parity(future: Future[int], pool: ThreadPoolExecutor) -> None:
    async with JoinMap[str, int](limit=2, rate=(5, 1.0)) as jm:
        assert_type(jm.limit, int | None)
        assert_type(await jm.wait_for_capacity(), None)
        assert_type(jm.stats(), JoinSetStats)
        assert_type(jm.keys(), KeysView[str])
        assert_type(jm.spawn_thread("t", sync_square, 2), JoinHandle[int])
        assert_type(jm.spawn_thread("t", sync_square, 2, abandon_on_cancel=True), JoinHandle[int])
        assert_type(jm.spawn_process("p", sync_square, 2, cancellable=True), JoinHandle[int])
        assert_type(jm.spawn_future("f", future), JoinHandle[int])
        assert_type(jm.spawn_submit("s", pool, sync_square, 3), JoinHandle[int])
        assert_type(await jm.shutdown(grace=0.5), None)
        assert_type(jm.abort_all(), None)
        jm.spawn_thread(sync_square, 2)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        jm.spawn_thread(1, sync_square, 2)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        jm.spawn_thread("t", sync_square, "2")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        jm.spawn_future(future)  # type: ignore[arg-type,call-arg]  # pyright: ignore[reportCallIssue]
        jm.spawn_submit("s", pool, sync_square)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def catches(error: anyio.TaskCancelled, failed: anyio.TaskFailed) -> None: ...


def check_task_cancelled_base() -> None:
    # S-exceptions: anyio_joinset.TaskCancelled is an anyio.TaskCancelled (and TaskFailed).
    catches(TaskCancelled("x"), TaskCancelled("x"))


# -- Code as users write it (issue 13): the block swallows nothing (S13) --------------


async def sum_after_the_block(n: int) -> int:
    # With __aexit__ -> bool, mypy --strict said "Missing return statement" here.
    async with JoinSet[int]() as js:
        for x in range(n):
            js.spawn(double, x)
        return sum(await js.join_all())


async def square(x: int) -> int:
    await anyio.sleep(0.02 * (5 - x))
    return x * x


async def readme_first_example() -> None:
    # With __aexit__ -> bool, pyright strict said "results is possibly unbound".
    async with JoinSet[int]() as js:
        for x in range(5):
            js.spawn(square, x)
        results = [outcome.result() async for outcome in js]
    assert results == [16, 9, 4, 1, 0]


async def check_aexit_returns_none() -> None:
    js = JoinSet[int]()
    await js.__aenter__()
    assert_type(await js.__aexit__(None, None, None), None)
    jm = JoinMap[str, int]()
    await jm.__aenter__()
    assert_type(await jm.__aexit__(None, None, None), None)


async def check_outcome_kinds(outcome: Outcome[int]) -> None:
    error = outcome.exception()
    if error is not None:
        assert_type(error, Exception)  # only Exceptions are captured (S6)
    if outcome.succeeded():
        assert_type(outcome.result(), int)


# -- Default type parameters (PEP 696): a bare JoinSet() is a JoinSet[object] ----------


async def check_bare_sets() -> None:
    js = JoinSet()
    assert_type(js, JoinSet[object])
    async with JoinSet() as bare:
        assert_type(bare, JoinSet[object])
        bare.spawn(returns_int, 1, "a")
        bare.spawn(returns_str)
        bare.spawn(anyio.sleep_forever)
        outcome = await bare.join_next()
        assert_type(outcome, Outcome[object] | None)
        assert_type(await bare.join_all(), list[object])
        # Values of a bare set are object until narrowed: not silently Any.
        sum(await bare.join_all())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType,reportCallIssue]
    # An annotated target picks the type parameter, as for any generic class.
    annotated: JoinSet[int] = JoinSet()
    assert_type(annotated, JoinSet[int])
    async with JoinMap() as jm:
        assert_type(jm, JoinMap[Hashable, object])
        jm.spawn("key", returns_str)
        jm.spawn(1, no_args)
    async with JoinMap[str]() as by_name:
        assert_type(by_name, JoinMap[str, object])
        by_name.spawn(1, no_args)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    JoinMap[list[int], int]()  # type: ignore[type-var]  # pyright: ignore[reportInvalidTypeArguments]
    JoinSet[int, str]()  # type: ignore[misc]  # pyright: ignore[reportInvalidTypeArguments]


def takes_bare(js: JoinSet, jm: JoinMap) -> None:
    # A bare annotation is the default too, not a "missing type parameters" error.
    assert_type(js, JoinSet[object])
    assert_type(jm, JoinMap[Hashable, object])


def log_any(outcome: Outcome[object]) -> str:
    return outcome.name


def size_of_any(js: JoinSet[Any]) -> int:
    return len(js)


async def check_passing_sets_and_outcomes() -> None:
    async with JoinSet[int]() as js:
        outcome = await js.join_next()
        if outcome is not None:
            # Outcome is covariant: it only hands its value out.
            log_any(outcome)
        # A set is invariant (it takes tasks of T and hands T out): a function
        # that takes any set annotates it JoinSet[Any]; a bare JoinSet is the
        # default, JoinSet[object], which a JoinSet[int] is not.
        size_of_any(js)
        takes_bare(js, JoinMap[str, int]())  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


# -- long-lived sets (S21-S23) ----------------------------------------------------------


async def serve_port(port: int, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> str:
    task_status.started(port)
    await anyio.sleep_forever()
    return "done"


async def check_long_lived() -> None:
    async with JoinSet[str]() as js:
        port = await js.start(serve_port, 8080)
        assert_type(port, Any)
        handle = await js.start(serve_port, 8080, return_handle=True)
        assert_type(handle, JoinHandle[str])
        assert_type(handle.start_value, object)
        assert_type(handle.state, TaskState)
        assert_type(handle.aborted, bool)
        await handle.wait()
        handle.detach()
        js.detach_all()
        async for outcome in js.follow():
            assert_type(outcome, Outcome[str])
        await js.start(returns_int, 1, "x", return_handle="yes")  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue,reportArgumentType]
    async with JoinMap[int, str]() as jm:
        assert_type(await jm.start(1, serve_port, 1), Any)
        assert_type(await jm.start(1, serve_port, 1, return_handle=True), JoinHandle[str])
        async for key, keyed in jm.follow():
            assert_type(key, int)
            assert_type(keyed, Outcome[str])
        jm.detach_all()
