"""The task-group face (API.md S24-S27): a JoinSet or JoinMap where an AnyIO task group goes."""

from __future__ import annotations

import contextvars
import gc
import itertools
import threading
from functools import partial
from typing import Any

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream, TaskGroup, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from anyio_joinset import JoinMap, JoinSet, SetTaskGroup
from helpers import Gate, fail_with, unwind_after, value_of

# A few hundred connections: enough to have many handlers in the set at once.
CLIENTS = 300
# Connections still talking when the graceful shutdown starts.
IN_FLIGHT = 20
IN_FLIGHT_BASE = 10_000  # their lines, apart from the first clients'

VAR = contextvars.ContextVar[str]("VAR", default="unset")


async def read_var() -> str:
    """Return the context variable this task sees."""
    await anyio.lowlevel.checkpoint()
    return VAR.get()


async def ready(value: object, release: anyio.Event, *, task_status: TaskStatus[object]) -> str:
    """Say ready with ``value``, then wait for ``release``."""
    await anyio.lowlevel.checkpoint()
    task_status.started(value)
    await release.wait()
    return f"done {value}"


async def ready_at_once(value: object, *, task_status: TaskStatus[object]) -> str:
    """Say ready and end without a checkpoint (an eager task ends inside the spawn call)."""
    task_status.started(value)
    return f"done {value}"


async def ready_then_end(value: object, *, task_status: TaskStatus[object]) -> str:
    """Say ready at once, then end after one checkpoint."""
    task_status.started(value)
    await anyio.lowlevel.checkpoint()
    return f"done {value}"


async def fail_unready(*, task_status: TaskStatus[None]) -> None:  # noqa: ARG001
    """Fail before calling started()."""
    await anyio.lowlevel.checkpoint()
    raise ValueError("not ready")


# -- what it is (S24) -----------------------------------------------------------


async def test_face_is_an_anyio_task_group_whose_tasks_are_the_sets() -> None:
    """S24: start_soon and create_task spawn into the set: len, join_next once, abort_all."""
    gate = Gate()
    async with JoinSet[object]() as js:
        tg = js.task_group
        assert isinstance(tg, TaskGroup)
        assert isinstance(tg, SetTaskGroup)
        tg.start_soon(value_of, 1)
        tg.create_task(value_of(2))
        tg.start_soon(gate.wait)
        assert len(js) == 3
        values = {(await js.join_next()).result() for _ in range(2)}  # type: ignore[union-attr]
        assert values == {1, 2}
        assert len(js) == 1
        await anyio.wait_all_tasks_blocked()
        js.abort_all()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.cancelled()
        assert gate.started
        assert not gate.finished
        assert await js.join_next() is None


async def test_create_task_runs_the_coroutine_it_was_given() -> None:
    """S25: the task's coroutine is the one given to create_task: it runs once, to its end."""
    async with JoinSet[object]() as js:
        coro = value_of("mine")
        js.task_group.create_task(coro)
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == "mine"
        assert coro.cr_frame is None  # run to its end, here and nowhere else


async def test_a_failure_through_the_face_is_an_outcome_not_a_teardown() -> None:
    """S24 (S6): a handler that raises does not cancel its siblings or the body."""
    gate = Gate()
    async with JoinSet[object]() as js:
        js.task_group.start_soon(fail_with, ValueError("boom"))
        js.task_group.start_soon(gate.wait, "sibling")
        outcome = await js.join_next()
        assert outcome is not None
        with pytest.raises(ValueError, match=r"^boom$"):
            outcome.result()
        gate.release.set()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == "sibling"


async def test_shutdown_and_leaving_the_block_abort_face_tasks() -> None:
    """S24 (S9, S13): face tasks are aborted by shutdown and by leaving the block."""
    gates = [Gate() for _ in range(3)]
    async with JoinSet[object]() as js:
        for gate in gates[:2]:
            js.task_group.start_soon(gate.wait)
        await anyio.wait_all_tasks_blocked()
        await js.shutdown()
        assert len(js) == 0
        js.task_group.start_soon(gates[2].wait)
        await anyio.wait_all_tasks_blocked()
    assert all(gate.started and gate.cleaned_up and not gate.finished for gate in gates)


