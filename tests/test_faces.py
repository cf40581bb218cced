"""
One contract, two faces (issue 9): each test body runs against JoinSet and JoinMap.

A small adapter (``Face``) hides the only difference: a JoinMap's spawn takes a key
(here a fresh one per spawn) and hands out ``(key, outcome)`` pairs; the tests see
outcomes and values either way. Rules that only a JoinMap has (S16) are at the end.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from itertools import count
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from anyio_joinset import JoinHandle, JoinMap, JoinSet, Outcome, TaskCancelled
from helpers import ExceptionGroup, Gate, fail_with, forever, unwind_after, value_of

Set = Any  # a JoinSet[object] or a JoinMap[object, object]


class Face:
    """Drive either face through the same calls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._keys = count()

    def __repr__(self) -> str:
        return self.name

    def make(self, **options: Any) -> Set:
        return (
            JoinSet[object](**options)
            if self.name == "JoinSet"
            else JoinMap[object, object](**options)
        )

    def spawn(self, s: Set, func: Any, *args: Any) -> JoinHandle[object]:
        if self.name == "JoinSet":
            return s.spawn(func, *args)  # type: ignore[no-any-return]
        return s.spawn(f"key-{next(self._keys)}", func, *args)  # type: ignore[no-any-return]

    def outcome(self, got: Any) -> Outcome[object] | None:
        """join_next / try_join_next / iteration result -> the outcome."""
        if got is None or self.name == "JoinSet":
            return got  # type: ignore[no-any-return]
        _key, outcome = got
        return outcome  # type: ignore[no-any-return]

    async def join_next(self, s: Set) -> Outcome[object] | None:
        return self.outcome(await s.join_next())

    def try_join_next(self, s: Set) -> Outcome[object] | None:
        return self.outcome(s.try_join_next())

    async def outcomes(self, s: Set) -> list[Outcome[object]]:
        return [self.outcome(got) async for got in s]  # type: ignore[misc]

    def values(self, result: Any) -> list[object]:
        """join_all's result -> the values."""
        return result if self.name == "JoinSet" else [value for _, value in result]  # type: ignore[no-any-return]

    def value(self, result: Any) -> object:
        """first_success's result -> the value."""
        return result if self.name == "JoinSet" else result[1]


@pytest.fixture(params=["JoinSet", "JoinMap"])
def face(request: pytest.FixtureRequest) -> Face:
    return Face(request.param)


async def release_one(gate: Gate) -> None:
    gate.release.set()
    await anyio.wait_all_tasks_blocked()


# -- S4 len ----------------------------------------------------------------------------


async def test_s4_len_counts_until_handed_out(face: Face) -> None:
    gates = [Gate() for _ in range(3)]
    async with face.make(limit=2) as s:
        for gate in gates:
            face.spawn(s, gate.wait, "v")
        assert len(s) == 3  # two running, one waiting
        await anyio.wait_all_tasks_blocked()
        s.abort_all()
        assert len(s) == 3  # abort_all does not change it
        await anyio.wait_all_tasks_blocked()
        assert len(s) == 3  # finished, not handed out
        assert face.try_join_next(s) is not None
        assert len(s) == 2
        assert await face.join_next(s) is not None
        assert len(s) == 1
        assert len(await face.outcomes(s)) == 1
        assert len(s) == 0


# -- S5 join_next ----------------------------------------------------------------------


async def test_s5_completion_order_none_when_empty_and_cancel_safe(face: Face) -> None:
    gates = [Gate() for _ in range(3)]
    async with face.make() as s:
        assert await face.join_next(s) is None
        with anyio.CancelScope() as scope:
            scope.cancel()
            await s.join_next()  # a checkpoint even when empty
        assert scope.cancelled_caught
        for i, gate in enumerate(gates):
            face.spawn(s, gate.wait, i)
        await anyio.wait_all_tasks_blocked()
        with anyio.move_on_after(0) as scope:
            await s.join_next()
        assert scope.cancelled_caught
        for i in (2, 0, 1):
            await release_one(gates[i])
        with anyio.CancelScope() as scope:
            scope.cancel()
            await s.join_next()  # cancelled with outcomes ready: none is taken
        assert len(s) == 3
        values = [o.result() for o in await face.outcomes(s)]
        assert values == [2, 0, 1]
        assert await face.join_next(s) is None


