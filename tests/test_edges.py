"""The engine's rarer paths, each through the public API where one reaches it."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import anyio
import pytest
from anyio.lowlevel import checkpoint
from trio.testing import MockClock

from anyio_joinset import JoinMap, JoinSet
from helpers import BaseExceptionGroup, Gate, unwind_after, value_of

pytestmark = pytest.mark.anyio


class Stop(BaseException):
    """Not an Exception and not a cancellation: never captured (S6)."""


async def stop_after_release(gate: Gate) -> None:
    await gate.release.wait()
    raise Stop


def blocking(x: int) -> int:
    return x * 2


async def test_refused_spawns_close_a_coroutine_passed_by_mistake() -> None:
    """S2, S3: spawn(coro) before the block, after it and from a thread closes the
    coroutine, so no "never awaited" warning follows (filterwarnings = error)."""
    js = JoinSet[int]()
    coro = value_of(1)
    with pytest.raises(RuntimeError, match="not open yet"):
        js.spawn(coro)  # type: ignore[arg-type]
    assert coro.cr_frame is None  # closed
    async with js:
        thread_coro = value_of(2)
        with pytest.raises(RuntimeError, match="another thread"):
            await anyio.to_thread.run_sync(js.spawn, thread_coro)
        assert thread_coro.cr_frame is None
        assert len(js) == 0
    late = value_of(3)
    with pytest.raises(RuntimeError, match="closed"):
        js.spawn(late)  # type: ignore[arg-type]
    assert late.cr_frame is None


async def test_a_spawn_the_task_group_refuses_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """S3: if the task group cannot start the task, spawn raises, the coroutine is
    closed and len, stats() and a JoinMap's keys are as before."""
    async with JoinMap[str, object]() as jm:
        jm.spawn("a", value_of, 1)

        def refuse(*_: object, **__: object) -> None:
            raise RuntimeError("no more tasks")

        monkeypatch.setattr(jm._tg, "create_task", refuse)
        coro_made: list[Any] = []

        async def tracked() -> None:
            await checkpoint()

        def make() -> Any:
            coro = tracked()
            coro_made.append(coro)
            return coro

        with pytest.raises(RuntimeError, match="no more tasks"):
            jm.spawn("b", make)
        assert coro_made[0].cr_frame is None
        assert list(jm.keys()) == ["a"]
        assert len(jm) == 1
        monkeypatch.undo()
        assert [(k, o.result()) async for k, o in jm] == [("a", 1)]


async def test_uncaptured_base_exception_under_limit_counts_the_task_off() -> None:
    """S6, S14: a task ending in KeyboardInterrupt & co. under limit frees its slot and
    counts off; in a JoinMap its key goes too, so a shielded drain ends."""
    gate = Gate()
    drained: list[object] = []
    with pytest.raises(BaseExceptionGroup) as caught:
        async with JoinMap[str, object](limit=1) as jm:
            jm.spawn("stop", stop_after_release, gate)
            jm.spawn("waits", value_of, 1)
            await anyio.wait_all_tasks_blocked()
            gate.release.set()
            try:
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    drained.extend([key async for key, _ in jm])
                    assert len(jm) == 0
                    assert list(jm.keys()) == []
    assert caught.group_contains(Stop)
    assert drained == ["waits"]


async def test_replaced_task_that_raises_uncaptured_is_not_counted_twice() -> None:
    """S6, S16: a replaced key's task that then raises KeyboardInterrupt & co. does not
    count off the key's new task."""
    gate = Gate()
    with pytest.raises(BaseExceptionGroup) as caught:
        async with JoinMap[str, object]() as jm:

            async def shielded_stop() -> None:
                with anyio.CancelScope(shield=True):
                    await stop_after_release(gate)

            jm.spawn("k", shielded_stop)
            await anyio.wait_all_tasks_blocked()
            new = Gate()
            jm.spawn("k", new.wait, "new")  # replaces: the old one is aborted (shielded)
            await anyio.wait_all_tasks_blocked()
            gate.release.set()
            await anyio.wait_all_tasks_blocked()
            assert len(jm) == 1
            assert list(jm.keys()) == ["k"]
            new.release.set()
            await anyio.sleep_forever()
    assert caught.group_contains(Stop)


async def test_joinmap_off_loop_spawns_run_under_their_keys() -> None:
    """S16, S17: every off-loop spawn of a JoinMap takes its key first."""
    done: Future[int] = Future()
    done.set_result(7)
    with ThreadPoolExecutor(1) as pool:
        async with JoinMap[str, int]() as jm:
            jm.spawn_thread("thread", blocking, 1)
            jm.spawn_process("process", blocking, 2)
            jm.spawn_future("future", done)
            jm.spawn_submit("submit", pool, blocking, 4)
            assert dict(await jm.join_all()) == {
                "thread": 2,
                "process": 4,
                "future": 7,
                "submit": 8,
            }


