"""
Chaos: tens of thousands of tasks through one set, every fault at once.

Random delays, random exceptions (exception groups and exceptions whose __str__
and __repr__ raise included), aborts before start, while running and after the
finish, tasks that swallow their cancellation, tasks that spawn into their own
set, several consumers whose join_next is cancelled at random, and sometimes a
cancellation of the body itself. Everything is drawn from random.Random(seed);
tasks advance only through checkpoints. Checks: every spawned id is handed out
at most once, and exactly once unless the block was cancelled (then the rest are
accounted for as finished), len is exact, no task is alive after the block, and
no ResourceWarning or "never awaited" warning appears (filterwarnings = error).

Every consumer must end by itself (on ``None`` once the producer is done); none
is ever cancelled by the test. CI runs a fixed set of seeds on every loop, and
more seeds, with fewer tasks, on the schedule explorer's seeded loops
(tests/explore.py); ``pytest tests/test_chaos.py --soak 600`` keeps drawing new
seeds on all of them for ten minutes and names the seed and loop of any failure.
"""

from __future__ import annotations

import gc
import random
import time
from collections import Counter

import anyio
import pytest

from anyio_joinset import JoinHandle, JoinSet, Outcome
from anyio_joinset.backends import BACKENDS as LOOPS
from explore import EXPLORE_BACKENDS, explore_backend, seed_for
from helpers import ExceptionGroup, consume_randomly

TASKS = 20_000
# Seed 1: no limit, the block ends normally. Seed 13: limit=5 and the body is
# cancelled part-way, so the tasks left are accounted for at block exit.
CI_SEEDS = {1: False, 13: True}


class BrokenStrError(Exception):
    def __str__(self) -> str:
        raise RuntimeError

    def __repr__(self) -> str:
        raise RuntimeError


class Chaos:
    def __init__(self, seed: int, tasks: int = TASKS) -> None:
        self.seed = seed
        self.tasks = tasks
        self.consumers_ended = 0
        self.rng = random.Random(seed)
        self.handles: dict[int, JoinHandle[object]] = {}
        self.delivered: Counter[int] = Counter()
        self.alive = 0
        self.children = 0
        self.body_cancelled = False
        self.limit = self.rng.choice([None, None, 5, 50])

    async def task(self, js: JoinSet[object], plan: tuple[int, str]) -> object:
        steps, ending = plan
        self.alive += 1
        try:
            if ending == "swallow":
                try:
                    for _ in range(steps + 3):
                        await anyio.lowlevel.checkpoint()
                except anyio.get_cancelled_exc_class():
                    return "swallowed"
                return "not cancelled"
            for _ in range(steps):
                await anyio.lowlevel.checkpoint()
            if ending == "error":
                raise ValueError(steps)
            if ending == "group":
                raise ExceptionGroup("group", [KeyError(steps), ValueError(steps)])
            if ending == "broken":
                raise BrokenStrError
            if ending == "child" and self.children < self.tasks // 100:
                self.children += 1
                self.spawn(js, child=True)
            return steps
        finally:
            self.alive -= 1

    def spawn(self, js: JoinSet[object], *, child: bool = False) -> None:
        rng = self.rng
        ending = rng.choices(
            ["value", "error", "group", "broken", "swallow", "child"],
            weights=[70, 10, 3, 3, 7, 0 if child else 7],
        )[0]
        handle = js.spawn(self.task, js, (rng.randrange(6), ending))
        self.handles[handle.id] = handle
        roll = rng.random()
        if roll < 0.05:
            handle.abort()  # before it starts
        elif roll < 0.10:
            self.handles[rng.choice(list(self.handles))].abort()  # running, or finished

    def record(self, outcome: Outcome[object]) -> None:
        self.delivered[outcome.id] += 1
        repr(outcome)  # never raises, even for BrokenStrError
        if not outcome.cancelled() and isinstance(outcome.exception(), BrokenStrError):
            assert "repr failed" in repr(outcome)

    async def consume(self, js: JoinSet[object], seed: float, producer_done: anyio.Event) -> None:
        await consume_randomly(js, random.Random(seed), self.record, producer_done)
        self.consumers_ended += 1

    async def run(self) -> None:
        rng = self.rng
        cancel_body_at = rng.randrange(self.tasks) if rng.random() < 0.3 else None
        producer_done = anyio.Event()
        # The consumers live outside the body's scope: a cancelled body never
        # cancels them. They end by themselves, on None once the producer is done
        # (after the block, the set is empty for good), and the test awaits them.
        async with anyio.create_task_group() as consumers:
            try:
                with anyio.CancelScope() as body:
                    async with JoinSet[object](limit=self.limit) as js:
                        for _ in range(3):
                            consumers.start_soon(self.consume, js, rng.random(), producer_done)
                        for i in range(self.tasks):
                            if self.limit is not None and rng.random() < 0.5:
                                await js.wait_for_capacity()
                            self.spawn(js)
                            if rng.random() < 0.2:
                                await anyio.lowlevel.checkpoint()
                            if i == cancel_body_at:
                                body.cancel()
                                await anyio.lowlevel.checkpoint()  # raises: the block exits
                        producer_done.set()
                        while len(js):
                            await anyio.lowlevel.checkpoint()
                        assert len(js) == 0
            finally:
                producer_done.set()
            self.body_cancelled = body.cancelled_caught
        assert self.consumers_ended == 3, f"seed {self.seed}"
        self.check(js)

    def check(self, js: JoinSet[object]) -> None:
        where = f"seed {self.seed}"
        assert self.alive == 0, where
        assert len(js) == 0, where
        assert len(self.handles) == len(set(self.handles)), where
        assert all(count == 1 for count in self.delivered.values()), where
        assert set(self.delivered) <= set(self.handles), where
        assert all(handle.done() for handle in self.handles.values()), where
        if not self.body_cancelled:
            assert set(self.delivered) == set(self.handles), where