async def test_a_face_spawn_while_shutdown_waits_is_cancelled_at_its_first_checkpoint() -> None:
    """S25 (S9): a face task spawned while shutdown() waits runs as a task group's task:
    cancelled at its first checkpoint, so its own cleanup runs."""
    release = anyio.Event()
    late = Gate()
    async with JoinSet[object]() as js, anyio.create_task_group() as tg:
        js.spawn(unwind_after, release)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(js.shutdown)
        await anyio.wait_all_tasks_blocked()  # shutdown() waits for the slow unwinding
        handle = js.task_group.start_soon(late.wait)
        release.set()
        await handle.wait()
    assert late.started
    assert late.cleaned_up
    assert not late.finished
    assert len(js) == 0


async def test_a_set_with_a_limit_has_no_face() -> None:
    """S24: a task group starts every task at once, so a limited set refuses the face."""
    msg = (
        r"^This JoinSet has a limit, and a task group starts every task at once: use a "
        r"JoinSet without limit for its task_group, and bound the work with "
        r"wait_for_capacity\(\) or an anyio\.CapacityLimiter\.$"
    )
    async with JoinSet[object](limit=2) as js:
        with pytest.raises(RuntimeError, match=msg):
            js.task_group  # noqa: B018
    async with JoinMap[int, object](limit=2) as jm:
        with pytest.raises(RuntimeError, match=r"^This JoinMap has a limit"):
            jm.task_group(itertools.count().__next__)


async def test_face_under_rate_spawns_in_rate_turn() -> None:
    """S24 (S18): a rate-limited set has a face; its tasks wait for their turn."""
    async with JoinSet[object](rate=1000.0) as js:
        for i in range(3):
            js.task_group.start_soon(value_of, i)
        assert sorted(await js.join_all()) == [0, 1, 2]  # type: ignore[type-var]


# -- what spawning returns (S25) ------------------------------------------------


async def test_the_returned_task_handle_aborts_and_waits_but_carries_no_outcome() -> None:
    """S25: cancel() aborts the set's task, wait() waits for it; awaiting it gives None."""
    gate = Gate()
    async with JoinSet[object]() as js:
        handle = js.task_group.start_soon(gate.wait, "value")
        assert handle.status is anyio.TaskHandle.Status.PENDING
        await anyio.wait_all_tasks_blocked()
        handle.cancel()
        await handle.wait()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.cancelled()
        assert gate.cleaned_up
        failing = js.task_group.start_soon(fail_with, ValueError("kept in the outcome"))
        await failing.wait()
        assert failing.status is anyio.TaskHandle.Status.FINISHED  # the wrapper's: it captured it
        outcome = await js.join_next()
        assert outcome is not None
        assert isinstance(outcome.exception(), ValueError)
        done = js.task_group.create_task(value_of("kept"), name="kept")
        assert done.name == "kept"
        assert await done is None  # the wrapper's: the value is the set's to hand out
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == "kept"


async def test_names_as_given_by_the_caller() -> None:
    """S25: str(name) when given (AnyIO's start_soon always gives one), else the qualname."""
    async with JoinSet[object]() as js:
        js.task_group.start_soon(value_of, 1)
        js.task_group.create_task(value_of(2), name=42)
        js.task_group.create_task(value_of(3))
        await js.task_group.start(ready_at_once, 4, name=("started", 4))
        handle = await js.task_group.start(ready_at_once, 5, name="five", return_handle=True)
        assert handle.name == "five"
        names = sorted([outcome.name async for outcome in js])
    assert names == ["('started', 4)", "42", "five", "helpers.value_of", "value_of"]


async def test_create_task_runs_in_a_copy_of_the_given_context() -> None:
    """S25: create_task(context=...) runs the task in a copy of that context."""
    context = contextvars.copy_context()
    context.run(VAR.set, "given")
    VAR.set("caller")
    async with JoinSet[str]() as js:
        js.task_group.create_task(read_var(), context=context)
        js.task_group.create_task(read_var())
        assert sorted(await js.join_all()) == ["caller", "given"]


async def test_create_task_refuses_what_is_not_a_coroutine() -> None:
    """S25 (S3): create_task takes a coroutine object; anything else is a TypeError."""
    msg = (
        r"^JoinSet\.task_group\.create_task\(\) takes a coroutine object, not function; "
        r"pass a function and its arguments to start_soon\(\) instead\.$"
    )
    async with JoinSet[object]() as js:
        with pytest.raises(TypeError, match=msg):
            js.task_group.create_task(value_of)  # type: ignore[arg-type]
        assert len(js) == 0


