"""The rows of docs/bad-input.md that no other test asserts, each message exactly (S3)."""

from __future__ import annotations

import asyncio
import functools
import gc
import math
import re
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
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


SYNC_CALLS: list[int] = []


def sync(x: int) -> int:
    SYNC_CALLS.append(x)
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


async def test_spawn_of_a_sync_function_calls_it_once_and_raises() -> None:
    """S3: a plain def is called once to find out; the message names spawn_thread, key too."""
    SYNC_CALLS.clear()
    async with JoinSet[int]() as js, JoinMap[str, int]() as jm:
        message = (
            "JoinSet.spawn() expects a callable that returns a coroutine, but sync() returned "
            "int; for a synchronous function, use spawn_thread(sync, *args)."
        )
        with pytest.raises(TypeError, match=exactly(message)):
            js.spawn(sync, 1)  # type: ignore[arg-type]
        message = (
            "JoinMap.spawn() expects a callable that returns a coroutine, but sync() returned "
            "int; for a synchronous function, use spawn_thread(key, sync, *args)."
        )
        with pytest.raises(TypeError, match=exactly(message)):
            jm.spawn("k", sync, 2)  # type: ignore[arg-type]
        assert SYNC_CALLS == [1, 2]
        assert len(js) == len(jm) == 0
        assert js.stats().spawned == jm.stats().spawned == 0


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
async def test_map_checks_its_arguments_at_the_call(face: str) -> None:
    """S3, S20: map() refuses a builtin, a class or non-iterable inputs before feeding."""
    async with JoinSet[Any]() if face == "JoinSet" else JoinMap[Any, Any]() as js:
        for func, shown in [(print, "print (builtin_function_or_method)"), (dict, "dict (type)")]:
            message = (
                f"{face}.map() expects a callable that returns a coroutine for each item, "
                f"got {shown}."
            )
            with pytest.raises(TypeError, match=exactly(message)):
                js.map(func, [1])
        message = f"{face}.map() expects its inputs as an iterable or an async iterable, got int."
        with pytest.raises(TypeError, match=exactly(message)):
            js.map(value_of, 42)  # type: ignore[arg-type]
        assert len(js) == 0


async def test_map_of_a_sync_function_raises_from_the_iteration() -> None:
    """S3, S20: a sync function fed by map() is found out at its first spawn, raised by the loop."""
    async with JoinSet[int]() as js:
        message = (
            "JoinSet.map() expects a callable that returns a coroutine, but blocking() "
            "returned int; for a synchronous function, use spawn_thread(blocking, *args)."
        )
        with pytest.raises(TypeError, match=exactly(message)):
            async for _ in js.map(blocking, [1]):  # type: ignore[arg-type]
                pass  # pragma: no cover
        assert len(js) == 0


async def test_map_of_an_unhashable_key_raises_from_the_iteration() -> None:
    """S16, S20: a JoinMap fed an unhashable input raises it from the loop, nothing starts."""
    async with JoinMap[Any, int]() as jm:
        message = (
            "JoinMap.map() needs a hashable key, got unhashable list: [1]; "
            "use a hashable key such as a str, an int or a tuple."
        )
        with pytest.raises(TypeError, match=exactly(message)):
            async for _ in jm.map(value_of, [[1]]):
                pass  # pragma: no cover
        assert len(jm) == 0
        assert jm.stats().spawned == 0


async def test_unhashable_key_in_abort_and_in_raises() -> None:
    """S16: jm.abort(key) and `key in jm` name an unhashable key and the fix."""
    async with JoinMap[Any, int]() as jm:
        jm.spawn("k", value_of, 1)
        for where, call in [
            ("JoinMap.abort()", lambda: jm.abort([])),
            ("JoinMap: key in map", lambda: [] in jm),
        ]:
            message = (
                f"{where} needs a hashable key, got unhashable list: []; "
                "use a hashable key such as a str, an int or a tuple."
            )
            with pytest.raises(TypeError, match=exactly(message)):
                call()
        assert list(jm.keys()) == ["k"]


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
async def test_join_all_fail_fast_of_wrong_type_raises(face: str) -> None:
    """S3, S11: fail_fast must be a bool; the outcomes stay in the set."""
    async with JoinSet[int]() if face == "JoinSet" else JoinMap[int, int]() as js:
        if isinstance(js, JoinSet):
            js.spawn(value_of, 1)
        else:
            js.spawn(1, value_of, 1)
        message = f"{face}.join_all() fail_fast must be True or False, got 'no'."
        with pytest.raises(TypeError, match=exactly(message)):
            await js.join_all(fail_fast="no")  # type: ignore[arg-type]
        assert len(js) == 1


