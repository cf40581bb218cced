"""
Regression tests for the defects of issue 8 (one or more per defect, named after it).

Each runs on every backend of the conftest matrix (tests that drive asyncio's own
cancellation are asyncio-only by nature and skip on Trio). Each is ordered by
events and ``wait_all_tasks_blocked``, never by sleeps, ends by itself, and
asserts liveness: every consumer task it starts must have returned by itself
(``Consumers.assert_all_ended``), so a hang fails with the names of the stuck
consumers instead of waiting for the deadline.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import random
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from anyio_joinset import JoinMap, JoinSet, Outcome
from anyio_joinset.backends import BACKENDS
from helpers import (
    BaseExceptionGroup,
    ExceptionGroup,
    Gate,
    fail_with,
    forever,
    unwind_after,
    value_of,
)

# -- helpers ---------------------------------------------------------------------


class Consumers:
    """Start consumer tasks in ``tg``; check that every one of them ended by itself."""

    def __init__(self, tg: anyio.abc.TaskGroup) -> None:
        self._tg = tg
        self.running: set[str] = set()

    def start(self, name: str, func: Callable[..., Awaitable[object]], *args: object) -> None:
        self.running.add(name)

        async def run() -> None:
            await func(*args)
            self.running.discard(name)

        self._tg.start_soon(run, name=name)

    async def assert_all_ended(self) -> None:
        """Once nothing can run any more, no consumer may still be waiting."""
        await anyio.wait_all_tasks_blocked()
        stuck = sorted(self.running)
        if stuck:
            self._tg.cancel_scope.cancel()  # only to report it: the test fails below
        assert not stuck, f"consumers still waiting (liveness lost): {stuck}"


@pytest.fixture
def asyncio_only(anyio_backend: tuple[str, dict[str, Any]]) -> None:
    if anyio_backend[0] != "asyncio":
        pytest.skip("drives asyncio's native cancellation (Task.cancel, asyncio.timeout)")


async def steps(n: int) -> None:
    for _ in range(n):
        await anyio.lowlevel.checkpoint()


async def after_steps(n: int, value: int) -> int:
    await steps(n)
    return value


class Boom(BaseException):
    """Neither an Exception nor a cancellation: not captured (S6)."""


# -- defect 1: concurrent join_next callers and an emptying set (S5) ----------------


@pytest.mark.parametrize("seed", range(3))
async def test_defect01_concurrent_joiners_all_end_when_the_set_runs_empty(seed: int) -> None:
    """Four consumers drain 100 tasks (each ends after 0 to 19 checkpoints) with a
    join_next loop: every consumer gets None and ends; each outcome comes out once."""
    rng = random.Random(seed)
    got: list[int] = []
    async with JoinSet[int]() as js, anyio.create_task_group() as tg:
        for i in range(100):
            js.spawn(after_steps, rng.randrange(20), i)

        async def consume() -> None:
            while (outcome := await js.join_next()) is not None:
                got.append(outcome.result())

        consumers = Consumers(tg)
        for n in range(4):
            consumers.start(f"consumer-{n}", consume)
        await consumers.assert_all_ended()
        assert len(js) == 0
    assert sorted(got) == list(range(100))


async def test_defect01_concurrent_joiners_get_none_when_set_runs_empty() -> None:
    """Joiners that are still inside join_next's first checkpoint when the last
    outcome is taken (the old stream missed them) get None and end."""
    got: list[object] = []
    async with JoinSet[int]() as js, anyio.create_task_group() as tg:
        js.spawn(value_of, 1)
        await anyio.wait_all_tasks_blocked()  # finished, not taken

        async def joiner() -> None:
            got.append(await js.join_next())

        consumers = Consumers(tg)
        for n in range(3):
            consumers.start(f"joiner-{n}", joiner)
        # They have not run yet: take the last outcome from under them.
        outcome = js.try_join_next()
        assert outcome is not None
        assert len(js) == 0
        await consumers.assert_all_ended()
    assert got == [None, None, None]


async def test_defect01_waiting_joiners_get_none_when_another_takes_the_last() -> None:
    """Joiners already waiting get None once another caller takes the last outcome."""
    gate = Gate()
    got: list[object] = []
    async with JoinSet[object]() as js, anyio.create_task_group() as tg:
        js.spawn(gate.wait, "last")

        async def joiner() -> None:
            got.append(await js.join_next())

        consumers = Consumers(tg)
        for n in range(3):
            consumers.start(f"joiner-{n}", joiner)
        await anyio.wait_all_tasks_blocked()
        gate.release.set()
        await consumers.assert_all_ended()
    assert got.count(None) == 2
    (outcome,) = [o for o in got if o is not None]
    assert isinstance(outcome, Outcome)
    assert outcome.result() == "last"


# -- defect 2: native asyncio cancellation (S5) ---------------------------------------

NEEDS_311 = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="asyncio.timeout and Task.uncancel() are Python 3.11+"
)


async def hand_off_keeps_the_outcome(
    js: JoinSet[str],
    tg: anyio.abc.TaskGroup,
    finisher: Callable[[], Awaitable[str]],
    joiner: Callable[[], Awaitable[None]],
    go: anyio.Event,
) -> None:
    """Run ``joiner`` until ``finisher`` (released by ``go``) cancels it natively in the
    step its outcome arrives: the joiner ends, the outcome stays in the set (len 1), a
    later join_next returns it, and shutdown ends (nothing is counted that cannot come
    out)."""
    js.spawn(finisher)
    consumers = Consumers(tg)
    consumers.start("joiner", joiner)
    await anyio.wait_all_tasks_blocked()
    go.set()
    await consumers.assert_all_ended()
    assert len(js) == 1
    outcome = await js.join_next()
    assert outcome is not None
    assert outcome.result() == "kept"
    await js.shutdown()
    assert len(js) == 0


@pytest.mark.usefixtures("asyncio_only")
@NEEDS_311
async def test_defect02_native_cancel_during_the_hand_off_loses_nothing() -> None:
    """Task.cancel() of a joiner in the very step its outcome arrives: the outcome
    stays in the set (len 1), a later join_next returns it, and shutdown ends."""
    joiner_task: list[asyncio.Task[Any]] = []
    cancelled: list[bool] = []
    async with JoinSet[str]() as js, anyio.create_task_group() as tg:
        go = anyio.Event()

        async def finisher() -> str:
            await go.wait()
            # Cancel the waiting joiner natively, then finish: the outcome is
            # delivered (and the joiner woken) in this same step.
            joiner_task[0].cancel()
            return "kept"

        async def joiner() -> None:
            task = asyncio.current_task()
            assert task is not None
            joiner_task.append(task)
            try:
                await js.join_next()
            except asyncio.CancelledError:
                task.uncancel()
                cancelled.append(True)

        await hand_off_keeps_the_outcome(js, tg, finisher, joiner, go)
        assert cancelled == [True]


@pytest.mark.usefixtures("asyncio_only")
@NEEDS_311
async def test_defect02_asyncio_timeout_during_the_hand_off_loses_nothing() -> None:
    """asyncio.timeout expiring in the step the outcome arrives: nothing is lost."""
    timeouts: list[asyncio.Timeout] = []
    timed_out: list[bool] = []
    async with JoinSet[str]() as js, anyio.create_task_group() as tg:
        go = anyio.Event()

        async def finisher() -> str:
            await go.wait()
            timeouts[0].reschedule(asyncio.get_running_loop().time() - 1)
            return "kept"

        async def joiner() -> None:
            try:
                async with asyncio.timeout(None) as timeout:
                    timeouts.append(timeout)
                    await js.join_next()
            except TimeoutError:
                timed_out.append(True)

        await hand_off_keeps_the_outcome(js, tg, finisher, joiner, go)
        assert timed_out == [True]


@pytest.mark.usefixtures("asyncio_only")
async def test_defect02_native_cancel_of_one_task_does_not_escape() -> None:
    """A raw Task.cancel() of one task of the set ends that task cancelled; its
    sibling and the body are not cancelled, and nothing escapes the block."""
    gate = Gate()
    victim: list[asyncio.Task[Any]] = []

    async def target() -> None:
        task = asyncio.current_task()
        assert task is not None
        victim.append(task)
        await anyio.sleep_forever()

    async with JoinSet[object]() as js:
        js.spawn(target)
        js.spawn(gate.wait, "sibling")
        await anyio.wait_all_tasks_blocked()
        victim[0].cancel()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.cancelled()
        await anyio.lowlevel.checkpoint()  # the body was not cancelled
        assert gate.started
        assert not gate.cleaned_up  # the sibling was not cancelled
        gate.release.set()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == "sibling"


# -- defect 3: an error raised while a task is being aborted (S6) --------------------


async def test_defect03_error_during_abort_is_the_tasks_failed_outcome() -> None:
    """A task owning a task group is aborted and a child raises during its cleanup
    (Trio groups it with the cancellation): a failed outcome for that task only;
    its sibling and the body go on."""
    sibling = Gate()

    async def child() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            raise ValueError("raised during cleanup")

    async def owner() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
            await anyio.sleep_forever()

    async with JoinSet[object]() as js:
        handle = js.spawn(owner)
        js.spawn(sibling.wait, "sibling")
        await anyio.wait_all_tasks_blocked()
        handle.abort()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.id == handle.id
        assert not outcome.cancelled()
        assert outcome.failed()
        assert not outcome.succeeded()
        error = outcome.exception()
        if isinstance(error, ExceptionGroup):
            matched, _ = error.split(ValueError)
            assert matched is not None
        else:
            assert isinstance(error, ValueError)
        await anyio.lowlevel.checkpoint()  # the body was not cancelled
        assert not sibling.cleaned_up
        sibling.release.set()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == "sibling"


# -- defect 4: waiting tasks never start in a cancelled group (S7, S14) ---------------


async def test_defect04_waiting_tasks_never_start_after_the_scope_is_cancelled() -> None:
    """limit=2, six tasks: once an enclosing scope is cancelled, the running tasks
    end and free their slots, but no waiting task starts, even while the body does
    a shielded cleanup before it leaves."""
    ran: list[int] = []

    async def work(i: int) -> None:
        ran.append(i)
        await anyio.sleep_forever()

    with anyio.CancelScope() as outer:
        async with JoinSet[None](limit=2) as js:
            handles = [js.spawn(work, i) for i in range(6)]
            await anyio.wait_all_tasks_blocked()
            assert sorted(ran) == [0, 1]
            outer.cancel()
            with anyio.CancelScope(shield=True):
                await steps(20)  # the running tasks unwind meanwhile
                await anyio.wait_all_tasks_blocked()
            assert all(h.done() for h in handles[:2])
            await anyio.sleep_forever()
    assert sorted(ran) == [0, 1]
    assert all(h.done() for h in handles)


async def test_defect04_a_task_waiting_for_its_rate_turn_never_starts_either() -> None:
    """S7/S18: a task waiting for its rate turn when the group is cancelled never runs."""
    ran: list[int] = []

    async def work(i: int) -> None:
        ran.append(i)

    with anyio.CancelScope() as outer:
        async with JoinSet[None](rate=(1, 3600.0)) as js:
            js.spawn(work, 0)
            await anyio.wait_all_tasks_blocked()
            js.spawn(work, 1)  # an hour away
            await anyio.wait_all_tasks_blocked()
            outer.cancel()
            with anyio.CancelScope(shield=True):
                await steps(5)
            await anyio.sleep_forever()
    assert ran == [0]


async def test_issue14_item17_no_body_runs_once_a_scope_around_the_set_is_cancelled() -> None:
    """S7: tasks spawned (not queued) but not yet started when a scope around the set
    is cancelled run none of their body; each ends cancelled, the set carries on."""
    ran: list[int] = []

    async def work(i: int) -> int:
        ran.append(i)
        await anyio.sleep_forever()
        return i

    with anyio.CancelScope() as outer:
        async with JoinSet[int]() as js:
            handles = [js.spawn(work, i) for i in range(3)]
            # An eager task factory (where AnyIO lets one be eager) would run
            # the first step inside spawn(), before the cancel: not after it.
            ran_in_spawn = list(ran)
            outer.cancel()
            with anyio.CancelScope(shield=True):
                outcomes = [await js.join_next() for _ in handles]
                assert await js.join_next() is None
    assert ran == ran_in_spawn
    assert all(o is not None and o.cancelled() for o in outcomes)
    assert all(h.done() and not h.aborted for h in handles)


async def test_issue14_item17_a_shield_between_keeps_the_tasks_running() -> None:
    """S7: a cancelled scope outside a shield around the set reaches no task of it."""

    async def work(i: int) -> int:
        await anyio.lowlevel.checkpoint()
        return i

    with anyio.CancelScope() as outer:
        with anyio.CancelScope(shield=True):
            async with JoinSet[int]() as js:
                js.spawn(work, 1)
                js.spawn(work, 2)
                outer.cancel()
                values = sorted([o.result() async for o in js])
        assert values == [1, 2]
        await anyio.lowlevel.checkpoint()  # the cancellation reaches the body here
        pytest.fail("the outer scope was cancelled")  # pragma: no cover


# -- defect 5: an uncaptured BaseException (S4, S6, S13) ------------------------------


async def test_defect05_uncaptured_base_exception_is_counted_off() -> None:
    """A task raising a BaseException that is not captured still leaves len: a
    shielded async-for drain in the body's finally ends by itself."""
    gate = Gate()
    drained: list[Outcome[object]] = []
    lengths: list[int] = []
    with pytest.raises(BaseExceptionGroup) as caught:
        async with JoinSet[object]() as js:
            try:
                js.spawn(gate.wait)
                js.spawn(fail_with, Boom())
                await anyio.sleep_forever()
            finally:
                # Shielded, as a real cleanup is; the guard turns a regression (the
                # drain waiting forever for the uncounted task) into a failure.
                with anyio.move_on_after(10, shield=True) as guard:
                    drained.extend([o async for o in js])
                    lengths.append(len(js))
    assert not guard.cancelled_caught, "the shielded drain never ended"
    assert caught.group_contains(Boom)
    assert lengths == [0]
    assert len(drained) == 1  # the gate's task, cancelled; the Boom task is not an outcome
    assert drained[0].cancelled()
    assert js.stats().spawned == 2


