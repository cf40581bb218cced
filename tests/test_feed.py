"""map() and its Feed (S20, with S2, S3, S13, S14, S18): lifetime, ownership, errors, rate."""

from __future__ import annotations

import gc
import inspect
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from anyio.lowlevel import checkpoint

from anyio_joinset import JoinMap, JoinSet
from helpers import VIRTUAL_TIME, Gate, forever, value_of


def in_another_loop(func: Any) -> Any:
    """Run an async callable in an event loop of a worker thread's own (abandoned if
    the test's deadline cancels the wait: a test of misuse fails, never hangs)."""
    return anyio.to_thread.run_sync(lambda: anyio.run(func), abandon_on_cancel=True)


# -- item 1: an error of the inputs is raised at once ------------------------------


async def test_an_inputs_error_is_raised_while_a_task_spawned_by_hand_still_runs() -> None:
    """S20: an error of the inputs is raised by the step already waiting, at once,
    though a task spawned by hand still runs."""
    error = ValueError("inputs broke")
    go = anyio.Event()

    async def inputs() -> AsyncIterator[int]:
        yield 1
        await go.wait()
        raise error

    gate = Gate()
    got: list[object] = []
    async with JoinSet[object]() as js:
        js.spawn(gate.wait)
        feed = js.map(value_of, inputs())
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                try:
                    async for item, _ in feed:
                        got.append(item)
                except ValueError as exc:
                    got.append(exc)

            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            assert got == [1]  # and the step waits: the hand-spawned task runs
            go.set()
            await anyio.wait_all_tasks_blocked()
            raised_while_running = got == [1, error] and not gate.finished
            gate.release.set()
        assert raised_while_running, got
        assert [o.result() async for o in js] == [None]


# -- item 2: the Feed's protocol ---------------------------------------------------


async def test_a_feed_stepped_before_the_block_is_entered_raises_not_open_yet() -> None:
    """S3, S20: a Feed of a set not entered yet refuses its first step (and its
    async with) with S3's "not open yet", and feeds once the set is open."""
    js = JoinSet[int]()
    feed = js.map(value_of, [1, 2])
    message = r"^This JoinSet is not open yet; call map\(\) inside its async with block\.$"
    with pytest.raises(RuntimeError, match=message):
        await feed.__anext__()
    with pytest.raises(RuntimeError, match=message):
        await feed.__aenter__()
    async with js:
        assert sorted([item async for item, _ in feed]) == [1, 2]


async def test_a_first_step_refused_from_another_thread_does_not_start_the_feed() -> None:
    """S2, S20: a first step from another thread raises and starts nothing; the Feed
    then feeds normally from its own event loop."""
    async with JoinSet[int]() as js:
        feed = js.map(value_of, [1, 2])
        with pytest.raises(RuntimeError, match=r"^JoinSet\.map\(\) was called from another thread"):
            await in_another_loop(feed.__anext__)
        assert sorted([item async for item, _ in feed]) == [1, 2]


async def test_aclose_from_another_thread_is_refused() -> None:
    """S2, S20: Feed.aclose() from another thread or event loop raises and stops nothing."""
    async with JoinSet[int](limit=1) as js:
        feed = js.map(value_of, [1, 2, 3])
        message = r"^JoinSet\.map\(\)\.aclose\(\) was called from another thread or event loop"
        with pytest.raises(RuntimeError, match=message):
            await in_another_loop(feed.aclose)
        first = await feed.__anext__()  # not closed: it feeds
        with pytest.raises(RuntimeError, match=message):
            await in_another_loop(feed.aclose)
        rest = [item async for item, _ in feed]
    assert sorted([first[0], *rest]) == [1, 2, 3]


async def test_aclose_before_the_first_step_stops_the_feed_for_good() -> None:
    """S20: aclose() before the first step: the Feed never takes an input."""
    taken: list[int] = []

    def inputs() -> Iterator[int]:
        for i in range(3):
            taken.append(i)
            yield i

    async with JoinSet[int]() as js:
        feed = js.map(value_of, inputs())
        await feed.aclose()
        assert [item async for item, _ in feed] == []
        await anyio.wait_all_tasks_blocked()
        assert taken == []
        assert len(js) == 0


