"""S2 spawn and S3 bad spawn: when tasks start, their context, and bad input."""

from __future__ import annotations

import contextvars
import functools
import gc
import re

import anyio
import pytest

from anyio_joinset import JoinSet
from helpers import value_of

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def test_spawn_is_sync_and_task_starts_at_next_scheduling_point() -> None:
    """S2: spawn returns before the task runs; the task runs at the next checkpoint."""
    started: list[int] = []

    async def record(i: int) -> int:
        started.append(i)
        return i

    async with JoinSet[int]() as js:
        js.spawn(record, 1)
        js.spawn(record, 2)
        assert started == []
        await anyio.lowlevel.checkpoint()
        await anyio.wait_all_tasks_blocked()
        assert sorted(started) == [1, 2]


async def test_task_runs_even_if_never_joined() -> None:
    """S2: a task runs to its end whether or not anyone ever joins it."""
    ran: list[str] = []

    async def work() -> None:
        await anyio.lowlevel.checkpoint()
        ran.append("done")

    async with JoinSet[None]() as js:
        handle = js.spawn(work)
        assert ran == []  # not inside spawn itself
        await anyio.wait_all_tasks_blocked()  # nobody joins: only the task can run
        assert ran == ["done"]
        assert handle.done()
        assert len(js) == 1  # finished, not handed out (S4)
        assert js.stats().finished == 1
    assert ran == ["done"]


async def test_each_task_runs_in_a_copy_of_its_spawn_context() -> None:
    """S2: a task sees the contextvars of its spawn call, and its changes stay its own."""

    async def read_and_write() -> str:
        seen = request_id.get()
        request_id.set("changed-by-task")
        return seen

    async with JoinSet[str]() as js:
        request_id.set("first")
        js.spawn(read_and_write)
        request_id.set("second")
        js.spawn(read_and_write)
        results = sorted(o.result() for o in [await js.join_next(), await js.join_next()] if o)
    assert results == ["first", "second"]
    assert request_id.get() == "second"


async def test_keyword_arguments_go_through_partial() -> None:
    """S2: functools.partial carries keyword arguments; the name is the function's."""

    async def scaled(x: int, *, factor: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x * factor

    async with JoinSet[int]() as js:
        handle = js.spawn(functools.partial(scaled, factor=3), 7)
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.result() == 21
    assert handle.name.endswith("scaled")


async def test_task_may_spawn_into_its_own_set() -> None:
    """S2: a task of the set may spawn more tasks into the same set."""

    async def parent(js: JoinSet[str]) -> str:
        js.spawn(value_of, "child")  # type: ignore[arg-type]
        return "parent"

    async with JoinSet[str]() as js:
        js.spawn(parent, js)
        values = [o.result() async for o in js]
    assert sorted(values) == ["child", "parent"]  # type: ignore[type-var]


async def test_spawn_from_another_task_of_the_loop() -> None:
    """S2: a task outside the set (same event loop) may spawn into it."""
    async with JoinSet[object]() as js, anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(_spawn_value, js, 5))
        await anyio.wait_all_tasks_blocked()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == 5


async def _spawn_value(js: JoinSet[object], value: int) -> None:
    js.spawn(value_of, value)


async def test_name_given_for_any_callable() -> None:
    """JoinHandle.name is the given name whatever kind of callable was spawned."""
    async with JoinSet[object]() as js:
        handle = js.spawn(functools.partial(value_of, 1), name="partial-task")
    assert handle.name == "partial-task"


async def test_name_that_is_not_a_str_raises() -> None:
    """S3: name= must be a str or None; nothing starts and no coroutine leaks."""
    async with JoinSet[object]() as js:
        with pytest.raises(
            TypeError, match=r"^JoinSet\.spawn\(\) name must be a str or None, got int\.$"
        ):
            js.spawn(value_of, 2, name=42)  # type: ignore[arg-type]
        gc.collect()  # a leaked coroutine would warn here (filterwarnings = error)
        assert len(js) == 0
        assert js.stats().spawned == 0


async def test_handle_ids_increase_and_names_default_to_qualname() -> None:
    """JoinHandle: ids are unique and increase in spawn order; name defaults to qualname."""
    async with JoinSet[object]() as js:
        first = js.spawn(value_of, 1)
        second = js.spawn(value_of, 2, name="custom")
        assert (first.id, second.id) == (1, 2)
        assert first.name == "value_of"
        assert second.name == "custom"
        outcomes = {o.id: o async for o in js}
    assert outcomes[1].name == "value_of"
    assert outcomes[2].name == "custom"


async def test_method_name_is_qualified() -> None:
    """JoinHandle.name is the function's qualified name, class included for methods."""

    class Service:
        async def fetch(self) -> int:
            return 1

    async with JoinSet[int]() as js:
        handle = js.spawn(Service().fetch)
    assert handle.name.endswith("Service.fetch")


async def test_spawn_before_enter_raises() -> None:
    """S3: spawning before __aenter__ raises RuntimeError naming the fix."""
    js = JoinSet[object]()
    with pytest.raises(
        RuntimeError,
        match=r"^This JoinSet is not open yet; call spawn\(\) inside its async with block\.$",
    ):
        js.spawn(value_of, 1)
    gc.collect()  # a leaked coroutine would warn here (filterwarnings = error)