async def test_defect05_a_wait_on_a_task_lost_to_a_base_exception_returns() -> None:
    """S23: a body waiting in handle.wait() when its task's uncaptured BaseException
    tears the set down is released, and the BaseException propagates."""
    gate = Gate()
    with pytest.raises(BaseExceptionGroup) as caught:
        async with JoinSet[object]() as js:

            async def boom_after_gate() -> None:
                await gate.wait()
                raise Boom

            handle = js.spawn(boom_after_gate)
            await anyio.wait_all_tasks_blocked()
            gate.release.set()
            with anyio.fail_after(10):
                await handle.wait()  # woken by the loss, or cancelled with the set
            pytest.fail("the set was not torn down")  # pragma: no cover
    assert caught.group_contains(Boom)
    assert handle.done()


async def test_spawn_under_a_key_whose_eq_raises_type_error_propagates_it() -> None:
    """S16: a TypeError from a hashable key's __eq__ is the key's own error, unchanged,
    and the map is unchanged (not the unhashable-key message)."""

    class Clash:
        def __hash__(self) -> int:
            return 1

        def __eq__(self, other: object) -> bool:
            raise TypeError("cannot compare")

    async with JoinMap[object, object]() as jm:
        jm.spawn(Clash(), value_of, 1)
        with pytest.raises(TypeError, match=r"^cannot compare$"):
            jm.spawn(Clash(), value_of, 2)
        assert len(jm) == 1
        assert [o.result() async for _, o in jm] == [1]


