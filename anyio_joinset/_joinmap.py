# The JoinMap face of the engine (``_engine.py``): the same tasks, hand-off and
# combinators as JoinSet, with a key per task. The engine keeps the key index
# (``_keys``) itself, so ``len``, ``keys()`` and ``in`` change in the same step
# as the outcomes they describe.
# pyright: reportPrivateUsage=false
from __future__ import annotations

import sys
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Hashable,
    Iterable,
    KeysView,
)
from concurrent.futures import Executor, Future
from threading import get_ident
from types import FunctionType
from typing import TYPE_CHECKING, Any, Generic, Literal, Union, cast, final, overload

from anyio.lowlevel import checkpoint

from . import _combinators as combinators
from . import _instrument as instrument_hooks
from . import _introspect as introspect
from . import _start as starting
from ._calling import CO_COROUTINE, check_flag, check_predicate, close_coroutines
from ._engine import Engine
from ._feed import feed
from ._joinset import JoinSet, JoinSetStats
from ._offload import future_call, process_call, submit_call, thread_call
from ._outcome import DETACHED, HANDED_OUT, Outcome
from ._states import CLOSED, OPEN
from ._taskgroup import face_of

# PEP 696 type parameter defaults: typing has them from 3.13 on.
if sys.version_info < (3, 13):
    from typing_extensions import TypeVar
else:
    from typing import TypeVar

if TYPE_CHECKING:
    from anyio import CapacityLimiter

    from ._feed import Feed
    from ._handle import JoinHandle
    from ._introspect import SetSnapshot
    from ._start import Follow
    from ._taskgroup import SetTaskGroup

    if sys.version_info >= (3, 11):
        from typing import TypeVarTuple, Unpack
    else:
        from typing_extensions import TypeVarTuple, Unpack

    PosArgsT = TypeVarTuple("PosArgsT")

# A bare JoinMap() is a JoinMap[Hashable, object], as a bare JoinSet() is a
# JoinSet[object]; JoinMap[str]() is a JoinMap[str, object].
K = TypeVar("K", bound=Hashable, default=Hashable)
T = TypeVar("T", default=object)


