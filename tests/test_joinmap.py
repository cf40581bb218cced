"""JoinMap: keyed tasks over the JoinSet machinery (the contract's rules, per key)."""

from __future__ import annotations

import gc
import logging

import anyio
import pytest

from anyio_joinset import JoinMap, Outcome, TaskCancelled
from helpers import Gate, fail_with, forever, unwind_after, value_of


async def test_outcomes_come_with_their_key_in_completion_order() -> None:
    """join_next returns (key, outcome) pairs, in completion order (S5)."""
    gates = {key: Gate() for key in "abc"}
    async with JoinMap[str, object]() as jm:
        for key, gate in gates.items():
            jm.spawn(key, gate.wait, key.upper())
        assert len(jm) == 3
        await anyio.wait_all_tasks_blocked()
        for key in "cab":
            gates[key].release.set()
            await anyio.wait_all_tasks_blocked()
        pairs = [(key, outcome.result()) async for key, outcome in jm]
    assert pairs == [("c", "C"), ("a", "A"), ("b", "B")]
    assert len(jm) == 0


async def test_empty_map_returns_none_at_once_and_is_a_checkpoint() -> None:
    """An empty map's join_next returns None after a checkpoint (S5)."""
    async with JoinMap[str, object]() as jm:
        assert await jm.join_next() is None
        assert jm.try_join_next() is None
        with anyio.CancelScope() as scope:
            scope.cancel()
            await jm.join_next()
        assert scope.cancelled_caught


async def test_spawning_an_existing_key_replaces_its_task() -> None:
    """A new task for a key aborts the old one, whose outcome is never handed out."""
    old = Gate()
    async with JoinMap[str, object]() as jm:
        first = jm.spawn("k", old.wait, "old")
        await anyio.wait_all_tasks_blocked()
        second = jm.spawn("k", value_of, "new")
        assert len(jm) == 1
        assert list(jm.keys()) == ["k"]
        pairs = [(key, outcome.result()) async for key, outcome in jm]
        assert jm.try_join_next() is None
    assert pairs == [("k", "new")]
    assert old.cleaned_up
    assert not old.finished
    assert first.done()
    assert second.done()


async def test_replacing_a_finished_task_discards_its_outcome() -> None:
    """A replaced task that had already finished is skipped too, even a failure."""
    async with JoinMap[str, object]() as jm:
        jm.spawn("k", fail_with, ValueError("replaced"))
        await anyio.wait_all_tasks_blocked()
        jm.spawn("k", value_of, 2)
        await anyio.wait_all_tasks_blocked()
        pair = jm.try_join_next()
        assert pair is not None
        assert pair[1].result() == 2
        assert jm.try_join_next() is None
        assert await jm.join_next() is None


async def test_abort_by_key() -> None:
    """abort(key) aborts that task and says whether the key had one."""
    async with JoinMap[str, object]() as jm:
        jm.spawn("stay", value_of, 1)
        jm.spawn("go", forever)
        assert jm.abort("go") is True
        assert jm.abort("missing") is False
        outcomes = {key: outcome async for key, outcome in jm}
        assert jm.abort("go") is False  # handed out: no longer in the map
    assert outcomes["go"].cancelled()
    assert outcomes["stay"].result() == 1


async def test_abort_matching() -> None:
    """abort_matching aborts every task whose key matches."""
    async with JoinMap[int, object]() as jm:
        for key in range(6):
            jm.spawn(key, forever)
        jm.abort_matching(lambda key: key % 2 == 0)
        await anyio.wait_all_tasks_blocked()
        pairs = [jm.try_join_next() for _ in range(3)]
        assert sorted(p[0] for p in pairs if p is not None and p[1].cancelled()) == [0, 2, 4]
        assert sorted(jm.keys()) == [1, 3, 5]
        assert 1 in jm
        assert 0 not in jm


async def test_abort_all_and_shutdown() -> None:
    """abort_all keeps len; shutdown empties the map and it stays usable (S8, S9)."""
    async with JoinMap[str, object]() as jm:
        jm.spawn("a", forever)
        jm.spawn("b", forever)
        jm.abort_all()
        assert len(jm) == 2
        await jm.shutdown()
        assert len(jm) == 0
        assert list(jm.keys()) == []
        jm.spawn("c", value_of, 3)
        pair = await jm.join_next()
        assert pair is not None
        assert pair[0] == "c"