async def test_defect05_body_exception_and_task_base_exception_both_propagate() -> None:
    """S13: the body raises while a task raised a BaseException: neither is lost."""
    body_error = ValueError("the body's own")
    with pytest.raises(BaseExceptionGroup) as caught:
        async with JoinSet[object]() as js:
            js.spawn(fail_with, Boom())
            try:
                await anyio.sleep_forever()
            finally:
                raise body_error
    assert caught.group_contains(Boom)
    assert caught.group_contains(ValueError, match="the body's own")
    assert len(js) == 0


# -- defect 6: join_all / first_success cancelled part-way (S11, S19) ------------------


@pytest.mark.parametrize("fail_fast", [True, False])
async def test_defect06_join_all_cancelled_part_way_puts_back_what_it_took(
    fail_fast: bool,
) -> None:
    """join_all took two outcomes when it was cancelled: they go back to the set in
    the order taken, ahead of later ones, and len counts them again."""
    gates = [Gate() for _ in range(3)]
    async with JoinSet[object]() as js:
        js.spawn(gates[1].wait, "b")
        js.spawn(gates[0].wait, "a")
        js.spawn(gates[2].wait, "d")
        await anyio.wait_all_tasks_blocked()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def run() -> None:
                    await js.join_all(fail_fast=fail_fast)

                tg.start_soon(run)
                for gate in gates[:2]:
                    gate.release.set()
                    await anyio.wait_all_tasks_blocked()
                assert len(js) == 1  # join_all holds two
                scope.cancel()
        assert len(js) == 3
        gates[2].release.set()
        await anyio.wait_all_tasks_blocked()
        values = [o.result() async for o in js]
    assert values == ["a", "b", "d"]