async def test_aclose_returns_after_an_async_generator_input_is_finalized() -> None:
    """S20: aclose() returns only once the async generator it read has run its finally."""
    events: list[str] = []

    async def inputs() -> AsyncIterator[int]:
        try:
            for i in range(100):
                yield i
        finally:
            with anyio.CancelScope(shield=True):
                for _ in range(3):
                    await checkpoint()
            events.append("inputs closed")

    async with JoinSet[int](limit=1) as js:
        feed = js.map(value_of, inputs())
        await feed.__anext__()
        await feed.aclose()
        events.append("aclose returned")
        assert events == ["inputs closed", "aclose returned"]
        with pytest.raises(StopAsyncIteration):
            await feed.__anext__()  # closed: exhausted for good


async def test_an_exhausted_feed_stays_exhausted() -> None:
    """S20: once a Feed raised StopAsyncIteration it always does (the iterator
    protocol), even when tasks are spawned into the set later."""
    async with JoinSet[int]() as js:
        feed = js.map(value_of, [1])
        assert [item async for item, _ in feed] == [1]
        js.spawn(value_of, 2)
        with pytest.raises(StopAsyncIteration):
            await feed.__anext__()
        assert len(js) == 1
        assert [o.result() async for o in js] == [2]


async def test_map_of_a_coroutine_object_closes_it() -> None:
    """S3: map(func, a coroutine object) raises TypeError and closes the coroutine
    (no "never awaited" warning follows)."""
    coro = value_of(1)
    async with JoinSet[int]() as js:
        with pytest.raises(
            TypeError,
            match=r"^JoinSet\.map\(\) expects its inputs as an iterable or an async iterable, "
            r"got coroutine\.$",
        ):
            js.map(value_of, coro)  # type: ignore[arg-type]
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


async def test_map_of_a_coroutine_object_as_func_closes_it() -> None:
    """S3: map(a coroutine object, inputs) raises TypeError and closes it."""
    coro = value_of(1)
    async with JoinSet[int]() as js:
        with pytest.raises(TypeError, match=r"^JoinSet\.map\(\) expects a callable"):
            js.map(coro, [1])  # type: ignore[arg-type]
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


# -- issue 13 item 6: a block of its own, lazy bare form, ownership of the inputs --


async def test_a_feed_block_feeds_until_it_is_left_and_waits_for_the_inputs_cleanup() -> None:
    """S20: async with js.map(...) feeds from entry; leaving the block stops the
    feeding and returns once the async generator input has run its finally. The
    tasks it spawned stay in the set."""
    events: list[str] = []
    taken: list[int] = []

    async def inputs() -> AsyncIterator[int]:
        try:
            for i in range(100):
                taken.append(i)
                yield i
        finally:
            with anyio.CancelScope(shield=True):
                await checkpoint()
            events.append("inputs closed")

    async with JoinSet[int](limit=2) as js:
        async with js.map(value_of, inputs()) as feed:
            await anyio.wait_all_tasks_blocked()
            assert taken == [0, 1]  # fed before any step: the block started it
            item, outcome = await feed.__anext__()
            assert outcome.result() == item
        events.append("left")
        assert events == ["inputs closed", "left"]
        with pytest.raises(StopAsyncIteration):
            await feed.__anext__()
        await anyio.wait_all_tasks_blocked()
        assert len(taken) <= 3  # stopped: no input taken since
        rest = [o.result() async for o in js]  # the tasks it spawned stay in the set
        assert sorted([item, *rest]) == taken


async def test_a_feed_block_entered_twice_or_after_iterating_raises() -> None:
    """S20: a Feed's block is entered once, before any step."""
    async with JoinSet[int]() as js:
        feed = js.map(value_of, [1])
        await feed.__anext__()
        message = r"^This JoinSet\.map\(\) Feed was already started; enter it with async with once"
        with pytest.raises(RuntimeError, match=message):
            async with feed:
                pass  # pragma: no cover
        await feed.aclose()
        with pytest.raises(RuntimeError, match=message):
            async with feed:
                pass  # pragma: no cover