@pytest.mark.deadline(240)  # tens of seconds in debug mode on a busy machine
@pytest.mark.parametrize(("seed", "body_cancelled"), CI_SEEDS.items())
async def test_chaos(seed: int, body_cancelled: bool) -> None:
    """Every fault at once: each id handed out at most once, all accounted for."""
    chaos = Chaos(seed)
    await chaos.run()
    assert chaos.body_cancelled == body_cancelled
    gc.collect()  # a leaked coroutine or stream would warn here, and fail


@pytest.mark.explore(runs=4)
async def test_chaos_on_explored_schedules(request: pytest.FixtureRequest) -> None:
    """Every fault at once on seeded random schedules (tests/explore.py), fewer tasks."""
    chaos = Chaos(seed_for(request.node.nodeid), tasks=1500)
    await chaos.run()
    gc.collect()


def test_chaos_soak(request: pytest.FixtureRequest) -> None:
    """--soak SECONDS: new seeds on every loop and explorer loop until the time is up."""
    seconds = request.config.getoption("soak")
    if not seconds:
        pytest.skip("soak mode only: pytest tests/test_chaos.py --soak SECONDS")
    deadline = time.monotonic() + seconds
    seed = int(time.time())
    runs = 0
    loops = [*LOOPS, *EXPLORE_BACKENDS]
    while time.monotonic() < deadline:
        seed += 1
        loop = loops[seed % len(loops)]
        backend, options = explore_backend(loop, seed) if loop in EXPLORE_BACKENDS else LOOPS[loop]
        try:
            anyio.run(Chaos(seed, tasks=2000).run, backend=backend, backend_options=options)
        except BaseException as exc:
            msg = f"chaos failed on {loop} with seed {seed}"
            raise AssertionError(msg) from exc
        gc.collect()
        runs += 1
    print(f"soak: {runs} chaos runs passed, seeds up to {seed}")  # noqa: T201
