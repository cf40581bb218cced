"""Per-task objects die by reference counting: no reference cycles, nothing kept."""

from __future__ import annotations

import asyncio
import gc
import weakref

import anyio

from anyio_joinset import JoinSet
from helpers import Gate


async def mixed(i: int) -> int:
    await anyio.lowlevel.checkpoint()
    if i % 3 == 0:
        raise ValueError(i)
    return i


async def test_no_reference_cycles_per_task() -> None:
    """Successes, failures, aborts and shutdown leave nothing for the cyclic GC."""
    async with JoinSet[int]() as js:
        gc.collect()
        gc.disable()
        try:
            handles = [js.spawn(mixed, i) for i in range(300)]
            for handle in handles[::4]:
                handle.abort()
            del handles
            while (outcome := await js.join_next()) is not None:
                del outcome
            for i in range(50):
                js.spawn(mixed, i)
            await js.shutdown()
            found = gc.collect()
        finally:
            gc.enable()
    assert found == 0


async def test_joined_outcome_is_released_at_once() -> None:
    """A joined outcome and its value are freed once the caller drops them; its
    handle (which no longer holds the value) once the set drops finished handles,
    which it does when they outnumber the others (issue 17: a list of the tasks,
    8 bytes each, in place of a dict, 50)."""

    class Value:
        pass

    async def make() -> Value:
        await anyio.lowlevel.checkpoint()
        return Value()

    gate = Gate()
    async with JoinSet[object]() as js:
        js.spawn(gate.wait)  # keeps the set busy: nothing is freed by the block ending
        handle = js.spawn(make)
        handle_ref = weakref.ref(handle)
        del handle
        await anyio.wait_all_tasks_blocked()
        outcome = js.try_join_next()
        assert outcome is not None
        value_ref = weakref.ref(outcome.result())
        del outcome
        assert value_ref() is None
        # Finished handles are dropped in one pass once they outnumber the tasks
        # still alive (and are more than 32): memory follows the tasks alive.
        later = [weakref.ref(js.spawn(make)) for _ in range(40)]
        await anyio.wait_all_tasks_blocked()
        while js.try_join_next() is not None:
            pass
        assert handle_ref() is None
        assert sum(ref() is not None for ref in later) <= 33
        gate.release.set()


async def test_finished_handles_stay_few_in_a_long_lived_set() -> None:
    """With a few tasks alive, 2,000 spawned and joined one by one leave at most
    a few dozen finished handles kept by the set: memory is O(live tasks)."""
    gate = Gate()
    refs: list[weakref.ref[object]] = []
    async with JoinSet[object]() as js:
        for _ in range(3):
            js.spawn(gate.wait)
        for _ in range(2_000):
            refs.append(weakref.ref(js.spawn(anyio.lowlevel.checkpoint)))
            assert await js.join_next() is not None  # that one: the others wait
        assert sum(ref() is not None for ref in refs) <= 33
        gate.release.set()


def test_a_set_kept_after_its_run_keeps_no_event_loop_alive() -> None:
    """S29: the registry of open sets holds each set's asyncio loop weakly (Trio's
    root task too; but there the set's own task group keeps Trio's task tree)."""
    kept: list[JoinSet[object]] = []

    async def main() -> weakref.ref[asyncio.AbstractEventLoop]:
        async with JoinSet[object]() as js:
            kept.append(js)  # the set outlives its run, as one held by a cycle does
        return weakref.ref(asyncio.get_running_loop())

    loop = anyio.run(main, backend="asyncio")
    gc.collect()
    assert kept
    assert loop() is None