async def test_a_dropped_feed_never_iterated_warns() -> None:
    """S20: map() is lazy: a Feed dropped without being iterated or entered fed
    nothing, and says so with a RuntimeWarning (as an un-awaited coroutine does)."""
    async with JoinSet[int]() as js:
        with pytest.warns(
            RuntimeWarning, match=r"^JoinSet\.map\(\) returned a Feed that was never"
        ):
            js.map(value_of, [1, 2])  # dropped at once (reference counting)
        assert await js.join_all() == []


async def test_breaking_out_never_closes_the_callers_receive_stream() -> None:
    """S20: breaking out of async for over js.map(f, receive_stream) stops taking
    from the stream but leaves it open: its queued items stay, its producer goes on."""
    send, receive = anyio.create_memory_object_stream[int](10)
    async with send, receive, JoinSet[int](limit=1) as js:
        for i in range(5):
            send.send_nowait(i)
        async for item, _ in js.map(value_of, receive):
            assert item == 0
            break
        await anyio.wait_all_tasks_blocked()
        send.send_nowait(5)  # no BrokenResourceError: the stream is still open
        rest = [receive.receive_nowait() for _ in range(receive.statistics().current_buffer_used)]
        assert len(rest) >= 3
        assert rest[-1] == 5
        fed = [o.result() async for o in js]
        assert sorted([0, *fed, *rest]) == list(range(6))  # nothing lost


async def test_the_feed_closes_only_the_iterators_it_made() -> None:
    """S20: an iterable whose __iter__/__aiter__ makes a new iterator: the Feed made
    it, so it closes it when feeding stops; an iterator passed in is the caller's."""
    closed: list[str] = []

    class SyncNumbers:
        def __iter__(self) -> Iterator[int]:
            try:
                yield from range(100)
            finally:
                closed.append("sync")

    class AsyncNumbers:
        async def numbers(self) -> AsyncIterator[int]:
            try:
                for i in range(100):
                    yield i
            finally:
                closed.append("async")

        def __aiter__(self) -> AsyncIterator[int]:
            return self.numbers()

    held = iter(range(100))
    async with JoinSet[int](limit=1) as js:
        for inputs in (SyncNumbers(), AsyncNumbers(), AsyncNumbers().numbers(), held):
            async with js.map(value_of, inputs) as feed:  # type: ignore[arg-type]
                await feed.__anext__()
        await js.shutdown()
        assert closed == ["sync", "async", "async"]  # the generator object passed too
        assert next(held) >= 1  # the caller's iterator is still usable


async def test_an_item_taken_as_the_block_is_left_is_handed_back() -> None:
    """S20: no item taken from the inputs is lost: one taken while the block is being
    left (the set can no longer spawn it) is in Feed.unfed."""
    go = anyio.Event()

    class Stubborn:
        """Its second item arrives only after the block began to close."""

        def __init__(self) -> None:
            self.sent = 0

        def __aiter__(self) -> Stubborn:
            return self

        async def __anext__(self) -> int:
            self.sent += 1
            if self.sent == 2:
                with anyio.CancelScope(shield=True):
                    await go.wait()
            elif self.sent > 2:
                raise StopAsyncIteration  # pragma: no cover - feeding stopped first
            return self.sent

    async def release_when_the_body_waits() -> None:
        await anyio.wait_all_tasks_blocked()
        go.set()

    async with anyio.create_task_group() as outer, JoinSet[int]() as js:
        feed = js.map(value_of, Stubborn())
        assert (await feed.__anext__())[0] == 1
        outer.start_soon(release_when_the_body_waits)
    assert feed.unfed == [2]


async def test_an_unhashable_key_is_handed_back() -> None:
    """S16, S20: a JoinMap fed an unhashable item raises, and that item is in unfed."""
    async with JoinMap[Any, object]() as jm:
        feed = jm.map(value_of, [[1]])
        with pytest.raises(TypeError, match=r"^JoinMap\.map\(\) needs a hashable key"):
            await feed.__anext__()
        assert feed.unfed == [[1]]


# -- item 4: a kept Feed's cancelled consumer passes its wake-up on -----------------