async def test_defect06_join_all_puts_back_a_failure_it_took() -> None:
    """join_all(fail_fast=False) cancelled after it took a failure: the failure is
    back in the set, not lost (and never silently dropped)."""
    gate = Gate()
    error = KeyError("collected")
    async with JoinSet[object]() as js:
        js.spawn(fail_with, error)
        js.spawn(gate.wait)
        await anyio.wait_all_tasks_blocked()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def run() -> None:
                    await js.join_all(fail_fast=False)

                tg.start_soon(run)
                await anyio.wait_all_tasks_blocked()
                assert js.stats().finished == 0  # taken by join_all
                scope.cancel()
        assert len(js) == 2
        outcome = js.try_join_next()
        assert outcome is not None
        assert outcome.exception() is error
        gate.release.set()


async def test_defect06_first_success_cancelled_while_draining_keeps_the_winner() -> None:
    """first_success took a winner and waits for a stubborn task to unwind; cancelled
    then, the winner goes back to the set (first), nothing is lost."""
    release = anyio.Event()

    async with JoinSet[str]() as js:
        js.spawn(unwind_after, release)
        await anyio.wait_all_tasks_blocked()
        js.spawn(value_of, "winner")
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def run() -> None:
                    await js.first_success()

                tg.start_soon(run)
                await anyio.wait_all_tasks_blocked()  # draining: stubborn unwinds
                assert js.stats().running == 1
                scope.cancel()
        assert len(js) == 2
        outcome = js.try_join_next()
        assert outcome is not None
        assert outcome.result() == "winner"
        release.set()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.cancelled() or outcome.result() == "never"


async def test_defect06_first_success_is_lookup_error_when_another_took_the_last() -> None:
    """first_success waiting when another consumer takes the last outcome raises
    LookupError (not CPython's ValueError about an empty ExceptionGroup)."""
    gate = Gate()
    errors: list[BaseException] = []
    got: list[object] = []
    async with JoinSet[object]() as js, anyio.create_task_group() as tg:
        js.spawn(gate.wait, "taken by the other")

        async def other() -> None:
            got.append(await js.join_next())

        async def winner() -> None:
            try:
                await js.first_success()
            except LookupError as exc:
                errors.append(exc)

        consumers = Consumers(tg)
        consumers.start("other", other)  # first in line for the outcome
        await anyio.wait_all_tasks_blocked()
        consumers.start("first_success", winner)
        await anyio.wait_all_tasks_blocked()
        gate.release.set()
        await consumers.assert_all_ended()
    assert len(got) == 1
    assert isinstance(got[0], Outcome)
    assert len(errors) == 1
    assert type(errors[0]) is LookupError


# -- defect 7: limit and rate bookkeeping (S7, S9, S18) --------------------------------


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
async def test_defect07_aborting_waiting_tasks_one_by_one_is_linear(face: str) -> None:
    """Aborting 40,000 waiting tasks one by one (or with abort_matching) takes O(n)
    in all: well under the seconds a deque.remove per abort took (21 s)."""
    n = 40_000
    if face == "JoinSet":
        async with JoinSet[None](limit=1) as js:
            js.spawn(forever)
            handles = [js.spawn(forever) for _ in range(n)]
            assert js.stats().waiting == n
            start = time.process_time()
            for handle in reversed(handles):  # the worst order for a list scan
                handle.abort()
            elapsed = time.process_time() - start
            assert js.stats().waiting == 0
            assert js.stats().cancelled == n
            js.abort_all()
    else:
        async with JoinMap[int, None](limit=1) as jm:
            jm.spawn(-1, forever)
            for key in range(n):
                jm.spawn(key, forever)
            start = time.process_time()
            jm.abort_matching(lambda key: key >= 0)
            elapsed = time.process_time() - start
            assert jm.stats().waiting == 0
            jm.abort_all()
    # CPU seconds of this process (process_time): a busy machine does not count.
    assert elapsed < 3.0, f"aborting {n} waiting tasks took {elapsed:.1f} s"


