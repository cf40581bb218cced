"""JoinMap's keys (API.md S16, amended 2026-12-06): key objects, raising keys, replacement."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from typing import Any

import anyio
import pytest

from anyio_joinset import JoinMap
from helpers import OLD_ANYIO_LEAKS, fail_with, forever, value_of


class Clash:
    """A key whose hash collides with every other Clash and whose ``__eq__`` may raise."""

    def __init__(self, name: str, *, raises: bool = False) -> None:
        self.name = name
        self.raises = raises

    def __hash__(self) -> int:
        return 7

    def __eq__(self, other: object) -> bool:
        if self.raises or (isinstance(other, Clash) and other.raises):
            msg = "cannot compare these keys"
            raise ArithmeticError(msg)
        return isinstance(other, Clash) and other.name == self.name


async def wait_then_return(release: anyio.Event, value: object) -> object:
    """Return ``value`` once ``release`` is set."""
    await release.wait()
    return value


@dataclasses.dataclass(frozen=True)
class Tagged:
    """Equal when ``id`` is equal, whatever ``note`` says."""

    id: int
    note: str = dataclasses.field(compare=False)


async def test_a_key_whose_eq_raises_leaves_the_map_unchanged() -> None:
    """S16: an __eq__ that raises under a colliding hash propagates; len, stats, keys unchanged."""
    async with JoinMap[Clash, object]() as jm:
        first = Clash("first")
        jm.spawn(first, forever)
        before = (len(jm), jm.stats(), list(jm.keys()))
        with pytest.raises(ArithmeticError, match=r"^cannot compare these keys$"):
            jm.spawn(Clash("second", raises=True), value_of, 1)
        assert (len(jm), jm.stats(), list(jm.keys())) == before
        assert next(iter(jm.keys())) is first
        jm.abort(first)
        pairs = [(key, outcome.cancelled()) async for key, outcome in jm]
    assert pairs == [(first, True)]


@pytest.mark.parametrize(
    ("old", "new"),
    [(1, 1.0), (1, True), (Tagged(1, "old"), Tagged(1, "new"))],
    ids=["int-float", "int-bool", "dataclass-compare-false"],
)
async def test_replacing_under_an_equal_key_stores_the_new_key_object(old: Any, new: Any) -> None:
    """S16: keys() and join_next agree on the key object: the newer one (tokio-util's choice)."""
    async with JoinMap[Any, object]() as jm:
        jm.spawn(old, forever)
        jm.spawn(new, value_of, "new")
        (key,) = jm.keys()
        assert key is new
        pair = await jm.join_next()
        assert pair is not None
        assert pair[0] is new
        assert pair[1].result() == "new"
        assert await jm.join_next() is None


async def test_abort_matching_aborts_the_task_a_key_had_when_asked() -> None:
    """S16/S7: a predicate that spawns a later key again leaves that new task running."""
    release = anyio.Event()
    async with JoinMap[str, object]() as jm:
        jm.spawn("a", forever)
        jm.spawn("b", forever)

        def predicate(key: str) -> bool:
            if key == "a":
                jm.spawn("b", release.wait)  # replaces b's task before b is asked
                return False
            return key == "b"

        jm.abort_matching(predicate)
        # Asked about "b" after the respawn: the new task is aborted, not the
        # replaced one (already aborted by the replacement).
        pair = await jm.join_next()
        assert pair is not None
        assert pair[0] == "b"
        assert pair[1].cancelled()
        assert list(jm.keys()) == ["a"]
        jm.abort("a")
        assert [key async for key, _ in jm] == ["a"]


async def test_abort_matching_skips_a_key_the_predicate_respawned_itself() -> None:
    """S16/S7: the key's task when the predicate was asked is the one aborted."""
    got: list[object] = []
    async with JoinMap[str, object]() as jm:
        jm.spawn("k", forever)

        def predicate(key: str) -> bool:
            jm.spawn(key, value_of, "fresh")  # a new task for the same key
            return True

        jm.abort_matching(predicate)
        got.extend([(key, outcome.result()) async for key, outcome in jm])
    # The old task was replaced (its outcome never comes out); aborting the old
    # one does not touch the fresh task.
    assert got == [("k", "fresh")]


async def test_keys_is_a_snapshot_that_later_spawns_do_not_change() -> None:
    """S16: an iteration of keys() begun before a spawn goes on with the keys of its call."""
    async with JoinMap[int, object]() as jm:
        for i in range(3):
            jm.spawn(i, forever)
        keys = iter(jm.keys())
        assert next(keys) == 0
        jm.spawn(3, forever)  # a live view's iterator raises "changed size" here
        jm.abort(1)
        assert list(keys) == [1, 2]
        jm.abort_all()


async def test_keys_is_readable_from_another_thread() -> None:
    """S16/S2: iterating keys() in a worker thread while the loop spawns never raises."""
    async with JoinMap[int, object]() as jm:
        for i in range(50):
            jm.spawn(i, forever)
        stop = threading.Event()
        errors: list[BaseException] = []

        def read() -> None:
            try:
                while not stop.is_set():
                    for _ in jm.keys():  # noqa: SIM118 - keys() is what is tested
                        # Hand the GIL to the loop at every key, so the loop spawns
                        # mid-iteration (and is never held off for a switch interval).
                        time.sleep(0)
            except BaseException as exc:
                errors.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for i in range(50, 1000):
                jm.spawn(i, forever)
                if i % 50 == 0:
                    await anyio.lowlevel.checkpoint()
        finally:
            stop.set()
            reader.join()
        assert errors == []
        jm.abort_all()


@pytest.mark.parametrize("anyio_backend", ["asyncio"], indirect=True)
@OLD_ANYIO_LEAKS
async def test_a_refused_start_keeps_the_old_task_and_the_stats() -> None:
    """S16/S3: a task factory that raises leaves the key's old task running, stats unmoved."""
    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()
    async with JoinMap[str, object]() as jm:
        release = anyio.Event()
        old = jm.spawn("k", wait_then_return, release, "old")
        await anyio.wait_all_tasks_blocked()
        before = (len(jm), jm.stats(), list(jm.keys()))

        def refuse(*_args: Any, **_kwargs: Any) -> Any:
            msg = "no new tasks"
            raise OSError(msg)

        loop.set_task_factory(refuse)
        try:
            with pytest.raises(OSError, match=r"^no new tasks$"):
                jm.spawn("k", value_of, "new")
        finally:
            loop.set_task_factory(factory)
        assert (len(jm), jm.stats(), list(jm.keys())) == before
        assert not old.done()
        release.set()
        pairs = [(key, outcome.result()) async for key, outcome in jm]
    assert pairs == [("k", "old")]


async def test_a_put_back_outcome_loses_to_a_newer_task_of_its_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S16 over S11: a put-back outcome is dropped when its key was spawned again."""
    error = ValueError("old and put back")
    with caplog.at_level(logging.WARNING, logger="anyio_joinset"):
        async with JoinMap[str, object]() as jm:
            jm.spawn("k", fail_with, error)
            jm.spawn("slow", forever)
            await anyio.wait_all_tasks_blocked()
            with anyio.CancelScope() as scope:

                async def respawn_then_cancel() -> None:
                    await anyio.wait_all_tasks_blocked()  # join_all holds k's outcome
                    jm.spawn("k", value_of, "new")
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(respawn_then_cancel)
                    await jm.join_all(fail_fast=False)
            assert scope.cancelled_caught
            jm.abort("slow")
            pairs = [(key, outcome.cancelled() or outcome.result()) async for key, outcome in jm]
    assert sorted(pairs) == [("k", "new"), ("slow", True)]
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert logged == [error]


class FlakyHash:
    """A key whose hash works for its first ``good`` calls and raises after (S16)."""

    def __init__(self, good: int) -> None:
        self.good = good
        self.calls = 0

    def __hash__(self) -> int:
        self.calls += 1
        if self.calls > self.good:
            msg = "this key's hash fails from now on"
            raise ArithmeticError(msg)
        return 7

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FlakyHash)


async def test_a_key_whose_hash_fails_on_its_store_leaves_the_map_unchanged() -> None:
    """S16: a hash that works for the look-up and fails for the store: nothing changes."""
    release = anyio.Event()
    async with JoinMap[object, object]() as jm:
        jm.spawn("a", wait_then_return, release, 1)
        before = (len(jm), list(jm.keys()), jm.stats())
        with pytest.raises(ArithmeticError, match="fails from now on"):
            jm.spawn(FlakyHash(good=1), wait_then_return, release, 2)  # no "never awaited"
        assert (len(jm), list(jm.keys()), jm.stats()) == before
        release.set()
        assert await jm.join_all() == [("a", 1)]


async def test_a_key_whose_hash_fails_when_it_replaces_keeps_the_old_task() -> None:
    """S16: a replacement whose key's hash fails after the look-up keeps the old task."""
    release = anyio.Event()
    old_key = FlakyHash(good=10**9)
    async with JoinMap[object, object]() as jm:
        jm.spawn(old_key, wait_then_return, release, "old")
        before = (len(jm), jm.stats())
        # Its look-up finds the old key; taking the old task out works; the store fails.
        with pytest.raises(ArithmeticError, match="fails from now on"):
            jm.spawn(FlakyHash(good=2), wait_then_return, release, "new")
        assert (len(jm), jm.stats()) == before
        assert next(iter(jm.keys())) is old_key
        release.set()
        assert await jm.join_all() == [(old_key, "old")]


async def test_a_key_whose_hash_fails_for_good_when_it_replaces_itself() -> None:
    """
    S16: spawned again under the very key object, whose hash then fails for good.

    The old task cannot be put back under it: it is replaced (aborted, never
    handed out), so ``len``, ``keys()`` and ``join_next`` still agree; the
    spawn raises the key's error.
    """
    key = FlakyHash(good=4)  # two calls for its first spawn, two for the next look-up
    ran: list[str] = []

    async def old() -> None:
        ran.append("old")
        await anyio.sleep_forever()

    async with JoinMap[object, None]() as jm:
        handle = jm.spawn(key, old)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(ArithmeticError, match="fails from now on"):
            jm.spawn(key, old)
        assert (len(jm), list(jm.keys()), jm.stats().running) == (0, [], 1)
        await handle.wait()
        assert handle.aborted
        assert await jm.join_next() is None
    assert ran == ["old"]
