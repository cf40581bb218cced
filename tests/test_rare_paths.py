"""Rare paths of this round's engine (S16, S21-S23, S13), each through the public API."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import anyio
import pytest
from anyio.abc import TaskStatus

from anyio_joinset import JoinMap, JoinSet, TaskState
from helpers import OLD_ANYIO_LEAKS, BaseExceptionGroup, fail_with, forever, unwind_after, value_of


async def test_spawn_during_shutdown_with_a_name_never_runs() -> None:
    """S9: a named plain async def spawned while shutdown() waits is aborted before it starts."""
    release = anyio.Event()
    async with JoinSet[object]() as js, anyio.create_task_group() as tg:
        js.spawn(unwind_after, release)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(js.shutdown)
        await anyio.wait_all_tasks_blocked()
        late = js.spawn(value_of, 1, name="late")
        release.set()
        await late.wait()
        assert late.name == "late"
        assert late.state is TaskState.DETACHED or late.done()


@pytest.fixture
def asyncio_loop(anyio_backend: tuple[str, dict[str, Any]]) -> None:
    if anyio_backend[0] != "asyncio":
        pytest.skip("an asyncio task factory refuses the start")


def _refuse(*_args: object, **_kwargs: object) -> Any:
    msg = "no new tasks"
    raise OSError(msg)


async def _ready(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    task_status.started()


@pytest.mark.usefixtures("asyncio_loop")
@OLD_ANYIO_LEAKS
async def test_refused_starts_under_limit_and_by_start_leave_the_set_unchanged() -> None:
    """S3/S21: a start the backend refuses (limit path, start()) changes neither len nor stats."""
    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()
    async with JoinSet[object](limit=2) as js:
        before = (len(js), js.stats())
        loop.set_task_factory(_refuse)
        try:
            with pytest.raises(OSError, match=r"^no new tasks$"):
                js.spawn(value_of, 1)
            with pytest.raises(OSError, match=r"^no new tasks$"):
                await js.start(_ready)
        finally:
            loop.set_task_factory(factory)
        assert (len(js), js.stats()) == before


async def test_wait_on_one_handle_while_another_finishes() -> None:
    """S23: a task finishing wakes only the callers waiting on its own handle."""
    release = anyio.Event()
    async with JoinSet[object]() as js, anyio.create_task_group() as tg:
        slow = js.spawn(unwind_after, release)
        waited: list[str] = []

        async def waiter() -> None:
            await slow.wait()
            waited.append("slow")

        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        # Spawned only now that the waiter waits: it finishes while another
        # handle is watched, on every backend whatever order a batch runs in.
        other = js.spawn(value_of, 1)
        await anyio.wait_all_tasks_blocked()
        assert other.done()
        assert waited == []
        slow.abort()
        release.set()
        await anyio.wait_all_tasks_blocked()
        assert waited == ["slow"]
        assert len([outcome async for outcome in js]) == 2


async def test_wait_on_a_detached_task_returns_when_it_ends() -> None:
    """S22/S23: handle.wait() on a detached task returns when the task ends."""
    release = anyio.Event()
    waited: list[str] = []
    async with JoinSet[object]() as js, anyio.create_task_group() as tg:
        handle = js.spawn(unwind_after, release)
        handle.detach()

        async def waiter() -> None:
            await handle.wait()
            waited.append("detached")

        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        assert waited == []
        handle.abort()
        release.set()
        await anyio.wait_all_tasks_blocked()
        assert waited == ["detached"]
        assert handle.done()
        assert len(js) == 0


class Interrupt(BaseException):
    """Not an Exception (S6)."""


async def test_a_lost_task_wakes_its_handles_waiters() -> None:
    """S6/S23: a task ended by an uncaptured BaseException wakes handle.wait() callers."""

    async def interrupted() -> None:
        await anyio.lowlevel.checkpoint()
        raise Interrupt

    woke: list[bool] = []
    with pytest.raises((Interrupt, BaseExceptionGroup)):
        async with anyio.create_task_group() as tg, JoinSet[None]() as js:
            handle = js.spawn(interrupted)

            async def waiter() -> None:
                with anyio.CancelScope(shield=True):
                    await handle.wait()
                    woke.append(True)

            tg.start_soon(waiter)
            await anyio.sleep_forever()
    assert woke == [True]


async def test_a_replaced_finished_task_left_in_the_stream_is_skipped_at_exit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S16/S13: a finished task replaced under its key is skipped at block exit, logged once."""
    error = ValueError("replaced")
    with caplog.at_level(logging.WARNING, logger="anyio_joinset"):
        async with JoinMap[str, object]() as jm:
            jm.spawn("k", fail_with, error)
            await anyio.wait_all_tasks_blocked()
            jm.spawn("k", forever)  # the failed one stays in the stream, skipped
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert logged == [error]