async def test_defect07_shutdown_gives_back_reserved_rate_turns() -> None:
    """S9/S18: after shutdown() of 19 tasks waiting for their rate turn, the next task
    starts at most one interval after the last real start, not after the 19 turns
    the aborted tasks had reserved."""
    interval = 1.0
    started: list[float] = []

    async def record() -> None:
        started.append(anyio.current_time())

    async with JoinSet[None](rate=(1, interval)) as js:
        js.spawn(record)
        for _ in range(19):
            js.spawn(record)
        await anyio.wait_all_tasks_blocked()
        assert len(started) == 1
        await js.shutdown()
        assert len(started) == 1  # the 19 never ran
        js.spawn(record)
        assert await js.join_next() is not None
    assert len(started) == 2
    assert started[1] - started[0] < 1.5 * interval  # 19 reserved turns: ~19 s


@pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mock-clock")],
)
async def test_defect07_aborted_tasks_give_back_their_rate_turns() -> None:
    """S18 in virtual time: tasks aborted while waiting give their turns back."""
    t0 = anyio.current_time()
    started: list[float] = []

    async def record() -> None:
        started.append(anyio.current_time() - t0)

    async with JoinSet[None](rate=(1, 1.0)) as js:
        js.spawn(record)
        # The first takes the first turn before the others queue up (Trio starts
        # tasks spawned together in any order).
        await anyio.wait_all_tasks_blocked()
        waiting = [js.spawn(record) for _ in range(3)]
        last = js.spawn(record)
        await anyio.wait_all_tasks_blocked()
        for handle in waiting:
            handle.abort()
        assert len([o async for o in js]) == 5
        assert not last.done() or started
    assert started == pytest.approx([0.0, 1.0])
    started.clear()
    async with JoinSet[None](rate=(1, 1.0)) as js:
        js.spawn(record)
        for _ in range(19):
            js.spawn(record)
        await anyio.wait_all_tasks_blocked()
        await js.shutdown()
        now = anyio.current_time() - t0
        js.spawn(record)
        assert await js.join_next() is not None
    assert started[-1] - now <= 1.0 + 1e-9


# -- defect 8: JoinMap (S16) --------------------------------------------------------------


async def test_defect08_cancelled_shutdown_leaves_keys_consistent() -> None:
    """A JoinMap shutdown cancelled part-way: len, keys() and `in` describe exactly
    the outcomes still in the map, so a `while len(jm)` loop ends."""
    release = anyio.Event()

    taken: list[str] = []
    async with JoinMap[str, object]() as jm:
        jm.spawn("stubborn", unwind_after, release)
        for key in "abc":
            jm.spawn(key, forever)
        await anyio.wait_all_tasks_blocked()
        with anyio.move_on_after(math.inf) as scope:
            async with anyio.create_task_group() as tg:

                async def run() -> None:
                    await jm.shutdown()

                tg.start_soon(run)
                await anyio.wait_all_tasks_blocked()  # a, b, c drained; stubborn unwinds
                scope.cancel()
        assert set(jm.keys()) == {"stubborn"}
        assert len(jm) == 1
        assert "stubborn" in jm
        assert "a" not in jm
        release.set()
        while len(jm):
            pair = await jm.join_next()
            assert pair is not None
            taken.append(pair[0])
        assert await jm.join_next() is None
    assert taken == ["stubborn"]


async def test_defect08_replacing_a_failed_key_logs_the_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S13/S16: replacing a key whose task already failed logs that failure once."""
    error = ValueError("replaced before anyone joined it")
    with caplog.at_level(logging.DEBUG, logger="anyio_joinset"):
        async with JoinMap[str, object]() as jm:
            jm.spawn("k", fail_with, error)
            await anyio.wait_all_tasks_blocked()
            jm.spawn("k", value_of, "new")
            pair = await jm.join_next()
            assert pair is not None
            assert pair[1].result() == "new"
    records = [r for r in caplog.records if r.name == "anyio_joinset"]
    assert [r.levelno for r in records] == [logging.WARNING]
    assert records[0].exc_info is not None
    assert records[0].exc_info[1] is error


async def test_defect08_unhashable_key_raises_before_anything_starts() -> None:
    """S16: an unhashable key is a TypeError at spawn; the function is never
    called, no coroutine leaks, and the map is unchanged."""
    calls: list[str] = []

    def make() -> Any:
        calls.append("called")
        return value_of(1)  # pragma: no cover

    async with JoinMap[Any, object]() as jm:
        with pytest.raises(TypeError, match=r"^JoinMap\.spawn\(\) needs a hashable key"):
            jm.spawn(["unhashable"], make)
        gc.collect()
        assert calls == []
        assert len(jm) == 0
        assert jm.stats().spawned == 0
        await anyio.wait_all_tasks_blocked()
        assert calls == []


async def test_defect08_joiner_waiting_when_the_last_key_is_taken_gets_none_at_once() -> None:
    """S16: no wait for a replaced task that is still unwinding."""
    release = anyio.Event()

    got: list[object] = []
    async with JoinMap[str, object]() as jm, anyio.create_task_group() as tg:
        jm.spawn("k", unwind_after, release)
        await anyio.wait_all_tasks_blocked()
        jm.spawn("k", value_of, "new")  # replaces; the old one unwinds slowly

        async def joiner() -> None:
            got.append(await jm.join_next())

        consumers = Consumers(tg)
        consumers.start("joiner-1", joiner)
        consumers.start("joiner-2", joiner)
        await consumers.assert_all_ended()  # before the replaced task is released
        release.set()
    assert got.count(None) == 1


# -- defect 9: off-loop tasks (S17) --------------------------------------------------------


@pytest.mark.parametrize("limit", [None, 1])
async def test_defect09_spawn_future_aborted_before_it_starts_cancels_the_future(
    limit: int | None,
) -> None:
    """A spawn_future task aborted before it started (waiting for a slot or not)
    cancels its future, so a future still pending in an executor never runs."""
    blocker = threading.Event()
    ran: list[str] = []
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(blocker.wait)
        pending = pool.submit(ran.append, "ran")  # queued behind the busy worker
        async with JoinSet[object](limit=limit) as js:
            if limit is not None:
                js.spawn(forever)  # takes the only slot
            handle = js.spawn_future(pending)
            handle.abort()  # before its task started
            await anyio.wait_all_tasks_blocked()
            assert pending.cancelled()
            blocker.set()
            js.abort_all()
            outcomes = [o async for o in js]
        assert busy.result(timeout=10)
    assert ran == []
    assert all(o.cancelled() for o in outcomes)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_defect09_future_finishing_after_the_loop_ended_logs_nothing(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A running future whose task was aborted, finishing after the event loop has
    ended, logs nothing (no "exception calling callback", no RunFinishedError)."""
    future: Future[int] = Future()
    assert future.set_running_or_notify_cancel()  # running: cancel() cannot stop it

    async def main() -> None:
        async with JoinSet[int]() as js:
            handle = js.spawn_future(future)
            await anyio.wait_all_tasks_blocked()
            handle.abort()
            outcome = await js.join_next()
            assert outcome is not None
            assert outcome.cancelled()

    name, options = BACKENDS[backend]
    with caplog.at_level(logging.DEBUG):
        anyio.run(main, backend=name, backend_options=options)
        future.set_result(1)  # the loop is gone
        gc.collect()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# -- defect 10: misuse across threads, event loops and tasks (S1, S2) -----------------------


