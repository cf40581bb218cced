"""The rows of docs/bad-input.md that no other test asserts, each message exactly (S3)."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Iterator
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