async def test_spawn_future_name_must_be_a_string() -> None:
    """S3: spawn_future(name=) is checked at the call."""
    future: Future[int] = Future()
    async with JoinSet[int]() as js:
        with pytest.raises(TypeError, match=r"^JoinSet.spawn_future\(\) name must be a str"):
            js.spawn_future(future, name=1)  # type: ignore[arg-type]
        assert len(js) == 0


async def test_map_after_the_block_and_during_shutdown() -> None:
    """S20: map() iterated after the block raises; started while a shutdown runs it
    feeds nothing and ends once the set is empty."""
    async with JoinSet[int]() as js:
        late = js.map(value_of, [1])
    with pytest.raises(RuntimeError, match="closed"):
        await late.__anext__()

    async with JoinSet[int]() as js:
        release = anyio.Event()

        js.spawn(unwind_after, release)
        await anyio.wait_all_tasks_blocked()
        fed: list[object] = []

        async def during_shutdown() -> None:
            fed.extend([item async for item, _ in js.map(value_of, [10, 20])])

        async with anyio.create_task_group() as tg:
            tg.start_soon(js.shutdown)
            await anyio.wait_all_tasks_blocked()  # shutdown waits for stubborn
            tg.start_soon(during_shutdown)
            await anyio.wait_all_tasks_blocked()
            release.set()
        assert fed == []
        assert len(js) == 0


async def test_map_aclose_stops_the_feeding() -> None:
    """S20: aclose() stops taking inputs; tasks already spawned still come out."""
    taken: list[int] = []

    def inputs() -> Any:
        for i in range(1000):
            taken.append(i)
            yield i

    async with JoinSet[int](limit=2) as js:
        feed = js.map(value_of, inputs())
        first = await feed.__anext__()
        await feed.aclose()
        await anyio.wait_all_tasks_blocked()
        before = len(taken)
        rest = [o async for o in js]
        await anyio.wait_all_tasks_blocked()
        assert len(taken) == before <= 3
        assert first[0] == 0
        assert len(rest) == before - 1


async def test_two_feeds_share_the_set() -> None:
    """S20: two map() loops at once each end once their inputs are exhausted and the
    set is empty; every item comes out exactly once."""
    got: list[object] = []
    async with JoinSet[int](limit=2) as js:

        async def loop(items: list[int]) -> None:
            async for item, _ in js.map(value_of, items):
                got.append(item)

        async with anyio.create_task_group() as tg:
            tg.start_soon(loop, [1, 2, 3])
            tg.start_soon(loop, [4, 5, 6])
    assert sorted(got, key=lambda x: -1 if x is None else x) == [1, 2, 3, 4, 5, 6]  # type: ignore[operator]