class RecordingExecutor(ThreadPoolExecutor):
    """An executor that records every submit (none may happen on a refused call)."""

    def __init__(self) -> None:
        super().__init__(1)
        self.submitted: list[object] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted.append(fn)
        return super().submit(fn, *args, **kwargs)


def in_another_loop(func: Callable[[], Awaitable[object]]) -> Callable[[], object]:
    """Call an async method in an event loop of the worker thread's own."""
    return lambda: anyio.run(func)


async def drain(iterator: Any) -> None:
    async for _ in iterator:
        pass  # pragma: no cover


def sync_work(x: object) -> object:
    return x  # pragma: no cover


def set_calls(
    js: JoinSet[object], handles: dict[str, Any], pool: Any, future: Future[object]
) -> dict[str, Callable[[], object]]:
    return {
        "spawn": lambda: js.spawn(value_of, 1),
        "spawn_thread": lambda: js.spawn_thread(sync_work, 1),
        "spawn_process": lambda: js.spawn_process(sync_work, 1),
        "spawn_future": lambda: js.spawn_future(future),
        "spawn_submit": lambda: js.spawn_submit(pool, sync_work, 1),
        "map": in_another_loop(lambda: drain(js.map(value_of, [1, 2]))),
        "join_next": in_another_loop(js.join_next),
        "try_join_next": js.try_join_next,
        "join_all": in_another_loop(js.join_all),
        "join_all(fail_fast=False)": in_another_loop(lambda: js.join_all(fail_fast=False)),
        "first_success": in_another_loop(js.first_success),
        "async for": in_another_loop(lambda: drain(js)),
        "abort_all": js.abort_all,
        "shutdown": in_another_loop(js.shutdown),
        "shutdown(grace=1)": in_another_loop(lambda: js.shutdown(grace=1)),
        "wait_for_capacity": in_another_loop(js.wait_for_capacity),
        "handle.abort (running)": handles["running"].abort,
        "handle.abort (waiting)": handles["waiting"].abort,
        "__aexit__": in_another_loop(lambda: js.__aexit__(None, None, None)),
    }