async def test_a_cancelled_feed_consumer_passes_its_wake_up_on() -> None:
    """S5 (invariant 3), S20: a Feed's consumer woken for an outcome and cancelled
    before it runs takes it or passes the wake-up on to a join_next waiting in another
    task, though the Feed is kept in a variable (so it keeps feeding)."""
    send, receive = anyio.create_memory_object_stream[int]()
    got: list[object] = []
    async with send, receive, JoinSet[int](limit=1) as js:
        feed = js.map(value_of, receive)
        scope = anyio.CancelScope()

        async def consumer() -> None:
            with scope:
                _, outcome = await feed.__anext__()
                got.append(outcome.cancelled())  # woken and took it before the cancel

        async def joiner() -> None:
            outcome = await js.join_next()
            assert outcome is not None
            got.append(outcome.cancelled())

        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            await anyio.wait_all_tasks_blocked()  # it waits on an empty set
            running = js.spawn(forever)
            queued = js.spawn(value_of, 2)  # waits for the slot
            tg.start_soon(joiner)
            await anyio.wait_all_tasks_blocked()  # it waits too, after the consumer
            queued.abort()  # an outcome at once: wakes the consumer...
            scope.cancel()  # ...which is cancelled before it runs
            await anyio.wait_all_tasks_blocked()
            handed_out = got == [True]  # to the consumer, or passed on to the joiner
            running.abort()
        assert handed_out, got
        await feed.aclose()


# -- item 5: what stops a kept Feed, and an inputs error nobody raised ---------------


@pytest.mark.parametrize("combinator", ["first_success", "join_all"])
async def test_first_success_and_a_failing_join_all_stop_a_kept_feed_for_good(
    combinator: str,
) -> None:
    """S11, S19, S20: first_success() and a fail-fast join_all() abort everything
    and stop a kept Feed for good: it takes no more inputs, hands out what is left
    and is exhausted."""
    send, receive = anyio.create_memory_object_stream[int]()

    async def work(i: int) -> int:
        await checkpoint()
        if i < 0:
            raise ValueError(i)
        return i

    async with send, receive, JoinSet[int]() as js:
        feed = js.map(work, receive)
        assert not [x async for x in js]  # nothing yet; starts nothing either
        async with feed:
            await send.send(1 if combinator == "first_success" else -1)
            if combinator == "first_success":
                assert await js.first_success() == 1
            else:
                with pytest.raises(ValueError, match="-1"):
                    await js.join_all()
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(anyio.WouldBlock):
                send.send_nowait(2)  # nobody receives any more
            assert [x async for x in feed] == []
        js.spawn(work, 3)
        assert await js.join_all() == [3]  # the set itself goes on


async def test_an_inputs_error_no_step_raised_is_logged_when_the_block_is_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S13, S20: an error of the inputs stored on a Feed that nobody steps again is
    logged at WARNING on the anyio_joinset logger when the set's block is left."""
    caplog.set_level(logging.WARNING, logger="anyio_joinset")
    error = ValueError("inputs broke")
    go = anyio.Event()

    async def inputs() -> AsyncIterator[int]:
        yield 1
        await go.wait()
        raise error

    async with JoinSet[int]() as js:
        feed = js.map(value_of, inputs())
        assert (await feed.__anext__())[0] == 1
        go.set()
        await anyio.wait_all_tasks_blocked()
        assert not caplog.records  # still raisable by the next step
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[1] is error]
    assert len(logged) == 1
    assert logged[0].levelno == logging.WARNING
    assert logged[0].getMessage().startswith("JoinSet.map(): the inputs raised an exception")
    del feed