async def test_leaving_the_block_aborts_and_logs_unjoined_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S13 for JoinMap: tasks aborted, unjoined failures logged, keys cleared."""
    gate = Gate()
    error = ValueError("never joined")
    with caplog.at_level(logging.WARNING, logger="anyio_joinset"):
        async with JoinMap[str, object]() as jm:
            jm.spawn("g", gate.wait)
            jm.spawn("f", fail_with, error)
            await anyio.wait_all_tasks_blocked()
    assert gate.cleaned_up
    assert len(jm) == 0
    assert [r.exc_info[1] for r in caplog.records if r.exc_info] == [error]


async def test_concurrent_joiners_get_distinct_pairs_then_none() -> None:
    """Several join_next callers on a map each get a distinct pair; extras get None."""
    gates = [Gate() for _ in range(2)]
    got: list[tuple[int, Outcome[object]] | None] = []
    async with JoinMap[int, object]() as jm:
        for i, gate in enumerate(gates):
            jm.spawn(i, gate.wait, i)
        async with anyio.create_task_group() as tg:

            async def joiner() -> None:
                got.append(await jm.join_next())

            for _ in range(3):
                tg.start_soon(joiner)
            await anyio.wait_all_tasks_blocked()
            for gate in gates:
                gate.release.set()
    assert sorted(p[0] for p in got if p is not None) == [0, 1]
    assert got.count(None) == 1


async def test_join_next_is_cancel_safe() -> None:
    """A cancelled JoinMap.join_next loses nothing (S5)."""
    gate = Gate()
    async with JoinMap[str, object]() as jm:
        jm.spawn("k", gate.wait, "kept")
        with anyio.move_on_after(0):
            await jm.join_next()
        gate.release.set()
        pair = await jm.join_next()
    assert pair is not None
    assert pair[1].result() == "kept"


async def test_limit_applies_to_the_map() -> None:
    """JoinMap(limit=n) runs at most n tasks, waiting keys start in spawn order (S14)."""
    gates = {key: Gate() for key in "abc"}
    async with JoinMap[str, object](limit=1) as jm:
        for key, gate in gates.items():
            jm.spawn(key, gate.wait, key)
        await anyio.wait_all_tasks_blocked()
        assert [k for k, g in gates.items() if g.started] == ["a"]
        jm.spawn("b", value_of, "b2")  # replacing a waiting task: it never runs
        for gate in gates.values():
            gate.release.set()
        pairs = [(key, outcome.result()) async for key, outcome in jm]
    assert sorted(pairs) == [("a", "a"), ("b", "b2"), ("c", "c")]
    assert not gates["b"].started
    assert jm.stats().spawned == 4


async def test_bad_input_names_the_map() -> None:
    """S1/S3 for JoinMap: errors name the JoinMap; a bad spawn leaves the map as it was."""
    jm = JoinMap[str, object]()
    with pytest.raises(
        RuntimeError,
        match=r"^This JoinMap is not open yet; call spawn\(\) inside its async with block\.$",
    ):
        jm.spawn("k", value_of, 1)
    async with jm:
        jm.spawn("k", value_of, 1)

        def sync() -> None:
            pass

        with pytest.raises(
            TypeError,
            match=(
                r"^JoinMap\.spawn\(\) expects a callable that returns a coroutine, but "
                r".*sync\(\) returned NoneType; for a synchronous function, use "
                r"spawn_thread\(key, .*sync, \*args\)\.$"
            ),
        ):
            jm.spawn("k", sync)  # type: ignore[arg-type]
        assert list(jm.keys()) == ["k"]
        coro = value_of(2)
        with pytest.raises(TypeError, match=r"^JoinMap\.spawn\(\) got a coroutine object"):
            jm.spawn("j", coro)  # type: ignore[arg-type]
        del coro
        gc.collect()
        assert len(jm) == 1
    with pytest.raises(
        RuntimeError, match=r"^This JoinMap is closed; spawn\(\) can no longer start tasks\.$"
    ):
        jm.spawn("k", value_of, 1)
    with pytest.raises(RuntimeError, match=r"^This JoinMap has already been used"):
        async with jm:
            pass  # pragma: no cover


async def test_cancelled_pair_raises_task_cancelled() -> None:
    """A key's aborted task comes out cancelled; result() raises TaskCancelled."""
    async with JoinMap[str, object]() as jm:
        jm.spawn("k", forever, name="sleeper")
        jm.abort("k")
        pair = await jm.join_next()
    assert pair is not None
    with pytest.raises(TaskCancelled):
        pair[1].result()
    assert repr(jm) == "<JoinMap closed keys=0 running=0 waiting=0 limit=None>"


async def test_joiner_waiting_when_the_last_key_is_taken_gets_none_at_once() -> None:
    """S16: a joiner waiting when the last key is taken gets None at once, without
    waiting for a replaced task that is still unwinding."""
    release = anyio.Event()

    got: list[object] = []
    async with JoinMap[str, object]() as jm:
        jm.spawn("k", unwind_after, release)
        await anyio.wait_all_tasks_blocked()
        jm.spawn("k", value_of, "new")  # the old one unwinds slowly
        async with anyio.create_task_group() as tg:

            async def joiner() -> None:
                got.append(await jm.join_next())

            tg.start_soon(joiner)
            tg.start_soon(joiner)
            await anyio.wait_all_tasks_blocked()
            # Both joiners ended while the replaced task still waits for release.
            assert len(got) == 2
            assert jm.stats().running == 1
            release.set()
    assert got.count(None) == 1
    pairs = [p for p in got if p is not None]
    assert len(pairs) == 1
    assert pairs[0][0] == "k"  # type: ignore[index]
    assert pairs[0][1].result() == "new"  # type: ignore[index]