async def test_spawning_outside_the_block_is_refused_and_closes_the_coroutine() -> None:
    """S25 (S3): before or after the block, create_task raises and closes the coroutine."""
    js = JoinSet[object]()
    face = js.task_group
    coro = value_of(1)
    with pytest.raises(
        RuntimeError,
        match=r"^This JoinSet is not open yet; call task_group\.create_task\(\) inside its "
        r"async with block\.$",
    ):
        face.create_task(coro)
    assert coro.cr_frame is None  # closed: no "never awaited" warning
    async with js:
        pass
    with pytest.raises(
        RuntimeError,
        match=r"^This JoinSet is closed; task_group\.create_task\(\) can no longer start tasks\.$",
    ):
        face.start_soon(value_of, 1)
    gc.collect()


async def test_spawning_from_another_thread_is_refused() -> None:
    """S25 (S2): the face belongs to the set's event loop, as every method of the set."""
    errors: list[BaseException] = []
    coro = value_of(1)

    def other_thread(face: SetTaskGroup) -> None:
        try:
            face.create_task(coro)
        except RuntimeError as exc:
            errors.append(exc)

    async with JoinSet[object]() as js:
        thread = threading.Thread(target=other_thread, args=(js.task_group,))
        thread.start()
        await anyio.to_thread.run_sync(thread.join)
        assert len(js) == 0
    assert len(errors) == 1
    assert str(errors[0]).startswith(
        "JoinSet.task_group.create_task() was called from another thread or event loop"
    )
    assert coro.cr_frame is None


# -- start() through the face (S21, S25) ----------------------------------------


async def test_start_returns_the_value_and_the_task_joins_the_set() -> None:
    """S21, S25: the face's start() is the set's: ready value back, outcome once through the set."""
    release = anyio.Event()
    async with JoinSet[object]() as js:
        value = await js.task_group.start(ready, "port", release)
        assert value == "port"
        assert len(js) == 1
        release.set()
        assert await js.join_all() == ["done port"]


async def test_start_of_a_task_that_fails_before_ready_raises_and_leaves_nothing() -> None:
    """S21, S25: a task that fails before started(): start() raises, join_next sees nothing."""
    async with JoinSet[object]() as js:
        with pytest.raises(ValueError, match=r"^not ready$"):
            await js.task_group.start(fail_unready)
        assert len(js) == 0
        assert await js.join_next() is None


@pytest.mark.parametrize("body", [ready, ready_then_end, ready_at_once])
async def test_start_with_return_handle_gives_a_task_handle_with_the_start_value(
    body: Any,
) -> None:
    """S25: start(return_handle=True) gives the TaskHandle and start_value, however soon it ends."""
    release = anyio.Event()
    args = (7, release) if body is ready else (7,)
    async with JoinSet[object]() as js:
        handle = await js.task_group.start(body, *args, return_handle=True)
        assert isinstance(handle, anyio.TaskHandle)
        assert handle.start_value == 7
        assert handle.name == body.__qualname__
        release.set()
        await handle.wait()
        assert await js.join_all() == ["done 7"]


async def test_start_return_handle_must_be_a_bool() -> None:
    """S25 (S3): return_handle is checked as the set's start() checks it."""
    async with JoinSet[object]() as js:
        bad_flag = r"^JoinSet\.start\(\) return_handle must be True or False"
        with pytest.raises(TypeError, match=bad_flag):
            await js.task_group.start(ready_at_once, 1, return_handle=1)  # type: ignore[call-overload]
        bad_func = r"^JoinSet\.task_group\.start\(\) expects an async function"
        with pytest.raises(TypeError, match=bad_func):
            await js.task_group.start(42, return_handle=True)  # type: ignore[call-overload]
        assert len(js) == 0


# -- lifetime and cancel scope (S26) ----------------------------------------------


async def test_the_face_is_never_entered() -> None:
    """S26: async with on the face raises: the set's own block owns the lifetime."""
    msg = (
        r"^JoinSet\.task_group is the task group of the open JoinSet and cannot be entered; "
        r"pass it where a task group is expected, inside the JoinSet's own async with block\.$"
    )
    async with JoinSet[object]() as js:
        entered = False
        with pytest.raises(RuntimeError, match=msg):
            async with js.task_group:
                entered = True  # pragma: no cover
        assert not entered
        with pytest.raises(RuntimeError, match=msg):
            await js.task_group.__aenter__()
        with pytest.raises(RuntimeError, match=msg):
            await js.task_group.__aexit__(None, None, None)
        js.task_group.start_soon(value_of, 1)
        assert await js.join_all() == [1]