@final
class JoinMap(Engine[T], Generic[K, T]):
    """
    A set of keyed tasks, like tokio-util's ``JoinMap``: the keyed face of `JoinSet`.

    Every capability and rule of `JoinSet` holds (API.md S1-S20), taking or
    returning the key where a `JoinSet` takes or returns a handle or an outcome:
    outcomes come out as ``(key, outcome)`` pairs in completion order, ``len``
    counts keys. Spawning under a key that already has a task aborts the old task;
    its outcome is never handed out (a failure it had is logged, S13).

    Args:
        limit: Run at most this many tasks at once (API.md S14).
        rate: Starts per second, or ``(count, per_seconds)`` (S18), as for `JoinSet`.
    """

    __slots__ = ()
    _face = "JoinMap"

    def __init__(
        self, *, limit: int | None = None, rate: float | tuple[int, float] | None = None
    ) -> None:
        super().__init__(limit, rate)
        self._keys = {}

    @property
    def _key_map(self) -> dict[K, JoinHandle[T]]:
        return cast("dict[K, JoinHandle[T]]", self._keys)

    def _thread_hint(self) -> str:
        return "spawn_thread(key, {f}, *args)"

    # -- spawning (S2, S3, S16, S17) ----------------------------------------

    def spawn(
        self,
        key: K,
        func: Callable[[Unpack[PosArgsT]], Coroutine[Any, Any, T]],
        /,
        *args: Unpack[PosArgsT],
        name: str | None = None,
    ) -> JoinHandle[T]:
        """
        Start ``func(*args)`` as the task for ``key`` (API.md S2, S3, S16).

        Synchronous, like `JoinSet.spawn`. If ``key`` already has a task whose
        outcome was not handed out yet, that task is aborted and its outcome is
        never handed out: the new task replaces it.

        Args:
            key: Any hashable key.
            func: A callable that returns a coroutine.
            *args: Positional arguments for ``func``.
            name: The task's name; defaults to the function's qualified name.

        Returns:
            The new task's handle.

        Raises:
            RuntimeError: If the map is not open, or if called from another thread
                or event loop.
            TypeError: If ``key`` is unhashable or ``func`` does not return a
                coroutine; nothing starts and the map is unchanged.
        """
        if (
            type(func) is FunctionType
            and func.__code__.co_flags & CO_COROUTINE
            and self._state == OPEN
            and self._thread == get_ident()
            and (name is None or type(name) is str)
        ):
            # The common case, a plain ``async def``, in one call less. An
            # unhashable key fails in _add's first look-up, which closes the
            # coroutine and leaves the map unchanged; the message is made clear here.
            coro = func(*args)
            try:
                return self._add(coro, coro.__qualname__ if name is None else name, key)
            except TypeError:
                _check_key(key, "JoinMap.spawn()")
                raise
        _check_key(key, "JoinMap.spawn()", func)
        return self._spawn(func, args, name, key)

    @overload
    async def start(
        self,
        key: K,
        func: Callable[..., Coroutine[Any, Any, T]],
        /,
        *args: object,
        name: str | None = None,
        return_handle: Literal[False] = False,
    ) -> Any: ...  # noqa: ANN401 - as AnyIO's TaskGroup.start: the start value is untyped

    @overload
    async def start(
        self,
        key: K,
        func: Callable[..., Coroutine[Any, Any, T]],
        /,
        *args: object,
        name: str | None = None,
        return_handle: Literal[True],
    ) -> JoinHandle[T]: ...

    async def start(
        self,
        key: K,
        func: Callable[..., Coroutine[Any, Any, T]],
        /,
        *args: object,
        name: str | None = None,
        return_handle: bool = False,
    ) -> Any:
        """
        Start ``func(*args, task_status=...)`` as ``key``'s task; wait until it is ready.

        As `JoinSet.start` (S21). The task takes ``key`` when it calls
        ``task_status.started()``: only then is the key's old task, if any,
        replaced (S16), so a worker restarted under its key keeps the old one
        running until the new one is ready. If the new task ends before
        ``started()``, the old one is untouched.
        """
        _check_key(key, "JoinMap.start()", func)
        return await starting.start(self, func, args, name, key, return_handle)

    def follow(self) -> Follow[T, tuple[K, Outcome[T]]]:
        """``(key, outcome)`` pairs as tasks finish, for the life of the block (S22)."""
        return starting.follow(self, combinators.tagged)

    def detach_all(self) -> None:
        """Detach every task and forget every key: ``len`` is 0 (S22), as `JoinSet.detach_all`."""
        self._check_thread("detach_all()")
        self._detach_all()

    def spawn_thread(
        self,
        key: K,
        func: Callable[[Unpack[PosArgsT]], T],
        /,
        *args: Unpack[PosArgsT],
        name: str | None = None,
        abandon_on_cancel: bool = False,
        limiter: CapacityLimiter | None = None,
    ) -> JoinHandle[T]:
        """Run the sync ``func(*args)`` in a thread as ``key``'s task, as `JoinSet.spawn_thread`."""
        self._check_spawn("spawn_thread()", func)
        _check_key(key, "JoinMap.spawn_thread()", func)
        coro, name = thread_call(
            func, args, name, abandon_on_cancel, limiter, "JoinMap.spawn_thread()"
        )
        return self._add(coro, name, key)

    def spawn_process(
        self,
        key: K,
        func: Callable[[Unpack[PosArgsT]], T],
        /,
        *args: Unpack[PosArgsT],
        name: str | None = None,
        cancellable: bool = False,
    ) -> JoinHandle[T]:
        """Run ``func(*args)`` in a worker process as ``key``'s task, as `JoinSet.spawn_process`."""
        self._check_spawn("spawn_process()", func)
        _check_key(key, "JoinMap.spawn_process()", func)
        coro, name = process_call(func, args, name, cancellable, "JoinMap.spawn_process()")
        return self._add(coro, name, key)

    def spawn_future(
        self, key: K, future: Future[T], /, *, name: str | None = None
    ) -> JoinHandle[T]:
        """Adopt a `concurrent.futures.Future` as ``key``'s task, as `JoinSet.spawn_future`."""
        self._check_spawn("spawn_future()", future)
        _check_key(key, "JoinMap.spawn_future()", future)
        awaitable, name = future_call(future, name, "JoinMap.spawn_future()")
        return self._add(awaitable, name, key)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    def spawn_submit(
        self,
        key: K,
        executor: Executor,
        func: Callable[[Unpack[PosArgsT]], T],
        /,
        *args: Unpack[PosArgsT],
        name: str | None = None,
    ) -> JoinHandle[T]:
        """Submit ``func(*args)`` to ``executor`` as ``key``'s task, as `JoinSet.spawn_submit`."""
        self._check_spawn("spawn_submit()", executor, func)
        _check_key(key, "JoinMap.spawn_submit()", func)
        coro, name = submit_call(executor, func, args, name, "JoinMap.spawn_submit()")
        return self._add(coro, name, key)

    def map(
        self,
        func: Callable[[K], Coroutine[Any, Any, T]],
        inputs: Iterable[K] | AsyncIterable[K],
        /,
    ) -> Feed[T, tuple[K, Outcome[T]]]:
        """
        Feed the map from ``inputs``, each item its own key (S20), as `JoinSet.map`.

        ``async for key, outcome in jm.map(func, inputs)`` spawns ``func(key)``
        under ``key`` for each input, lazily, as ``limit`` and ``rate`` allow, and
        yields every outcome of the map (tasks spawned by hand meanwhile included)
        with its key, until the inputs are exhausted and the map is empty. An
        unhashable input is raised by the iteration, as the inputs' own errors are,
        and kept in ``Feed.unfed``. ``async with jm.map(func, inputs) as feed:``
        gives the feeding a block of its own, as for a `JoinSet`.
        """

        def spawn(key: K) -> None:
            _check_key(key, "JoinMap.map()")
            self._spawn(func, (key,), None, key, "map()")

        return feed(self, func, inputs, spawn, combinators.tagged)

    # -- the task-group face (S24-S27) ----------------------------------------

    def task_group(self, key_func: Callable[[], K], /) -> SetTaskGroup:
        """
        This map as an ``anyio.abc.TaskGroup``, its keys made by ``key_func`` (S24, S27).

        As `JoinSet.task_group`, but a method: an API that takes a task group starts
        tasks without keys, so ``key_func()`` is called once for each task started
        through the face, in the starting call, and the task is spawned under the
        key it returns (``itertools.count().__next__`` numbers them). A key that is
        already in the map replaces that key's task, as `spawn` does (S16).

        Args:
            key_func: Called with no arguments for each task; returns its key.

        Returns:
            The task-group face. Cheap: a new small object on each call.

        Raises:
            TypeError: If ``key_func`` is not callable (S3).
            RuntimeError: If the map has a ``limit`` (S24).
        """
        if not callable(cast("object", key_func)):
            msg = (
                f"JoinMap.task_group() takes a function that returns each task's key, "
                f"not {type(key_func).__name__}; e.g. itertools.count().__next__."
            )
            raise TypeError(msg)
        return face_of(self, key_func)

    # -- joining (S5, S10, S11, S12, S19) -----------------------------------

    async def join_next(self) -> tuple[K, Outcome[T]] | None:
        """
        Wait for the next task to finish and return ``(key, outcome)`` (S5).

        A checkpoint on every call; cancel-safe; ``None`` at once when no key is
        left, also for a caller already waiting when the last key is taken.
        """
        # The engine's _next, inline: this runs once per task.
        if self._thread != get_ident():
            self._check_thread("join_next()")
        await checkpoint()
        while not self._nready:
            if not self._pending or self._state == CLOSED:
                return None
            await self._wait()
        if self._front or self._waiters or self._room is not None or self._hooks is not None:
            popped = self._pop()
            return cast("K", popped._handle._key), popped
        # _pop's common case, inline (nothing put back, nobody else waiting), as
        # in JoinSet.join_next.
        handle = self._pull()
        while handle._flags >= DETACHED:
            handle = self._pull()  # a task replaced after it finished: skipped
        self._nready -= 1
        self._pending -= 1
        key: Any = handle._key  # no cast(): a call, and this runs once per task
        del self._keys[key]  # type: ignore[union-attr]  # pyright: ignore[reportOptionalSubscript]
        outcome: Outcome[T] = Outcome()
        outcome._handle = handle
        outcome._kind = handle._kind
        outcome._payload = handle._payload
        handle._payload = None  # the outcome holds it now: no cycle is left
        handle._kind = HANDED_OUT
        return key, outcome

    def try_join_next(self) -> tuple[K, Outcome[T]] | None:
        """Return a ready ``(key, outcome)``, else ``None``; never waits, not a checkpoint (S10)."""
        outcome = self._try_next()
        return None if outcome is None else (cast("K", outcome._handle._key), outcome)

    async def join_all(self, *, fail_fast: bool = True) -> list[tuple[K, T]]:
        """
        Wait for every task; return ``(key, value)`` pairs in completion order (S11).

        Fails as `JoinSet.join_all` does (``fail_fast=False``: an
        ``ExceptionGroup`` of every failure); cancel-safe.
        """
        self._check_thread("join_all()")
        check_flag(fail_fast, "fail_fast", "JoinMap.join_all()")
        return await combinators.join_all(self, combinators.keyed_value, fail_fast, "JoinMap")

    async def first_success(self) -> tuple[K, T]:
        """
        Return ``(key, value)`` of the first task to succeed; abort and drain the rest.

        As `JoinSet.first_success` (S19): ``LookupError`` for an empty map, an
        ``ExceptionGroup`` if every task failed; cancel-safe.
        """
        self._check_thread("first_success()")
        return await combinators.first_success(self, combinators.keyed_value, "JoinMap")

    def __aiter__(self) -> AsyncIterator[tuple[K, Outcome[T]]]:
        """Iterate over ``(key, outcome)`` pairs until no key is left (S12)."""
        return self

    async def __anext__(self) -> tuple[K, Outcome[T]]:
        outcome = await self._next()
        if outcome is None:
            raise StopAsyncIteration
        return cast("K", outcome._handle._key), outcome

    # -- keys (S16) ---------------------------------------------------------------

    def __len__(self) -> int:
        """Keys whose task's outcome has not been handed out yet (S4, S16)."""
        return self._pending

    def __contains__(self, key: object) -> bool:
        """``key in jm``: the key has a task whose outcome was not handed out yet."""
        _check_key(key, "JoinMap: key in map")
        return key in self._key_map

    def keys(self) -> KeysView[K]:
        """
        A snapshot of the keys whose outcome has not been handed out yet (S16).

        Taken at the call (a copy, O(len)), so it can be iterated while the map
        changes, also from another thread; in insertion order, the key objects
        as `join_next` will hand them out.
        """
        return dict(self._key_map).keys()

    # -- aborting (S7, S8, S9) -----------------------------------------------------

    def abort(self, key: K) -> bool:
        """
        Abort the task of ``key`` (S7); never waits.

        Returns:
            ``True`` if ``key`` has a task whose outcome was not handed out yet
            (its outcome then comes out as usual), ``False`` otherwise.
        """
        self._check_thread("abort()")
        _check_key(key, "JoinMap.abort()")
        handle = self._key_map.get(key)
        if handle is None:
            return False
        self._abort(handle)
        return True

    def abort_matching(self, predicate: Callable[[K], bool]) -> None:
        """Abort the task of every key for which ``predicate(key)`` is true (S7); O(n)."""
        self._check_thread("abort_matching()")
        check_predicate(predicate, "JoinMap.abort_matching()")
        keys = self._key_map
        for key in list(keys):
            # The task the key has when the predicate is asked (which may spawn).
            handle = keys.get(key)
            if handle is not None and predicate(key):
                self._abort(handle)

    def abort_all(self) -> None:
        """Abort every task (S8); ``len`` does not change."""
        self._check_thread("abort_all()")
        self._abort_all()

    async def shutdown(self, *, grace: float | None = None) -> None:
        """
        Abort all tasks, wait for them and discard their outcomes (S9).

        As `JoinSet.shutdown`; cancelled part-way, ``len``, ``keys()`` and ``in``
        describe exactly the outcomes still in the map.
        """
        self._check_thread("shutdown()")
        await combinators.shutdown(self, combinators.check_grace(grace, "JoinMap"))

    # -- introspection and instruments (S28-S32) --------------------------------

    def snapshot(self, *, stale_after: float = 5.0) -> SetSnapshot:
        """
        Describe every task of this map now: state, age and where it waits (S28).

        Synchronous, never a checkpoint, and callable from any thread. Costs time
        in proportion to the tasks and the depth of their await chains; nothing
        before it is called. Sets entered by its tasks come out nested
        (`TaskSnapshot.sets`); ``print(jm.snapshot().format())`` shows it as text.

        Never raises for the state of the set, even from another thread or
        inside an instrument's hook (a snapshot taken meanwhile may mix two
        instants of a set that changes).

        Args:
            stale_after: Seconds after which a finished outcome that nobody is
                joining is worth a warning (S30): a number, at least 0.

        Returns:
            The snapshot.

        Raises:
            TypeError: If ``stale_after`` is not a number.
            ValueError: If ``stale_after`` is negative or NaN.
        """
        return introspect.snapshot(self, stale_after=stale_after)

    def add_instrument(self, instrument: object) -> None:
        """
        Call ``instrument``'s hooks for every task event of this map (S31).

        ``instrument`` is an `Instrument` or any object with some of its hooks
        (methods or attributes). Registered before or inside the ``async with``
        block, on its event loop (S2); adding it twice, or also process-wide, does
        nothing more. Its hooks run synchronously on the event loop's thread; one
        that raises is logged and the instrument removed (S32). Not a checkpoint.

        Raises:
            TypeError: If ``instrument`` has none of `Instrument`'s hooks.
            RuntimeError: If called from another thread or event loop, or after
                the block.
        """
        instrument_hooks.add_to_set(self, instrument)

    def remove_instrument(self, instrument: object) -> None:
        """
        Stop calling ``instrument`` for this map; one not registered is ignored (S31).

        On the map's event loop, before or inside its block, as `add_instrument`.

        Raises:
            RuntimeError: If called from another thread or event loop, or after
                the block.
        """
        instrument_hooks.remove_from_set(self, instrument)

    # -- backpressure and inspection (S14) ------------------------------------------

    async def wait_for_capacity(self) -> None:
        """Wait until a new task could start at once, as `JoinSet.wait_for_capacity` (S14)."""
        await self._wait_for_capacity()

    @property
    def limit(self) -> int | None:
        """The most tasks this map runs at once, or ``None`` for no limit."""
        return None if self._slots is None else self._slots.limit

    def stats(self) -> JoinSetStats:
        """A snapshot of the map's tasks (replaced tasks count as joined), as `JoinSet.stats`."""
        return JoinSetStats(*self._stats())

    def __repr__(self) -> str:
        stats = self._stats()
        return (
            f"<JoinMap {self._state_name()} keys={self._pending} running={stats[2]} "
            f"waiting={stats[1]} limit={self.limit}>"
        )


# What an instrument's hooks receive (S31): either face of the engine. Union,
# not |, so the alias is a real object on every Python (documented in reference.md).
AnyJoinSet = Union[JoinSet[Any], JoinMap[Any, Any]]  # noqa: UP007
"""Either face of a set, `JoinSet` or `JoinMap`: what every instrument hook receives first (S31)."""


def _check_key(key: object, where: str, func: object = None) -> None:
    try:
        hash(key)
    except TypeError:
        close_coroutines(func)  # passed by mistake: no "never awaited" warning
        msg = (
            f"{where} needs a hashable key, got unhashable {type(key).__name__}: {key!r}; "
            f"use a hashable key such as a str, an int or a tuple."
        )
        raise TypeError(msg) from None
