"""
Stress: thousands of tasks with random errors, aborts and cancelled joins.

Seeded and reproducible: every random choice comes from ``random.Random(seed)``
and tasks make progress only through checkpoints, never sleeps. Checks that every
spawned id is handed out exactly once, ``len`` is exact at the end, every consumer
ended by itself (on ``None`` once the producer is done), and no task is left
running after the block. The explored variant runs on the schedule explorer's
seeded loops, the seed drawn from the test id (tests/explore.py).
"""

from __future__ import annotations

import random
from collections import Counter

import anyio
import pytest

from anyio_joinset import JoinHandle, JoinSet, Outcome
from explore import seed_for
from helpers import consume_randomly

N_TASKS = 3000


class Stress:
    def __init__(self, seed: int, limit: int | None, tasks: int = N_TASKS) -> None:
        self.rng = random.Random(seed)
        self.tasks = tasks
        self.limit = limit
        self.handles: dict[int, JoinHandle[int]] = {}
        self.delivered: Counter[int] = Counter()
        self.alive = 0
        self.children = 0
        self.consumers_ended = 0

    async def work(self, js: JoinSet[int], steps: int, fail: bool, spawn_child: bool) -> int:
        self.alive += 1
        try:
            for _ in range(steps):
                await anyio.lowlevel.checkpoint()
            if spawn_child:
                self.spawn(js, spawn_child=False)  # a task spawns into its own set
                self.children += 1
            if fail:
                raise ValueError(steps)
            return steps
        finally:
            self.alive -= 1

    def spawn(self, js: JoinSet[int], *, spawn_child: bool) -> None:
        rng = self.rng
        handle = js.spawn(self.work, js, rng.randrange(0, 6), rng.random() < 0.1, spawn_child)
        self.handles[handle.id] = handle
        if rng.random() < 0.05:
            handle.abort()  # before it starts

    def record(self, outcome: Outcome[int]) -> None:
        self.delivered[outcome.id] += 1
        if not outcome.cancelled() and outcome.exception() is None:
            assert 0 <= outcome.result() < 6

    async def consume(self, js: JoinSet[int], seed: float, producer_done: anyio.Event) -> None:
        await consume_randomly(js, random.Random(seed), self.record, producer_done)
        self.consumers_ended += 1

    async def run(self) -> None:
        rng = self.rng
        producer_done = anyio.Event()
        async with JoinSet[int](limit=self.limit) as js:
            async with anyio.create_task_group() as consumers:
                for _ in range(3):
                    consumers.start_soon(self.consume, js, rng.random(), producer_done)
                for i in range(self.tasks):
                    if self.limit is not None and rng.random() < 0.5:
                        await js.wait_for_capacity()
                    self.spawn(js, spawn_child=rng.random() < 0.02)
                    if rng.random() < 0.05:
                        self.handles[rng.choice(list(self.handles))].abort()  # any time
                    if rng.random() < 0.2:
                        await anyio.lowlevel.checkpoint()
                    if i == self.tasks // 2 and rng.random() < 0.5:
                        js.abort_all()
                producer_done.set()
                # The consumers drain the set and end by themselves, never cancelled:
                # one stuck in join_next fails the test by its deadline.
            assert self.consumers_ended == 3
            assert len(js) == 0
        assert self.alive == 0
        spawned = set(self.handles)
        assert len(spawned) == self.tasks + self.children
        assert set(self.delivered) == spawned
        assert all(count == 1 for count in self.delivered.values())
        assert all(handle.done() for handle in self.handles.values())


@pytest.mark.deadline(240)  # tens of seconds in debug mode on a busy machine
@pytest.mark.parametrize("limit", [None, 7])
@pytest.mark.parametrize("seed", [1, 2])
async def test_every_id_delivered_exactly_once(seed: int, limit: int | None) -> None:
    """S4/S5/S7/S14: thousands of random tasks; each id comes out exactly once."""
    await Stress(seed, limit).run()


@pytest.mark.explore(runs=10)
@pytest.mark.parametrize("limit", [None, 3])
async def test_every_id_delivered_exactly_once_on_explored_schedules(
    limit: int | None, request: pytest.FixtureRequest
) -> None:
    """S4/S5/S7/S14: the same, on seeded random schedules (tests/explore.py)."""
    await Stress(seed_for(request.node.nodeid), limit, tasks=1000).run()


async def test_block_exit_under_load_leaves_no_task() -> None:
    """S13: leaving the block with thousands of tasks in every state leaves none alive."""
    stress = Stress(3, limit=None)
    async with JoinSet[int]() as js:
        for _ in range(N_TASKS):
            stress.spawn(js, spawn_child=False)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
    assert stress.alive == 0
    assert len(js) == 0
    assert all(h.done() for h in stress.handles.values())