async def test_cancel_is_abort_all() -> None:
    """S26 (S8): the face's cancel() aborts every task; the body and later tasks run on."""
    gates = [Gate(), Gate()]
    async with JoinSet[object]() as js:
        for gate in gates:
            js.task_group.start_soon(gate.wait)
        await anyio.wait_all_tasks_blocked()
        js.task_group.cancel("reason")
        outcomes = [await js.join_next() for _ in gates]
        assert all(outcome is not None and outcome.cancelled() for outcome in outcomes)
        await anyio.lowlevel.checkpoint()  # the body was not cancelled
        js.task_group.start_soon(value_of, "later")
        assert await js.join_all() == ["later"]
    assert all(gate.cleaned_up and not gate.finished for gate in gates)


async def test_the_face_has_no_cancel_scope_to_give() -> None:
    """S26: cancel_scope is refused (it would cancel the block's body too); it cannot be set."""
    msg = (
        r"^JoinSet\.task_group has no cancel scope to give: the set's task group's scope "
        r"would also cancel the body of its async with block; call task_group\.cancel\(\) "
        r"or JoinSet\.abort_all\(\) to abort its tasks, or cancel a scope around the block\.$"
    )
    js = JoinSet[object]()
    with pytest.raises(RuntimeError, match=msg):
        js.task_group.cancel_scope  # noqa: B018
    async with js:
        with pytest.raises(RuntimeError, match=msg):
            js.task_group.cancel_scope  # noqa: B018
        with pytest.raises(
            AttributeError,
            match=r"^JoinSet\.task_group\.cancel_scope cannot be set; the set's block owns its "
            r"scope\.$",
        ):
            js.task_group.cancel_scope = anyio.CancelScope()
    assert repr(js.task_group).startswith("<JoinSet.task_group of <JoinSet closed")


async def test_cancel_from_another_thread_is_refused() -> None:
    """S26 (S2): cancel() belongs to the set's event loop, as abort_all does."""
    errors: list[BaseException] = []

    def other_thread(face: SetTaskGroup) -> None:
        try:
            face.cancel()
        except RuntimeError as exc:
            errors.append(exc)

    async with JoinSet[object]() as js:
        thread = threading.Thread(target=other_thread, args=(js.task_group,))
        thread.start()
        await anyio.to_thread.run_sync(thread.join)
    assert len(errors) == 1
    assert str(errors[0]).startswith(
        "JoinSet.task_group.cancel() was called from another thread or event loop"
    )


# -- JoinMap (S27) ----------------------------------------------------------------


async def test_joinmap_face_keys_each_task_with_key_func() -> None:
    """S27: each task started through the face gets the next key_func() key."""
    release = anyio.Event()
    async with JoinMap[int, object]() as jm:
        face = jm.task_group(itertools.count().__next__)
        face.start_soon(value_of, "a")
        face.create_task(value_of("b"))
        assert await face.start(ready, "c", release) == "c"
        assert sorted(jm.keys()) == [0, 1, 2]
        release.set()
        assert sorted(await jm.join_all()) == [(0, "a"), (1, "b"), (2, "done c")]  # type: ignore[type-var]


async def test_joinmap_face_key_already_in_the_map_replaces_its_task() -> None:
    """S27 (S16): a key_func key already in the map replaces that key's task."""
    gate = Gate()
    async with JoinMap[str, object]() as jm:
        jm.spawn("same", gate.wait)
        await anyio.wait_all_tasks_blocked()
        jm.task_group(lambda: "same").start_soon(value_of, "new")
        assert list(jm.keys()) == ["same"]
        assert await jm.join_all() == [("same", "new")]
        assert gate.cleaned_up


async def test_joinmap_face_refuses_bad_key_funcs() -> None:
    """S27 (S3): key_func must be callable; a raising or unhashable key spawns nothing."""
    async with JoinMap[Any, object]() as jm:
        with pytest.raises(
            TypeError,
            match=r"^JoinMap\.task_group\(\) takes a function that returns each task's key, "
            r"not int; e\.g\. itertools\.count\(\)\.__next__\.$",
        ):
            jm.task_group(42)  # type: ignore[arg-type]

        def broken() -> str:
            raise LookupError("no key")

        coro = value_of(1)
        with pytest.raises(LookupError, match=r"^no key$"):
            jm.task_group(broken).create_task(coro)
        assert coro.cr_frame is None
        with pytest.raises(TypeError, match=r"unhashable type: 'list'"):
            jm.task_group(list).start_soon(value_of, 1)
        with pytest.raises(LookupError, match=r"^no key$"):
            await jm.task_group(broken).start(ready_at_once, 1)
        assert len(jm) == 0
    gc.collect()