async def _join_all_cancelled_midway(jm: JoinMap[str, object]) -> None:
    """Run join_all until it has taken the ready outcomes, then cancel it (S11)."""
    await anyio.wait_all_tasks_blocked()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_when_waiting() -> None:
                await anyio.wait_all_tasks_blocked()  # join_all holds what was ready
                scope.cancel()

            tg.start_soon(cancel_when_waiting)
            await jm.join_all(fail_fast=False)
    assert scope.cancelled_caught


async def test_detach_all_drops_put_back_and_failed_outcomes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S22/S11/S13: detach_all drops outcomes put back by a cancelled join_all; failures logged."""
    error = ValueError("dropped")
    with caplog.at_level(logging.WARNING, logger="anyio_joinset"):
        async with JoinMap[str, object]() as jm:
            jm.spawn("ok", value_of, 1)
            jm.spawn("bad", fail_with, error)
            jm.spawn("slow", forever)
            await _join_all_cancelled_midway(jm)  # puts "ok" and "bad" back
            jm.spawn("late", fail_with, KeyError("late"))
            await anyio.wait_all_tasks_blocked()
            jm.detach_all()
            assert (len(jm), list(jm.keys())) == (0, [])
            assert jm.try_join_next() is None
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert len(logged) == 1
    assert {type(e) for e in logged[0].exceptions} == {ValueError, KeyError}  # type: ignore[union-attr]


async def test_detach_twice_after_joining_and_on_a_joinmap_key() -> None:
    """S22: detach is idempotent, does nothing once handed out, and forgets a JoinMap key."""
    async with JoinMap[str, object]() as jm:
        kept = jm.spawn("a", forever)
        kept.detach()
        kept.detach()
        assert "a" not in jm
        joined = jm.spawn("b", value_of, 2)
        assert await jm.join_next() is not None
        joined.detach()
        assert joined.state is TaskState.HANDED_OUT


async def test_replacing_a_key_whose_outcome_was_put_back() -> None:
    """S16 over S11: a put-back outcome of a key spawned again is dropped from the front."""
    async with JoinMap[str, object]() as jm:
        jm.spawn("a", value_of, "first")
        await anyio.wait_all_tasks_blocked()  # "a" finishes first: put back ahead of "k"
        jm.spawn("k", value_of, "old")
        jm.spawn("slow", forever)
        await _join_all_cancelled_midway(jm)
        assert "k" in jm
        jm.spawn("k", value_of, "new")  # found behind "a" among the put-back outcomes
        jm.abort("slow")
        pairs = sorted(
            [(key, outcome.cancelled() or outcome.result()) async for key, outcome in jm]
        )
    assert pairs == [("a", "first"), ("k", "new"), ("slow", True)]


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError


async def test_a_failure_whose_str_raises_is_still_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S13: a failure whose __str__ raises is named by its type in the block's one record."""
    with caplog.at_level(logging.WARNING, logger="anyio_joinset"):
        async with JoinSet[None]() as js:
            js.spawn(fail_with, BadStr())
            js.spawn(fail_with, ValueError("plain"))
            await anyio.wait_all_tasks_blocked()
    (record,) = [r for r in caplog.records if r.name == "anyio_joinset"]
    assert "BadStr" in record.getMessage()


async def test_follow_on_joinmap_and_detach_all_on_joinset() -> None:
    """S22: JoinMap.follow() yields (key, outcome); JoinSet.detach_all empties the set."""
    async with anyio.create_task_group() as tg:  # noqa: SIM117 - the follower outlives the block
        async with JoinMap[str, object]() as jm:
            keys: list[str] = []

            async def follower() -> None:
                async for key, _ in jm.follow():
                    keys.append(key)

            tg.start_soon(follower)
            jm.spawn("a", value_of, 1)
            await anyio.wait_all_tasks_blocked()
            jm.detach_all()
    assert keys == ["a"]
    async with JoinSet[object]() as js:
        js.spawn(forever)
        js.detach_all()
        assert len(js) == 0


async def test_join_next_skips_a_task_detached_after_it_finished() -> None:
    """S22/S5: join_next passes over a finished task detached while its outcome waited."""
    async with JoinSet[object]() as js:
        first = js.spawn(value_of, 1)
        js.spawn(value_of, 2)
        await anyio.wait_all_tasks_blocked()
        first.detach()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == 2
        assert await js.join_next() is None


async def test_follow_before_the_block_is_refused() -> None:
    """S3/S22: follow() before the block is entered raises the set's 'not open yet' error."""
    js = JoinSet[object]()
    with pytest.raises(
        RuntimeError, match=r"^This JoinSet is not open yet; call follow\(\) inside"
    ):
        js.follow()


async def test_a_named_partial_through_the_generic_spawn() -> None:
    """S2: a partial with a name given is named by it."""
    async with JoinSet[object]() as js:
        handle = js.spawn(functools.partial(value_of, 1), name="p")
        assert handle.name == "p"
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == 1