# -- S6 errors are values: how an outcome says how its task ended ---------------------


async def test_s6_outcome_succeeded_failed_cancelled(face: Face) -> None:
    """S6: exactly one of succeeded(), failed(), cancelled() holds; exception() is an Exception."""
    error = ValueError("failed")
    async with face.make() as s:
        ok = face.spawn(s, value_of, None)  # a None value is a success, not a failure
        bad = face.spawn(s, fail_with, error)
        aborted = face.spawn(s, forever)
        await anyio.wait_all_tasks_blocked()
        aborted.abort()
        by_id = {o.id: o for o in await face.outcomes(s)}
    kinds = {
        handle.id: (o.succeeded(), o.failed(), o.cancelled())
        for handle in (ok, bad, aborted)
        for o in [by_id[handle.id]]
    }
    assert kinds == {
        ok.id: (True, False, False),
        bad.id: (False, True, False),
        aborted.id: (False, False, True),
    }
    assert by_id[ok.id].exception() is None
    assert by_id[bad.id].exception() is error
    with pytest.raises(TaskCancelled):
        by_id[aborted.id].exception()


# -- S7 abort, S8 abort_all ------------------------------------------------------------


async def test_s7_abort_one(face: Face) -> None:
    never, running = Gate(), Gate()
    async with face.make() as s:
        done = face.spawn(s, value_of, "done")
        await anyio.wait_all_tasks_blocked()
        unstarted = face.spawn(s, never.wait)
        unstarted.abort()
        unstarted.abort()  # idempotent
        started = face.spawn(s, running.wait)
        await anyio.wait_all_tasks_blocked()
        started.abort()
        done.abort()  # already finished: keeps its real outcome
        by_id = {o.id: o for o in await face.outcomes(s)}
    assert by_id[done.id].result() == "done"
    assert by_id[unstarted.id].cancelled()
    assert by_id[started.id].cancelled()
    with pytest.raises(TaskCancelled):
        by_id[started.id].result()
    assert not never.started
    assert running.cleaned_up


async def test_s8_abort_all_keeps_the_body_and_later_spawns(face: Face) -> None:
    gates = [Gate() for _ in range(3)]
    async with face.make() as s:
        for gate in gates:
            face.spawn(s, gate.wait)
        await anyio.wait_all_tasks_blocked()
        s.abort_all()
        await anyio.lowlevel.checkpoint()  # the body is not cancelled
        later = face.spawn(s, value_of, "later")
        outcomes = await face.outcomes(s)
    assert [o.cancelled() for o in outcomes if o.id != later.id] == [True] * 3
    assert [o.result() for o in outcomes if o.id == later.id] == ["later"]


# -- S9 shutdown -----------------------------------------------------------------------


async def test_s9_shutdown_empties_and_the_set_is_reusable(face: Face) -> None:
    async with face.make(limit=1) as s:
        face.spawn(s, forever)
        face.spawn(s, forever)  # waiting
        face.spawn(s, fail_with, ValueError("discarded"))
        await s.shutdown()
        assert len(s) == 0
        stats = s.stats()
        assert (stats.running, stats.waiting, stats.finished) == (0, 0, 0)
        face.spawn(s, value_of, 1)
        outcome = await face.join_next(s)
        assert outcome is not None
        assert outcome.result() == 1


async def test_s9_shutdown_cancelled_part_way_leaves_the_set_consistent(face: Face) -> None:
    release = anyio.Event()

    async with face.make() as s:
        face.spawn(s, unwind_after, release)
        for _ in range(3):
            face.spawn(s, forever)
        await anyio.wait_all_tasks_blocked()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(s.shutdown)
                await anyio.wait_all_tasks_blocked()
                scope.cancel()
        stats = s.stats()
        assert len(s) == stats.running + stats.waiting + stats.finished
        if face.name == "JoinMap":
            assert len(s.keys()) == len(s)
        left = len(s)
        assert left == 1  # the stubborn task; the others were drained
        release.set()
        seen = 0
        while len(s):  # ends: len counts only what join_next will hand out
            assert await face.join_next(s) is not None
            seen += 1
        assert seen == left
        assert await face.join_next(s) is None


# -- S10 try_join_next, S12 iteration --------------------------------------------------