# -- a real server (S24, S21, S9) -----------------------------------------------------


async def serve_lines(handler: Any, task_group: TaskGroup, *, task_status: TaskStatus[int]) -> None:
    """Listen on an ephemeral 127.0.0.1 port, say which, and serve into ``task_group``."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener:
        task_status.started(listener.extra(SocketAttribute.local_port))  # noqa: S610 - not Django
        await listener.serve(handler, task_group=task_group)


async def test_a_real_tcp_server_serves_its_handlers_through_the_face() -> None:
    """S24: listener.serve(handler, task_group=js.task_group) fills the set; graceful shutdown."""
    accepted = 0
    all_accepted = anyio.Event()
    target = CLIENTS
    finished: list[bytes] = []

    async def echo(stream: SocketStream) -> bytes:
        nonlocal accepted
        async with stream:
            accepted += 1
            if accepted == target:
                all_accepted.set()
            line = await BufferedByteReceiveStream(stream).receive_until(b"\n", 64)
            await stream.send(line + b"\n")
        finished.append(line)
        return line

    async def client(port: int, i: int, go: anyio.Event | None = None) -> bytes:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            if go is not None:
                await go.wait()
            await stream.send(b"%d\n" % i)
            return await BufferedByteReceiveStream(stream).receive_until(b"\n", 64)

    async with JoinSet[object]() as js:
        server = await js.task_group.start(serve_lines, echo, js.task_group, return_handle=True)
        port = server.start_value
        assert isinstance(port, int)
        # Phase 1: a few hundred connections, every handler's outcome taken from the set.
        async with JoinSet[bytes](limit=100) as clients:
            for i in range(CLIENTS):
                await clients.wait_for_capacity()
                clients.spawn(client, port, i)
            lines = set()
            for _ in range(CLIENTS):
                outcome = await js.join_next()
                assert outcome is not None
                lines.add(outcome.result())
            replies = set(await clients.join_all())
        expected = {b"%d" % i for i in range(CLIENTS)}
        assert lines == expected
        assert replies == expected
        assert len(js) == 1  # only the server is left
        # Phase 2: graceful shutdown with connections still talking.
        await all_accepted.wait()
        accepted, target, all_accepted = 0, IN_FLIGHT, anyio.Event()
        go = anyio.Event()
        async with anyio.create_task_group() as talking:
            for i in range(IN_FLIGHT_BASE, IN_FLIGHT_BASE + IN_FLIGHT):
                talking.start_soon(client, port, i, go)
            await all_accepted.wait()  # every in-flight handler is in the set
            assert len(js) == 1 + IN_FLIGHT
            server.cancel()  # stop accepting
            await server.wait()
            async with anyio.create_task_group() as stopping:
                stopping.start_soon(partial(js.shutdown, grace=60))
                await anyio.wait_all_tasks_blocked()
                assert repr(js).startswith("<JoinSet shutting down")
                go.set()  # the in-flight connections finish within the grace period
        assert sorted(finished[CLIENTS:]) == sorted(
            b"%d" % i for i in range(IN_FLIGHT_BASE, IN_FLIGHT_BASE + IN_FLIGHT)
        )
        assert len(js) == 0
        assert js.stats().cancelled == 1  # the server alone: no handler was aborted


class _Resource:
    """Something a task is handed and must close itself, as serve() hands a stream."""

    def __init__(self) -> None:
        self.closed = False

    async def __aenter__(self) -> _Resource:  # noqa: PYI034 - a private helper
        return self

    async def __aexit__(self, *_: object) -> None:
        self.closed = True


async def _use(resource: _Resource) -> None:
    async with resource:
        await anyio.sleep_forever()


@pytest.mark.parametrize("how", ["abort_all", "cancel", "block exit"])
async def test_a_face_task_aborted_before_it_starts_still_closes_what_it_was_handed(
    how: str,
) -> None:
    """S25: a face task aborted before its first step runs to its first checkpoint, as a
    task group's task does, so a resource it was handed is closed by its own code."""
    resource = _Resource()
    async with JoinSet[None]() as js:
        js.task_group.start_soon(_use, resource)
        if how == "abort_all":
            js.abort_all()
        elif how == "cancel":
            js.task_group.cancel()
        if how != "block exit":
            outcome = await js.join_next()
            assert outcome is not None
            assert outcome.cancelled()
    assert resource.closed