async def test_spawn_after_exit_raises() -> None:
    """S3: spawning after __aexit__ raises RuntimeError naming the fix."""
    async with JoinSet[object]() as js:
        pass
    with pytest.raises(
        RuntimeError, match=r"^This JoinSet is closed; spawn\(\) can no longer start tasks\.$"
    ):
        js.spawn(value_of, 1)
    gc.collect()


async def test_spawn_sync_function_raises_with_a_thread_hint() -> None:
    """S3: a sync function is called once to find out (as AnyIO and Trio do), then
    refused with a TypeError naming spawn_thread; nothing is spawned."""
    calls: list[int] = []

    def blocking(x: int) -> int:
        calls.append(x)
        return x

    async with JoinSet[int]() as js:
        with pytest.raises(
            TypeError,
            match=(
                r"^JoinSet\.spawn\(\) expects a callable that returns a coroutine, but "
                r".*blocking\(\) returned int; for a synchronous function, use "
                r"spawn_thread\(.*blocking, \*args\)\.$"
            ),
        ):
            js.spawn(blocking, 1)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"^JoinSet\.spawn\(\) expects a callable that"):
            js.spawn(functools.partial(blocking, 2))  # type: ignore[arg-type]
        assert len(js) == 0
        assert js.stats().spawned == 0
    assert calls == [1, 2]  # each called exactly once


async def test_the_hinted_worker_thread_form_works() -> None:
    """S3: the hint's form, spawn(anyio.to_thread.run_sync, func, *args), runs func."""
    async with JoinSet[int]() as js:
        js.spawn(anyio.to_thread.run_sync, abs, -4)
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.result() == 4


async def test_spawn_coroutine_object_raises_and_closes_it() -> None:
    """S3: a coroutine object raises TypeError; it is closed, so no 'never awaited'."""
    async with JoinSet[object]() as js:
        coro = value_of(1)
        with pytest.raises(
            TypeError,
            match=(
                r"^JoinSet\.spawn\(\) got a coroutine object \(value_of\); pass the async "
                r"function and its arguments instead: spawn\(value_of, \*args\), not "
                r"spawn\(value_of\(\*args\)\)\.$"
            ),
        ):
            js.spawn(coro)  # type: ignore[arg-type]
        assert coro.cr_frame is None  # closed
        del coro
        gc.collect()
        assert len(js) == 0


@pytest.mark.parametrize("bad", [None, 42, "text"])
async def test_spawn_non_callable_raises(bad: object) -> None:
    """S3: a non-callable raises TypeError naming the object."""
    async with JoinSet[object]() as js:
        with pytest.raises(
            TypeError,
            match=(
                r"^JoinSet\.spawn\(\) expects an async function, but got .* "
                r"which is not callable\.$"
            ),
        ):
            js.spawn(bad)  # type: ignore[arg-type]
        assert len(js) == 0


async def test_spawn_callable_returning_non_coroutine_raises() -> None:
    """S3: a callable object that returns a non-coroutine raises TypeError at spawn."""

    class Sync:
        def __call__(self) -> int:
            return 1

    async with JoinSet[object]() as js:
        with pytest.raises(
            TypeError,
            match=(
                r"^JoinSet\.spawn\(\) expects a callable that returns a coroutine, but "
                r".*Sync.*\(\) returned int; for a synchronous function, use "
                r"spawn_thread\(.*Sync.*, \*args\)\.$"
            ),
        ):
            js.spawn(Sync())  # type: ignore[arg-type]
        assert len(js) == 0


async def test_spawn_async_generator_function_raises() -> None:
    """S3: an async generator function is not an async function."""

    async def agen() -> object:
        yield 1  # type: ignore[misc]

    async with JoinSet[object]() as js:
        with pytest.raises(
            TypeError,
            match=(
                r"^JoinSet\.spawn\(\) expects an async function, "
                r"but .*agen is an async generator function"
            ),
        ):
            js.spawn(agen)
        assert len(js) == 0


async def test_wrapped_sync_callable_returning_coroutine_is_accepted() -> None:
    """S2: a decorated sync wrapper that returns a coroutine is accepted (as in AnyIO)."""

    def decorate(func):  # type: ignore[no-untyped-def]
        @functools.wraps(func)
        def wrapper(*args):  # type: ignore[no-untyped-def]
            return func(*args)

        return wrapper

    async with JoinSet[object]() as js:
        js.spawn(decorate(value_of), 9)
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.result() == 9


async def test_callable_object_with_async_call_is_accepted() -> None:
    """S2: an object whose __call__ is async is an async function for spawn."""

    class Fetch:
        async def __call__(self, x: int) -> int:
            await anyio.lowlevel.checkpoint()
            return x + 1

    async with JoinSet[int]() as js:
        js.spawn(Fetch(), 1)
        outcome = await js.join_next()
    assert outcome is not None
    assert outcome.result() == 2


async def test_wrong_arguments_raise_at_spawn() -> None:
    """S3: calling with the wrong arguments raises at the spawn call, nothing is added."""
    async with JoinSet[object]() as js:
        with pytest.raises(TypeError, match=re.escape("value_of()")):
            js.spawn(value_of)  # type: ignore[call-arg]
        assert len(js) == 0