def map_calls(
    jm: JoinMap[str, object], handles: dict[str, Any], pool: Any, future: Future[object]
) -> dict[str, Callable[[], object]]:
    return {
        "spawn": lambda: jm.spawn("new", value_of, 1),
        "spawn (existing key)": lambda: jm.spawn("running", value_of, 1),
        "spawn_thread": lambda: jm.spawn_thread("new", sync_work, 1),
        "spawn_process": lambda: jm.spawn_process("new", sync_work, 1),
        "spawn_future": lambda: jm.spawn_future("new", future),
        "spawn_submit": lambda: jm.spawn_submit("new", pool, sync_work, 1),
        "map": in_another_loop(lambda: drain(jm.map(value_of, ["x", "y"]))),
        "join_next": in_another_loop(jm.join_next),
        "try_join_next": jm.try_join_next,
        "join_all": in_another_loop(jm.join_all),
        "join_all(fail_fast=False)": in_another_loop(lambda: jm.join_all(fail_fast=False)),
        "first_success": in_another_loop(jm.first_success),
        "async for": in_another_loop(lambda: drain(jm)),
        "abort": lambda: jm.abort("running"),
        "abort (unknown key)": lambda: jm.abort("unknown"),
        "abort_matching": lambda: jm.abort_matching(lambda _key: True),
        "abort_all": jm.abort_all,
        "shutdown": in_another_loop(jm.shutdown),
        "wait_for_capacity": in_another_loop(jm.wait_for_capacity),
        "handle.abort (running)": handles["running"].abort,
        "handle.abort (waiting)": handles["waiting"].abort,
        "__aexit__": in_another_loop(lambda: jm.__aexit__(None, None, None)),
    }


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
async def test_defect10_every_method_from_a_worker_thread_raises(face: str) -> None:
    """Every public method (and JoinHandle.abort) called from a worker thread, or
    run in that thread's own event loop, raises RuntimeError naming
    anyio.from_thread, starts nothing, leaks no coroutine, and leaves len and
    stats() unchanged."""
    running, waiting = Gate(), Gate()
    future: Future[object] = Future()
    pool = RecordingExecutor()
    failures: dict[str, str] = {}
    s: Any
    with pool:
        async with (JoinSet[object] if face == "JoinSet" else JoinMap[str, object])(limit=2) as s:
            if face == "JoinSet":
                s.spawn(value_of, "finished")
                await anyio.wait_all_tasks_blocked()
                handles = {"running": s.spawn(running.wait), "extra": s.spawn(forever)}
                handles["waiting"] = s.spawn(waiting.wait)
                calls = set_calls(s, handles, pool, future)
            else:
                s.spawn("finished", value_of, "finished")
                await anyio.wait_all_tasks_blocked()
                handles = {
                    "running": s.spawn("running", running.wait),
                    "extra": s.spawn("extra", forever),
                }
                handles["waiting"] = s.spawn("waiting", waiting.wait)
                calls = map_calls(s, handles, pool, future)
            await anyio.wait_all_tasks_blocked()
            before = (len(s), s.stats(), list(s.keys()) if face == "JoinMap" else None)
            assert (before[1].finished, before[1].running, before[1].waiting) == (1, 2, 1)
            for name, call in calls.items():
                try:
                    await anyio.to_thread.run_sync(call)
                except RuntimeError as exc:
                    if "anyio.from_thread" not in str(exc):
                        failures[name] = f"RuntimeError without the fix: {exc}"
                except BaseException as exc:  # reported below
                    failures[name] = f"{type(exc).__name__}: {exc}"
                else:
                    failures[name] = "no error"
                gc.collect()  # a leaked coroutine would warn here (filterwarnings=error)
                await anyio.wait_all_tasks_blocked()
                after = (len(s), s.stats(), list(s.keys()) if face == "JoinMap" else None)
                if after != before:
                    failures[name] = failures.get(name, "") + f" changed the set: {after}"
                    before = after
            assert not running.cleaned_up
            assert not waiting.started
            assert not future.cancelled()
            assert pool.submitted == []
            s.abort_all()
    assert failures == {}


async def test_defect10_aexit_from_another_task_raises() -> None:
    """S1: leaving the block from another task than the one that entered it raises
    RuntimeError naming the rule; the set stays open and usable."""
    errors: list[BaseException] = []
    async with JoinSet[object]() as js, anyio.create_task_group() as tg:
        js.spawn(value_of, 1)

        async def leave() -> None:
            try:
                await js.__aexit__(None, None, None)
            except RuntimeError as exc:
                errors.append(exc)

        tg.start_soon(leave)
        await anyio.wait_all_tasks_blocked()
        assert len(errors) == 1
        assert "must be left by the task that entered it" in str(errors[0])
        assert len(js) == 1
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == 1
        js.spawn(value_of, 2)  # still open
        assert await js.join_next() is not None


async def test_defect10_joinmap_aexit_from_another_task_raises() -> None:
    """S1 for JoinMap: leaving from another task raises RuntimeError naming JoinMap."""
    errors: list[BaseException] = []
    async with JoinMap[str, object]() as jm, anyio.create_task_group() as tg:

        async def leave() -> None:
            try:
                await jm.__aexit__(None, None, None)
            except RuntimeError as exc:
                errors.append(exc)

        tg.start_soon(leave)
        await anyio.wait_all_tasks_blocked()
        assert len(errors) == 1
        assert str(errors[0]).startswith("This JoinMap must be left by the task")
        jm.spawn("k", value_of, 1)
        assert await jm.join_next() is not None


# -- defect 11: bad arguments fail at the call, naming the argument (S3) ---------------------


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
@pytest.mark.parametrize(
    ("grace", "error", "says"),
    [
        ("x", TypeError, "must be None or a number of seconds, got str"),
        ([1], TypeError, "must be None or a number of seconds, got list"),
        (True, TypeError, "must be None or a number of seconds, got bool"),
        (math.nan, ValueError, "must be None or at least 0 seconds, got nan"),
        (-1, ValueError, "must be None or at least 0 seconds, got -1"),
    ],
)
async def test_defect11_bad_shutdown_grace_names_grace(
    face: str, grace: object, error: type[Exception], says: str
) -> None:
    """shutdown(grace=) checks its argument at the call; nothing is aborted."""
    gate = Gate()
    s: Any
    async with (JoinSet[object] if face == "JoinSet" else JoinMap[str, object])() as s:
        handle = s.spawn(gate.wait) if face == "JoinSet" else s.spawn("k", gate.wait)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(error, match=rf"^{face}\.shutdown\(\) grace {says}"):
            await s.shutdown(grace=grace)
        assert len(s) == 1
        assert not handle.done()
        assert not gate.cleaned_up
        gate.release.set()


def _offloaded(calls: list[str]) -> Callable[[], None]:
    def work() -> None:
        calls.append("ran")  # pragma: no cover

    return work