async def test_s10_try_join_next_never_waits(face: Face) -> None:
    gate = Gate()
    async with face.make() as s:
        assert face.try_join_next(s) is None
        face.spawn(s, gate.wait, "v")
        await anyio.wait_all_tasks_blocked()
        assert face.try_join_next(s) is None  # running: nothing ready
        await release_one(gate)
        outcome = face.try_join_next(s)
        assert outcome is not None
        assert outcome.result() == "v"
        assert face.try_join_next(s) is None


async def test_s12_iteration_yields_failures_as_outcomes(face: Face) -> None:
    error = ValueError("a value, not raised")
    async with face.make() as s:
        face.spawn(s, fail_with, error)
        face.spawn(s, value_of, 1)
        outcomes = await face.outcomes(s)
        assert len(s) == 0
    assert sorted(str(o.exception()) for o in outcomes) == ["None", "a value, not raised"]


# -- S11 join_all ----------------------------------------------------------------------


async def test_s11_join_all_values_in_completion_order(face: Face) -> None:
    gates = [Gate() for _ in range(3)]
    async with face.make() as s, anyio.create_task_group() as tg:
        for i, gate in enumerate(gates):
            face.spawn(s, gate.wait, i)
        result: list[object] = []

        async def run() -> None:
            result.extend(face.values(await s.join_all()))

        tg.start_soon(run)
        for i in (1, 2, 0):
            await release_one(gates[i])
    assert result == [1, 2, 0]
    assert len(s) == 0


async def test_s11_join_all_fail_fast_raises_the_first_failure(face: Face) -> None:
    error = KeyError("first")
    never = Gate()
    async with face.make() as s:
        face.spawn(s, fail_with, error)
        face.spawn(s, never.wait)
        with pytest.raises(KeyError) as caught:
            await s.join_all()
        assert caught.value is error
        assert len(s) == 0
        assert never.cleaned_up
        face.spawn(s, forever).abort()
        with pytest.raises(TaskCancelled):
            await s.join_all()


async def test_s11_join_all_without_fail_fast_groups_every_failure(face: Face) -> None:
    gates = [Gate() for _ in range(3)]
    errors = [ValueError("one"), KeyError("two")]
    async with face.make() as s, anyio.create_task_group() as tg:
        face.spawn(s, gates[0].wait, "ok")
        face.spawn(s, fail_with, errors[0])
        await anyio.wait_all_tasks_blocked()
        cancelled = face.spawn(s, gates[1].wait)
        face.spawn(s, fail_with, errors[1])
        caught: list[BaseException] = []

        async def run() -> None:
            try:
                await s.join_all(fail_fast=False)
            except ExceptionGroup as exc:
                caught.append(exc)

        tg.start_soon(run)
        await anyio.wait_all_tasks_blocked()
        cancelled.abort()
        await anyio.wait_all_tasks_blocked()
        await release_one(gates[0])
    (group,) = caught
    assert isinstance(group, ExceptionGroup)
    assert group.exceptions[:2] == (errors[0], errors[1])  # completion order
    assert isinstance(group.exceptions[2], TaskCancelled)
    assert len(group.exceptions) == 3
    assert len(s) == 0


@pytest.mark.parametrize("combinator", ["join_all", "first_success"])
async def test_s11_cancelled_combinator_puts_back_in_order(face: Face, combinator: str) -> None:
    """What join_all / first_success took goes back ahead of later outcomes, in the
    order it took them, and len counts them again."""
    events = [anyio.Event() for _ in range(4)]

    async def finish(i: int) -> int:
        await events[i].wait()
        if combinator == "first_success":
            raise ValueError(i)  # failures: first_success keeps taking
        return i

    async with face.make() as s:
        for i in range(4):
            face.spawn(s, finish, i)
        face.spawn(s, forever)
        await anyio.wait_all_tasks_blocked()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(getattr(s, combinator))
                for i in (2, 0, 3):
                    events[i].set()
                    await anyio.wait_all_tasks_blocked()
                assert len(s) == 2  # it holds three
                scope.cancel()
        assert len(s) == 5
        events[1].set()
        await anyio.wait_all_tasks_blocked()
        taken = [face.try_join_next(s) for _ in range(4)]
        order = [_number(o) for o in taken]
        assert order == [2, 0, 3, 1]
        assert len(s) == 1
        s.abort_all()