@pytest.mark.parametrize("how", ["aclose", "block", "drop"])
async def test_an_inputs_error_no_step_raised_is_logged_when_the_feed_closes(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """S13, S20: an inputs error no step raised is logged once the Feed is closed
    (aclose, its block left, or dropped), never raised there."""
    caplog.set_level(logging.WARNING, logger="anyio_joinset")
    error = ValueError("inputs broke")

    def inputs() -> Iterator[int]:
        raise error
        yield  # pragma: no cover

    async with JoinSet[int]() as js:
        if how == "block":
            async with js.map(value_of, inputs()):
                await anyio.wait_all_tasks_blocked()
        else:
            feed = js.map(value_of, inputs())
            with anyio.move_on_after(0):
                await feed.__aenter__()
            await anyio.wait_all_tasks_blocked()
            if how == "aclose":
                await feed.aclose()
            del feed
            gc.collect()
        assert [r.exc_info[1] for r in caplog.records if r.exc_info] == [error]


async def test_an_inputs_error_raised_by_a_step_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S13, S20: an error a step raised was handed over: nothing is logged."""
    caplog.set_level(logging.WARNING, logger="anyio_joinset")

    def inputs() -> Iterator[int]:
        raise ValueError
        yield  # pragma: no cover

    async with JoinSet[int]() as js, js.map(value_of, inputs()) as feed:
        with pytest.raises(ValueError):
            await feed.__anext__()
    assert not caplog.records


# -- item 3: limit and rate together, and the rate's "could start at once" -------------


@VIRTUAL_TIME
async def test_two_producers_under_limit_and_rate_never_overfill() -> None:
    """S14, S18: wait_for_capacity checks the slot again after the rate turn: two
    producers under limit=2, rate=(1, 1.0) never make a third task (virtual time)."""
    async with JoinSet[None](limit=2, rate=(1, 1.0)) as js:
        js.spawn(forever)
        spawned: list[float] = []

        async def producer() -> None:
            await js.wait_for_capacity()
            spawned.append(anyio.current_time())
            js.spawn(forever)

        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            tg.start_soon(producer)
            await anyio.sleep(10)
            assert len(spawned) == 1
            assert len(js) == 2
            assert js.stats().waiting == 0
            await js.shutdown()  # frees the slots: the other producer returns
        assert len(spawned) == 2


@VIRTUAL_TIME
async def test_wait_for_capacity_returns_when_a_task_would_start_at_once() -> None:
    """S14, S18: under rate, each task spawned when wait_for_capacity returns starts
    at once, on every backend: Trio runs ready tasks in any order, and the previous
    task may not have taken its turn yet (virtual time)."""
    returned: list[float] = []
    starts: list[float] = []

    async def record() -> None:
        starts.append(anyio.current_time())

    t0 = anyio.current_time()
    async with JoinSet[None](rate=(1, 1.0)) as js:
        for _ in range(40):
            await js.wait_for_capacity()
            returned.append(anyio.current_time())
            js.spawn(record)
        assert len([o async for o in js]) == 40
    assert starts == returned
    assert [t - t0 for t in starts] == pytest.approx([float(k) for k in range(40)])


@VIRTUAL_TIME
@pytest.mark.parametrize("limit", [None, 2])
async def test_a_rate_limited_feed_takes_each_input_when_its_task_can_start(
    limit: int | None,
) -> None:
    """S18, S20: a feed under rate takes each input only when its task could start
    at once, never an interval early (virtual time)."""
    taken: list[float] = []
    starts: list[float] = []

    def inputs() -> Iterator[int]:
        for i in range(20):
            taken.append(anyio.current_time())
            yield i

    async def record(i: int) -> int:
        starts.append(anyio.current_time())
        return i

    async with JoinSet[int](limit=limit, rate=(1, 1.0)) as js:
        got = [item async for item, _ in js.map(record, inputs())]
    assert sorted(got) == list(range(20))  # type: ignore[type-var]
    assert taken == starts


@VIRTUAL_TIME
async def test_a_refused_task_start_under_rate_owes_no_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """S3, S14, S18: a task start the backend refuses leaves no turn owed:
    wait_for_capacity still returns at once (virtual time)."""
    async with JoinSet[object](rate=(1, 1.0)) as js:

        def refuse(coro: object, **_options: object) -> None:
            coro.close()  # type: ignore[attr-defined]
            msg = "refused"
            raise RuntimeError(msg)

        monkeypatch.setattr(js._tg, "create_task", refuse)
        with pytest.raises(RuntimeError, match=r"^refused$"):
            js.spawn(value_of, 1)
        monkeypatch.undo()
        t0 = anyio.current_time()
        await js.wait_for_capacity()
        assert anyio.current_time() == t0