async def test_cancelled_join_all_after_the_key_was_respawned_discards_the_old_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S11, S16: a cancelled join_all puts back what it took, except a key that got a
    new task meanwhile: that outcome is discarded (a failure logged, S13)."""
    caplog.set_level(logging.WARNING, logger="anyio_joinset")
    async with JoinMap[str, object]() as jm:

        async def boom() -> None:
            await checkpoint()
            raise ValueError("old")

        jm.spawn("k", boom)
        slow = Gate()
        jm.spawn("slow", slow.wait, "slow")
        async with anyio.create_task_group() as tg:
            joining = anyio.CancelScope()

            async def join_all() -> None:
                with joining:
                    await jm.join_all(fail_fast=False)

            tg.start_soon(join_all)
            await anyio.wait_all_tasks_blocked()
            assert "k" not in jm  # taken by join_all
            jm.spawn("k", value_of, "new")
            joining.cancel()
        assert set(jm.keys()) == {"slow", "k"}
        assert any("old" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
        slow.release.set()
        assert dict(await jm.join_all()) == {"k": "new", "slow": "slow"}


async def test_put_back_wakes_a_waiting_joiner() -> None:
    """S5, S11: outcomes a cancelled join_all puts back go to a join_next already
    waiting in another task."""
    async with JoinSet[int]() as js:
        first = Gate()
        second = Gate()
        js.spawn(first.wait, 1)
        js.spawn(second.wait, 2)
        scope = anyio.CancelScope()
        got: list[object] = []

        async def join_all() -> None:
            with scope:
                await js.join_all()

        async def join_next() -> None:
            outcome = await js.join_next()
            assert outcome is not None
            got.append(outcome.result())

        async with anyio.create_task_group() as tg:
            tg.start_soon(join_all)
            await anyio.wait_all_tasks_blocked()
            first.release.set()
            await anyio.wait_all_tasks_blocked()  # join_all took 1 and waits on
            tg.start_soon(join_next)
            await anyio.wait_all_tasks_blocked()  # join_next waits
            scope.cancel()  # 1 goes back, to the waiting join_next
        assert got == [1]
        second.release.set()
        assert await js.join_all() == [2]


async def test_leaving_wakes_a_producer_waiting_for_capacity() -> None:
    """S14: a producer waiting in wait_for_capacity when the block is left returns."""
    returned = anyio.Event()
    async with anyio.create_task_group() as tg, JoinSet[None](limit=1) as js:
        js.spawn(anyio.sleep_forever)

        async def producer() -> None:
            await js.wait_for_capacity()
            returned.set()

        tg.start_soon(producer)
        await anyio.wait_all_tasks_blocked()
        assert not returned.is_set()
    assert returned.is_set()


@pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mock-clock")],
)
async def test_wait_for_capacity_waits_for_the_queue_of_rate_turns() -> None:
    """S14 with S18: wait_for_capacity returns once nobody waits for a start turn and
    the next one is due (virtual time)."""
    t0 = anyio.current_time()
    async with JoinSet[None](rate=(1, 1.0)) as js:
        for _ in range(3):
            js.spawn(checkpoint)
        await anyio.wait_all_tasks_blocked()
        await js.wait_for_capacity()
        assert anyio.current_time() - t0 == pytest.approx(3.0)
        await js.shutdown()


async def test_a_group_of_cancellations_alone_is_a_cancelled_outcome(
    anyio_backend_name: str,
) -> None:
    """S6: a task ending in a group that holds only the backend's cancellation ends
    cancelled, not as an uncaptured BaseException. (On Trio a cancel scope takes its
    own Cancelled out of such a group, so only asyncio can end a task this way.)"""
    if anyio_backend_name != "asyncio":
        pytest.skip("only asyncio lets a group of cancellations end a task")

    async def grouped() -> None:
        await checkpoint()
        raise BaseExceptionGroup("only", [asyncio.CancelledError()])

    async with JoinSet[None]() as js:
        js.spawn(grouped)
        js.spawn(value_of, None)
        outcomes = [o async for o in js]
    assert sorted(o.cancelled() for o in outcomes) == [False, True]


async def test_a_feed_ends_while_another_feed_still_waits_for_inputs() -> None:
    """S20, liveness: a map() loop waiting on an empty set ends when its own feeder
    runs out of inputs, even while a second feeder of the same set is still alive
    (waiting on inputs that never come)."""
    never_send, never_receive = anyio.create_memory_object_stream[int]()
    release = anyio.Event()

    async def inputs() -> Any:
        yield 1
        await release.wait()  # exhausted only once the loop waits on an empty set

    got: list[object] = []
    async with JoinSet[int](limit=4) as js:
        other = js.map(value_of, never_receive)
        with anyio.move_on_after(0):
            await other.__anext__()  # starts the other feeder, which stays blocked
        async with anyio.create_task_group() as tg:

            async def loop() -> None:
                async for item, _ in js.map(value_of, inputs()):
                    got.append(item)
                got.append("ended")

            tg.start_soon(loop)
            await anyio.wait_all_tasks_blocked()
            assert got == [1]  # and the loop waits: its feeder is still alive
            release.set()
        await other.aclose()
    never_send.close()
    never_receive.close()
    assert got == [1, "ended"]


async def test_stopping_a_feed_closes_async_generator_inputs_inside_the_block() -> None:
    """S20: when feeding stops (here: by leaving the block), an async generator it
    was reading is closed before the block ends, not later by the garbage collector."""
    events: list[str] = []

    async def inputs() -> Any:
        try:
            for i in range(1000):
                yield i
        finally:
            with anyio.CancelScope(shield=True):
                await checkpoint()
            events.append("inputs closed")

    async with JoinSet[int](limit=2) as js:
        feed = js.map(value_of, inputs())
        await feed.__anext__()
        events.append("leaving")
    events.append("left")
    assert events == ["leaving", "inputs closed", "left"]


async def test_a_cancelled_shutdown_leaves_a_concurrent_one_in_charge() -> None:
    """S9: two shutdowns at once; the first is cancelled while the second still waits:
    a task spawned then is still aborted before it starts."""
    release = anyio.Event()
    ran: list[str] = []

    async def body() -> None:
        ran.append("ran")  # pragma: no cover - must never run

    async with JoinSet[None]() as js:
        js.spawn(unwind_after, release)
        await anyio.wait_all_tasks_blocked()
        first = anyio.CancelScope()

        async def first_shutdown() -> None:
            with first:
                await js.shutdown()

        async with anyio.create_task_group() as tg:
            tg.start_soon(first_shutdown)
            tg.start_soon(js.shutdown)
            await anyio.wait_all_tasks_blocked()
            first.cancel()
            await anyio.wait_all_tasks_blocked()
            js.spawn(body)
            release.set()
        assert len(js) == 0
    assert ran == []


async def test_off_loop_spawns_refused_outside_the_block_close_a_coroutine() -> None:
    """S3: spawn_thread/spawn_submit/spawn_process given a coroutine object outside
    the block raise and close it (no "never awaited" warning)."""
    async with JoinSet[int]() as js:
        pass
    with ThreadPoolExecutor(1) as pool:
        for call in (
            js.spawn_thread,
            js.spawn_process,
            lambda coro: js.spawn_submit(pool, coro),
        ):
            coro = value_of(1)
            with pytest.raises(RuntimeError, match="closed"):
                call(coro)
            assert coro.cr_frame is None


async def test_aborted_waiting_handles_do_not_pile_up() -> None:
    """S7, S14: with one task always waiting, spawning and aborting many more keeps the
    slot queue as small as the waiting tasks (memory follows the live tasks)."""
    async with JoinSet[None](limit=1) as js:
        js.spawn(anyio.sleep_forever)
        js.spawn(anyio.sleep_forever)  # always waiting
        for _ in range(5000):
            js.spawn(anyio.sleep_forever).abort()
            outcome = js.try_join_next()
            assert outcome is not None
            assert outcome.cancelled()
        assert js.stats().waiting == 1
        assert len(js._slots._queue) <= 2 * 1 + 64  # type: ignore[union-attr]
        js.abort_all()


async def test_leaving_the_block_while_another_task_shuts_the_set_down() -> None:
    """S9, S13: a shutdown still waiting when the block is left ends with the block;
    the set is closed afterwards, not put back to open."""
    release = anyio.Event()
    shutdown_ended = anyio.Event()

    async with anyio.create_task_group() as tg:
        async with JoinSet[None]() as js:
            js.spawn(unwind_after, release)
            await anyio.wait_all_tasks_blocked()

            async def shut_down() -> None:
                await js.shutdown()
                shutdown_ended.set()

            async def release_later() -> None:
                await anyio.wait_all_tasks_blocked()  # the block is being left
                release.set()

            tg.start_soon(shut_down)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(release_later)
        await shutdown_ended.wait()
    assert "closed" in repr(js)
    with pytest.raises(RuntimeError, match="closed"):
        js.spawn(value_of, 1)


@pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mock-clock")],
)
async def test_a_waiter_behind_the_head_of_the_rate_queue_leaves_quietly() -> None:
    """S18: aborting a task that waits behind others for its rate turn leaves the
    order of the others and their start times as they were (virtual time)."""
    t0 = anyio.current_time()
    started: dict[str, float] = {}

    async def record(name: str) -> None:
        started[name] = anyio.current_time() - t0

    async with JoinSet[None](rate=(1, 1.0)) as js:
        js.spawn(record, "first")
        await anyio.wait_all_tasks_blocked()  # it took the turn at 0
        js.spawn(record, "second")
        await anyio.wait_all_tasks_blocked()  # head of the queue, due at 1
        third = js.spawn(record, "third")
        await anyio.wait_all_tasks_blocked()
        js.spawn(record, "fourth")
        await anyio.wait_all_tasks_blocked()
        third.abort()  # behind the head: leaves without waking anyone
        assert len([o async for o in js]) == 4
    assert started == pytest.approx({"first": 0.0, "second": 1.0, "fourth": 2.0})


@pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mock-clock")],
)
async def test_two_producers_wait_for_the_same_rate_capacity() -> None:
    """S14 with S18: two producers waiting at once both return once nobody waits for
    a start turn and the next one is due (virtual time)."""
    t0 = anyio.current_time()
    returned: list[float] = []
    async with JoinSet[None](rate=(1, 1.0)) as js:
        for _ in range(3):
            js.spawn(checkpoint)
        await anyio.wait_all_tasks_blocked()

        async def producer() -> None:
            await js.wait_for_capacity()
            returned.append(anyio.current_time() - t0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            tg.start_soon(producer)
        await js.shutdown()
    assert returned == pytest.approx([3.0, 3.0])


async def test_map_reads_an_async_iterator_without_aclose() -> None:
    """S20: any async iterable feeds the set, with or without an aclose()."""

    class Countdown:
        def __init__(self, n: int) -> None:
            self.n = n

        def __aiter__(self) -> Countdown:
            return self

        async def __anext__(self) -> int:
            await checkpoint()
            if not self.n:
                raise StopAsyncIteration
            self.n -= 1
            return self.n

    async with JoinSet[int](limit=2) as js:
        got = sorted([item async for item, _ in js.map(value_of, Countdown(5))])  # type: ignore[type-var]
    assert got == [0, 1, 2, 3, 4]