async def test_snapshots_read_from_a_worker_thread_and_actions_raise() -> None:
    """S2: len, stats(), repr, limit, keys(), in and a handle's fields read from any thread."""
    gate = anyio.Event()

    async def wait_for_gate() -> int:
        await gate.wait()
        return 1

    async with JoinSet[int](limit=2) as js, JoinMap[str, int]() as jm:
        handle = js.spawn(wait_for_gate, name="one")
        jm.spawn("k", value_of, 2)
        message = (
            "JoinSet.map() was called from another thread or event loop than the one that "
            "entered the JoinSet (S2); call it from that event loop, e.g. through "
            "anyio.from_thread.run_sync or anyio.from_thread.run."
        )

        def from_thread() -> tuple[object, ...]:
            with pytest.raises(RuntimeError, match=exactly(message)):
                js.map(value_of, [1])
            with pytest.raises(RuntimeError, match=r"^JoinMap\.abort\(\) was called from"):
                jm.abort("k")
            return (
                len(js),
                js.stats().spawned,
                repr(js),
                js.limit,
                list(jm.keys()),
                "k" in jm,
                (handle.done(), handle.id, handle.name),
            )

        await anyio.wait_all_tasks_blocked()
        seen = await anyio.to_thread.run_sync(from_thread)
        gate.set()
        assert seen == (
            1,
            1,
            "<JoinSet open len=1 running=1 waiting=0 limit=2>",
            2,
            ["k"],
            True,
            (False, 1, "one"),
        )
        assert [o.result() async for o in js] == [1]


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_map_raises_what_the_inputs_raise(kind: str) -> None:
    """S20: the inputs' exception is raised by the iteration; what was fed stays in the set."""
    error = OSError("the input ended early")

    def items() -> Iterator[int]:
        yield 1
        raise error

    async def aitems() -> AsyncIterator[int]:
        yield 1
        raise error

    inputs: Any = items() if kind == "sync" else aitems()
    seen: list[int | None] = []
    async with JoinSet[int](limit=1) as js:
        with pytest.raises(OSError, match=r"^the input ended early$") as info:
            async for item, outcome in js.map(value_of, inputs):
                seen.append(item)
                assert outcome.result() == item
        assert info.value is error
        rest = [outcome.result() async for outcome in js]  # what was fed stays joinable
        assert seen + rest == [1]