def _number(outcome: Outcome[object] | None) -> object:
    assert outcome is not None
    error = outcome.exception()
    return outcome.result() if error is None else error.args[0]


# -- S13 logging of unjoined failures --------------------------------------------------


async def test_s13_unjoined_failures_are_logged_once(
    face: Face, caplog: pytest.LogCaptureFixture
) -> None:
    error = ValueError("never joined")
    with caplog.at_level(logging.DEBUG, logger="anyio_joinset"):
        async with face.make() as s:
            face.spawn(s, fail_with, error)
            face.spawn(s, fail_with, KeyError("joined"))
            face.spawn(s, forever)
            await anyio.wait_all_tasks_blocked()
            taken = face.try_join_next(s)
            assert taken is not None
    records = [r for r in caplog.records if r.name == "anyio_joinset"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].exc_info is not None
    logged = records[0].exc_info[1]
    assert logged is not taken.exception()


# -- S14 limit and wait_for_capacity ---------------------------------------------------


async def test_s14_limit_and_backpressure(face: Face) -> None:
    running = 0
    peak = 0
    in_memory: list[int] = []

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.lowlevel.checkpoint()
        running -= 1

    async with face.make(limit=3) as s, anyio.create_task_group() as tg:
        assert s.limit == 3

        async def consume() -> None:
            while await face.join_next(s) is not None:
                pass

        for i in range(50):
            await s.wait_for_capacity()
            face.spawn(s, work)
            stats = s.stats()
            in_memory.append(stats.running + stats.waiting)
            if i == 0:
                tg.start_soon(consume)
    assert peak <= 3
    assert max(in_memory) <= 3


# -- S18 rate (virtual time) -----------------------------------------------------------

VIRTUAL_TIME = pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mock-clock")],
)


@VIRTUAL_TIME
@pytest.mark.parametrize("rate", [(2, 1.0), 2.0])
async def test_s18_rate_spaces_starts_evenly(face: Face, rate: Any) -> None:
    t0 = anyio.current_time()
    starts: list[float] = []

    async def record() -> None:
        starts.append(anyio.current_time() - t0)

    async with face.make(rate=rate) as s:
        for _ in range(4):
            face.spawn(s, record)
        assert len(await face.outcomes(s)) == 4
        await s.wait_for_capacity()  # waits for the next turn too
        assert anyio.current_time() - t0 == pytest.approx(2.0)
    assert starts == pytest.approx([0.0, 0.5, 1.0, 1.5])


# -- S19 first_success -----------------------------------------------------------------


async def test_s19_first_success_wins_and_drains_the_rest(face: Face) -> None:
    loser = Gate()
    async with face.make() as s:
        face.spawn(s, fail_with, ValueError("skipped"))
        await anyio.wait_all_tasks_blocked()
        face.spawn(s, value_of, "winner")
        face.spawn(s, loser.wait)
        assert face.value(await s.first_success()) == "winner"
        assert len(s) == 0
        assert loser.cleaned_up


async def test_s19_first_success_all_failed_and_empty(face: Face) -> None:
    errors = [ValueError("a"), KeyError("b")]
    async with face.make() as s:
        with pytest.raises(LookupError):
            await s.first_success()
        face.spawn(s, fail_with, errors[0])
        await anyio.wait_all_tasks_blocked()
        face.spawn(s, fail_with, errors[1])
        with pytest.raises(ExceptionGroup) as caught:
            await s.first_success()
        assert list(caught.value.exceptions) == errors


async def test_s19_lookup_error_when_another_consumer_took_the_last(face: Face) -> None:
    gate = Gate()
    results: list[object] = []
    async with face.make() as s, anyio.create_task_group() as tg:
        face.spawn(s, gate.wait, "v")

        async def other() -> None:
            results.append(await face.join_next(s))

        async def first() -> None:
            try:
                await s.first_success()
            except LookupError as exc:
                results.append(exc)

        tg.start_soon(other)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(first)
        await anyio.wait_all_tasks_blocked()
        await release_one(gate)
        assert len(results) == 2  # both ended by themselves
    assert isinstance(results[0], Outcome)
    assert type(results[1]) is LookupError


# -- S20 feeding -----------------------------------------------------------------------


async def double(x: Any) -> Any:
    await anyio.lowlevel.checkpoint()
    return x * 2 if isinstance(x, int) else x