@pytest.mark.parametrize("face", ["JoinSet", "JoinMap"])
async def test_defect11_bad_off_loop_arguments_fail_at_the_call(face: str) -> None:
    """spawn_thread/process/future/submit check their arguments at the call with a
    message naming the argument (S3, S17); nothing runs and the set is unchanged."""
    ran: list[str] = []
    work = _offloaded(ran)
    s: Any
    key: tuple[Any, ...] = () if face == "JoinSet" else ("k",)
    cases: list[tuple[str, Callable[[], object], str]]
    async with (JoinSet[object] if face == "JoinSet" else JoinMap[str, object])() as s:
        cases = [
            (
                "thread non-callable",
                lambda: s.spawn_thread(*key, 42),
                (
                    r"spawn_thread\(\) expects a synchronous function, but got 42 \(int\), "
                    r"which is not callable"
                ),
            ),
            (
                "thread async",
                lambda: s.spawn_thread(*key, value_of, 1),
                r"spawn_thread\(\) expects a synchronous function, but value_of is async",
            ),
            (
                "thread limiter",
                lambda: s.spawn_thread(*key, work, limiter=object()),
                r"spawn_thread\(\) limiter must be an anyio\.CapacityLimiter or None, got object",
            ),
            (
                "thread limiter int",
                lambda: s.spawn_thread(*key, work, limiter=4),
                r"spawn_thread\(\) limiter must be an anyio\.CapacityLimiter",
            ),
            (
                "thread abandon",
                lambda: s.spawn_thread(*key, work, abandon_on_cancel="yes"),
                r"spawn_thread\(\) abandon_on_cancel must be True or False, got 'yes'",
            ),
            (
                "thread abandon int",
                lambda: s.spawn_thread(*key, work, abandon_on_cancel=1),
                r"spawn_thread\(\) abandon_on_cancel must be True or False, got 1",
            ),
            (
                "process non-callable",
                lambda: s.spawn_process(*key, "f"),
                r"spawn_process\(\) expects a synchronous function",
            ),
            (
                "process cancellable",
                lambda: s.spawn_process(*key, sync_work, 1, cancellable="no"),
                r"spawn_process\(\) cancellable must be True or False",
            ),
            (
                "future",
                lambda: s.spawn_future(*key, 42),
                r"spawn_future\(\) expects a concurrent\.futures\.Future, got int",
            ),
            (
                "future asyncio",
                lambda: s.spawn_future(*key, asyncio.Future()),
                (
                    r"spawn_future\(\) expects a concurrent\.futures\.Future, but got an "
                    r"asyncio Future; await it in an async function and pass that to spawn\(\)\."
                ),
            ),
            (
                "submit executor",
                lambda: s.spawn_submit(*key, "pool", work),
                r"spawn_submit\(\) expects a concurrent\.futures\.Executor as its first argument",
            ),
            (
                "submit func",
                lambda: s.spawn_submit(*key, ThreadPoolExecutor(1), 42),
                r"spawn_submit\(\) expects a synchronous function",
            ),
            (
                "thread name",
                lambda: s.spawn_thread(*key, work, name=3),
                r"spawn_thread\(\) name must be a str or None, got int",
            ),
        ]
        for what, call, message in cases:
            if what == "future asyncio" and not _on_asyncio():
                continue
            with pytest.raises(TypeError, match=rf"^{face}\.{message}") as caught:
                call()
            assert caught.value is not None, what
            gc.collect()
            assert len(s) == 0, what
            assert s.stats().spawned == 0, what
        await anyio.wait_all_tasks_blocked()
    assert ran == []


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def test_defect11_joinmap_hints_name_the_key() -> None:
    """A JoinMap's hint for a sync function or a builtin is spawn_thread(key, f, *args)."""

    def blocking() -> int:
        return 1

    async with JoinMap[str, object]() as jm:
        with pytest.raises(TypeError, match=r"use spawn_thread\(key, .*blocking, \*args\)\.$"):
            jm.spawn("k", blocking)  # type: ignore[arg-type]
        with pytest.raises(
            TypeError, match=r"^JoinMap\.spawn\(\) expects an async function, but len is a builtin"
        ):
            jm.spawn("k", len)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"use spawn_thread\(key, len, \*args\)\.$"):
            jm.spawn("k", len)  # type: ignore[arg-type]
        assert len(jm) == 0


async def test_defect11_unhashable_keys_raise_before_anything_starts() -> None:
    """Every keyed spawn refuses an unhashable key with a TypeError before anything
    starts: the function is never called, nothing is submitted, the future is not
    touched, and len and stats() are unchanged."""
    ran: list[str] = []
    work = _offloaded(ran)
    future: Future[object] = Future()
    pool = RecordingExecutor()
    bad: Any = {"a": 1}

    def make() -> Any:
        ran.append("called")  # pragma: no cover
        return value_of(1)  # pragma: no cover

    with pool:
        async with JoinMap[Any, object]() as jm:
            calls = {
                "spawn": lambda: jm.spawn(bad, make),
                "spawn_thread": lambda: jm.spawn_thread(bad, work),
                "spawn_process": lambda: jm.spawn_process(bad, sync_work, 1),
                "spawn_future": lambda: jm.spawn_future(bad, future),
                "spawn_submit": lambda: jm.spawn_submit(bad, pool, work),
            }
            for name, call in calls.items():
                with pytest.raises(
                    TypeError,
                    match=rf"^JoinMap\.{name}\(\) needs a hashable key, got unhashable dict",
                ):
                    call()
                gc.collect()
                assert len(jm) == 0
                assert jm.stats().spawned == 0
            await anyio.wait_all_tasks_blocked()
    assert ran == []
    assert pool.submitted == []
    assert not future.cancelled()