async def async_value(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x


async def async_items(x: int) -> AsyncIterator[int]:
    yield x  # pragma: no cover - never iterated: refused at the call


class AsyncCall:
    """An object whose __call__ is async: spawn() takes it, the off-loop spawns refuse it."""

    calls = 0

    async def __call__(self, x: int) -> int:  # pragma: no cover - never called
        AsyncCall.calls += 1
        await anyio.lowlevel.checkpoint()
        return x


def a_face(face: str) -> Any:
    return JoinSet[Any]() if face == "JoinSet" else JoinMap[str, Any]()


def with_key(face: str, *args: object) -> tuple[object, ...]:
    return args if face == "JoinSet" else ("k", *args)


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
@pytest.mark.parametrize("method", ["spawn_thread", "spawn_process", "spawn_submit"])
@pytest.mark.parametrize(
    ("func", "shown"),
    [
        (async_value, "async_value"),
        (functools.partial(async_value, 1), "async_value"),
        (functools.partial(functools.partial(async_value), 1), "async_value"),
        (AsyncCall(), "AsyncCall.__call__"),
        (functools.partial(AsyncCall(), 1), "AsyncCall.__call__"),
        (async_items, "async_items"),
    ],
)
async def test_off_loop_spawns_refuse_an_async_callable(
    face: str, method: str, func: Any, shown: str
) -> None:
    """S3, S17: an async callable to a sync spawn is refused uncalled; spawn() is the fix."""
    AsyncCall.calls = 0
    hint = f"spawn({shown}, *args)" if face == "JoinSet" else f"spawn(key, {shown}, *args)"
    message = (
        f"{face}.{method}() expects a synchronous function, but {shown} is async; "
        f"use {hint} for it."
    )
    with ThreadPoolExecutor(1) as pool:
        async with a_face(face) as js:
            spawn = getattr(js, method)
            executor = (pool,) if method == "spawn_submit" else ()
            with pytest.raises(TypeError, match=exactly(message)):
                spawn(*with_key(face, *executor, func, 1))
            assert len(js) == 0
            assert js.stats().spawned == 0
    assert AsyncCall.calls == 0


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
@pytest.mark.parametrize(
    "method", ["spawn_thread", "spawn_process", "spawn_submit", "spawn_future"]
)
async def test_off_loop_spawns_refuse_and_close_a_coroutine_object(face: str, method: str) -> None:
    """S3, S17: a coroutine object to an off-loop spawn is closed and spawn() is named."""
    hint = "spawn(async_value, *args)" if face == "JoinSet" else "spawn(key, async_value, *args)"
    expects = (
        "a concurrent.futures.Future, but"
        if method == "spawn_future"
        else "a synchronous function, but"
    )
    message = (
        f"{face}.{method}() expects {expects} got a coroutine object (async_value); "
        f"pass the async function to {hint} instead."
    )
    with ThreadPoolExecutor(1) as pool:
        async with a_face(face) as js:
            coro = async_value(1)
            executor = (pool,) if method == "spawn_submit" else ()
            with pytest.raises(TypeError, match=exactly(message)):
                getattr(js, method)(*with_key(face, *executor, coro))
            assert coro.cr_frame is None  # closed: no "never awaited" warning
            del coro
            gc.collect()
            assert len(js) == 0
            assert js.stats().spawned == 0


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
async def test_spawn_future_of_an_asyncio_future_names_the_fix(face: str) -> None:
    """S3, S17: an asyncio future belongs in an async function given to spawn(), any loop."""
    loop = asyncio.new_event_loop()  # not running: the check only looks at the type
    try:
        async with a_face(face) as js:
            message = (
                f"{face}.spawn_future() expects a concurrent.futures.Future, but got an "
                f"asyncio Future; await it in an async function and pass that to spawn()."
            )
            with pytest.raises(TypeError, match=exactly(message)):
                js.spawn_future(*with_key(face, loop.create_future()))
            assert len(js) == 0
    finally:
        loop.close()


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
async def test_sync_function_returning_a_coroutine_fails_its_task(face: str) -> None:
    """S3, S17: a sync callable that returns a coroutine fails its task; the coroutine is closed."""
    made: list[Any] = []

    def wraps_async() -> Any:
        made.append(async_value(1))
        return made[-1]

    with ThreadPoolExecutor(1) as pool:
        async with a_face(face) as js:
            hint = "spawn(key, " if face == "JoinMap" else "spawn("
            for method, executor in [("spawn_thread", ()), ("spawn_submit", (pool,))]:
                getattr(js, method)(*with_key(face, *executor, wraps_async))
                outcome = await js.join_next()
                if face == "JoinMap":
                    outcome = outcome[1]
                message = (
                    f"{face}.{method}() expects a synchronous function, but "
                    f"{wraps_async.__qualname__}() returned a coroutine; use "
                    f"{hint}{wraps_async.__qualname__}, *args) for it."
                )
                with pytest.raises(TypeError, match=exactly(message)):
                    outcome.result()
                assert made[-1].cr_frame is None  # closed: no "never awaited" warning
            assert len(made) == 2
            made.clear()
            gc.collect()


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
async def test_spawn_of_a_coroutine_object_hint_matches_the_face(face: str) -> None:
    """S3, S16: the coroutine-object hint shows the call to write, with the key on a JoinMap."""
    key = "key, " if face == "JoinMap" else ""
    message = (
        f"{face}.spawn() got a coroutine object (async_value); pass the async function and "
        f"its arguments instead: spawn({key}async_value, *args), "
        f"not spawn({key}async_value(*args))."
    )
    async with a_face(face) as js:
        coro = async_value(1)
        with pytest.raises(TypeError, match=exactly(message)):
            js.spawn(*with_key(face, coro))
        assert coro.cr_frame is None
        assert len(js) == 0


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
async def test_messages_show_a_partial_as_its_function(face: str) -> None:
    """S3: a partial in a message is its function's name, shown once, no memory address."""
    thread = "spawn_thread(key, sync, *args)" if face == "JoinMap" else "spawn_thread(sync, *args)"
    message = (
        f"{face}.spawn() expects a callable that returns a coroutine, but sync() returned int; "
        f"for a synchronous function, use {thread}."
    )
    async with a_face(face) as js:
        with pytest.raises(TypeError, match=exactly(message)):
            js.spawn(*with_key(face, functools.partial(sync, 1)))
        assert len(js) == 0


@pytest.mark.parametrize("backend", [[], None, 3])
def test_backend_that_is_not_a_name_raises(backend: Any) -> None:
    """backends.run refuses any backend that is not a known name with the same ValueError."""
    known = ", ".join(BACKENDS)
    message = f"backend must be one of {known} on this machine, got {backend!r}."
    with pytest.raises(ValueError, match=exactly(message)):
        run(asyncio.sleep, 0, backend=backend)


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
async def test_any_real_number_is_a_grace_and_a_rate(face: str) -> None:
    """S3, S9, S18: a Fraction is a real number of seconds or of starts; bool is not."""
    make = JoinSet[int] if face == "JoinSet" else JoinMap[str, int]
    for rate in [Fraction(1000), (2, Fraction(1, 1000))]:
        async with make(rate=rate) as js:  # type: ignore[arg-type]
            js.spawn(*with_key(face, async_value, 1))
            await js.shutdown(grace=Fraction(1, 20))
            assert len(js) == 0
            assert js.stats().joined == 1
    for bad in [True, (1, True)]:
        message = (
            f"{face} rate must be None, starts per second as a number, or a "
            f"(count, per_seconds) tuple, got {bad!r}."
        )
        with pytest.raises(TypeError, match=exactly(message)):
            make(rate=bad)  # type: ignore[arg-type]
    message = (
        f"{face} rate must allow at least 1 start per a finite, positive number of "
        f"seconds, got (1, Fraction(0, 1))."
    )
    with pytest.raises(ValueError, match=exactly(message)):
        make(rate=(1, Fraction(0)))  # type: ignore[arg-type]
    async with make() as js:
        message = f"{face}.shutdown() grace must be None or at least 0 seconds, got {{}}."
        for bad_grace in [Fraction(-1, 2), math.nan]:
            with pytest.raises(ValueError, match=exactly(message.format(repr(bad_grace)))):
                await js.shutdown(grace=bad_grace)  # type: ignore[arg-type]
        message = f"{face}.shutdown() grace must be None or a number of seconds, got bool."
        with pytest.raises(TypeError, match=exactly(message)):
            await js.shutdown(grace=False)


async def test_abort_matching_refuses_an_async_predicate() -> None:
    """S3, S7: an async predicate (its coroutine is always true) aborts nothing."""

    async def is_old(key: str) -> bool:  # pragma: no cover - never called
        await anyio.lowlevel.checkpoint()
        return key == "old"

    async with JoinMap[str, int]() as jm:
        jm.spawn("k", async_value, 1)
        for predicate in [is_old, functools.partial(is_old)]:
            message = (
                "JoinMap.abort_matching() expects a synchronous predicate, but "
                f"{is_old.__qualname__} is async; pass a plain function that returns True "
                "or False."
            )
            with pytest.raises(TypeError, match=exactly(message)):
                jm.abort_matching(predicate)  # type: ignore[arg-type]
        coro = is_old("k")
        message = (
            f"JoinMap.abort_matching() expects a callable predicate, got {is_old.__qualname__}."
        )
        with pytest.raises(TypeError, match=exactly(message)):
            jm.abort_matching(coro)  # type: ignore[arg-type]
        assert coro.cr_frame is None
        assert [(k, o.result()) async for k, o in jm] == [("k", 1)]


@pytest.mark.parametrize(
    "method", ["spawn", "spawn_thread", "spawn_process", "spawn_future", "spawn_submit"]
)
async def test_unhashable_key_closes_a_coroutine_passed_with_it(method: str) -> None:
    """S3, S16: refused for its key, a coroutine passed by mistake is closed too."""
    with ThreadPoolExecutor(1) as pool:
        async with JoinMap[Any, Any]() as jm:
            coro = async_value(1)
            executor = (pool,) if method == "spawn_submit" else ()
            message = (
                f"JoinMap.{method}() needs a hashable key, got unhashable list: []; "
                "use a hashable key such as a str, an int or a tuple."
            )
            with pytest.raises(TypeError, match=exactly(message)):
                getattr(jm, method)([], *executor, coro)
            assert coro.cr_frame is None
            assert len(jm) == 0


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
async def test_spawn_submit_of_a_coroutine_as_executor_closes_it(face: str) -> None:
    """S3, S17: a coroutine object where the executor belongs is closed and named."""
    async with a_face(face) as js:
        coro = async_value(1)
        message = (
            f"{face}.spawn_submit() expects a concurrent.futures.Executor as its first "
            "argument (e.g. a ThreadPoolExecutor or a Dask client.get_executor()), "
            "got async_value (coroutine)."
        )
        with pytest.raises(TypeError, match=exactly(message)):
            js.spawn_submit(*with_key(face, coro, blocking, 1))
        assert coro.cr_frame is None
        assert len(js) == 0


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
async def test_start_of_a_coroutine_object_closes_it_and_names_start(face: str) -> None:
    """S3, S21: start(f(x)) is refused like spawn(f(x)): closed, the hint says start()."""
    key = "key, " if face == "JoinMap" else ""
    message = (
        f"{face}.start() got a coroutine object (async_value); pass the async function and "
        f"its arguments instead: start({key}async_value, *args), "
        f"not start({key}async_value(*args))."
    )
    async with a_face(face) as js:
        coro = async_value(1)
        with pytest.raises(TypeError, match=exactly(message)):
            await js.start(*with_key(face, coro))
        assert coro.cr_frame is None
        assert len(js) == 0
        assert js.stats().spawned == 0