async def test_s20_map_is_lazy(face: Face) -> None:
    """limit=3 and a generator of 1000 inputs: the generator is never more than
    limit + 1 ahead of the outcomes consumed, even with a slow consumer."""
    produced = 0
    consumed = 0
    ahead: list[int] = []

    def inputs() -> Iterator[int]:
        nonlocal produced
        for i in range(1000):
            produced += 1
            ahead.append(produced - consumed)
            yield i

    async with face.make(limit=3) as s:
        async for item, outcome in s.map(double, inputs()):
            assert outcome.result() == item * 2
            consumed += 1
            for _ in range(5):  # a slow consumer
                await anyio.lowlevel.checkpoint()
        assert len(s) == 0
    assert consumed == 1000
    assert max(ahead) <= 3 + 1


async def test_s20_hand_spawned_tasks_flow_through(face: Face) -> None:
    """A crawler: each fed item spawns one more task by hand; all come out."""
    seen: list[object] = []
    async with face.make(limit=2) as s:
        async for item, outcome in s.map(double, range(5)):
            value = outcome.result()
            seen.append(value)
            if isinstance(item, int) and item < 100:
                if face.name == "JoinSet":
                    s.spawn(value_of, f"link-{item}")
                else:
                    s.spawn(f"link-{item}", value_of, f"link-{item}")
        assert len(s) == 0
    assert sorted(v for v in seen if isinstance(v, int)) == [0, 2, 4, 6, 8]
    assert sorted(v for v in seen if isinstance(v, str)) == [f"link-{i}" for i in range(5)]


async def test_s20_async_iterable_inputs(face: Face) -> None:
    async def inputs() -> AsyncIterator[int]:
        for i in range(4):
            await anyio.lowlevel.checkpoint()
            yield i

    async with face.make(limit=2) as s:
        pairs = [(item, outcome.result()) async for item, outcome in s.map(double, inputs())]
    assert sorted(pairs) == [(0, 0), (1, 2), (2, 4), (3, 6)]


async def test_s20_input_iterator_raising(face: Face) -> None:
    """An exception raised by the inputs is raised by the iteration."""
    error = RuntimeError("inputs broke")

    def inputs() -> Iterator[int]:
        yield 1
        yield 2
        raise error

    got: list[object] = []
    async with face.make(limit=1) as s:
        with pytest.raises(RuntimeError) as caught:
            async for item, outcome in s.map(double, inputs()):
                got.append((item, outcome.result()))
        assert caught.value is error
        await s.shutdown()
    assert set(got) <= {(1, 2), (2, 4)}


# -- S16: JoinMap only -----------------------------------------------------------------


async def test_s16_replace_never_hands_out_the_old_task() -> None:
    old = Gate()
    async with JoinMap[str, object]() as jm:
        jm.spawn("k", old.wait, "old")
        await anyio.wait_all_tasks_blocked()
        jm.spawn("k", value_of, "new")
        assert len(jm) == 1
        assert list(jm.keys()) == ["k"]
        pairs = [(key, outcome.result()) async for key, outcome in jm]
        assert old.cleaned_up
        assert not old.finished
        assert await jm.join_next() is None
    assert pairs == [("k", "new")]


async def test_s16_replacing_a_finished_failed_task_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = ValueError("replaced")
    with caplog.at_level(logging.DEBUG, logger="anyio_joinset"):
        async with JoinMap[str, object]() as jm:
            jm.spawn("k", fail_with, error)
            await anyio.wait_all_tasks_blocked()
            jm.spawn("k", value_of, 1)
            assert [k async for k, _ in jm] == ["k"]
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert logged == [error]


async def test_s16_joiner_waiting_for_the_last_key_gets_none_at_once() -> None:
    release = anyio.Event()

    got: list[object] = []
    async with JoinMap[str, object]() as jm, anyio.create_task_group() as tg:
        jm.spawn("k", unwind_after, release)
        await anyio.wait_all_tasks_blocked()
        jm.spawn("k", value_of, 1)

        async def joiner() -> None:
            got.append(await jm.join_next())

        tg.start_soon(joiner)
        tg.start_soon(joiner)
        await anyio.wait_all_tasks_blocked()
        assert len(got) == 2  # before the replaced task was released
        release.set()
    assert got.count(None) == 1
