# JoinMap is a JoinSet plus two dicts, not a second mechanism: every task runs in
# the JoinSet (same wrapper, same hand-off, same scope rules), and the map only
# remembers which key each live task id belongs to. Replacing a key aborts the
# old task and forgets its id, so its outcome is skipped when it comes out of
# the set: it is never handed out.
# pyright: reportPrivateUsage=false
from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine, Hashable, KeysView
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

from anyio.lowlevel import checkpoint

from ._joinset import JoinSet, JoinSetStats

if TYPE_CHECKING:
    from ._handle import JoinHandle
    from ._outcome import Outcome

    if sys.version_info >= (3, 11):
        from typing import Self, TypeVarTuple, Unpack
    else:
        from typing_extensions import Self, TypeVarTuple, Unpack

    PosArgsT = TypeVarTuple("PosArgsT")

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@final
class JoinMap(Generic[K, T]):
    """
    A :class:`JoinSet` whose tasks are keyed, like tokio-util's ``JoinMap``.

    Outcomes come out as ``(key, outcome)`` pairs in completion order. Spawning
    under a key that already has a task aborts the old task; its outcome is never
    handed out. Every rule of the JoinSet contract holds (API.md S1-S15), with
    ``len`` counting keys.

    Args:
        limit: Run at most this many tasks at once (API.md S14).
    """

    __slots__ = ("_by_id", "_by_key", "_set")

    def __init__(self, *, limit: int | None = None) -> None:
        self._set = JoinSet[T](limit=limit)
        self._set._label = "JoinMap"
        self._by_key: dict[K, JoinHandle[T]] = {}
        self._by_id: dict[int, K] = {}

    async def __aenter__(self) -> Self:
        await self._set.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        try:
            await self._set.__aexit__(exc_type, exc_val, exc_tb)
        finally:
            self._by_key.clear()
            self._by_id.clear()

    def spawn(
        self,
        key: K,
        func: Callable[[Unpack[PosArgsT]], Coroutine[Any, Any, T]],
        /,
        *args: Unpack[PosArgsT],
        name: str | None = None,
    ) -> JoinHandle[T]:
        """
        Start ``func(*args)`` as the task for ``key`` (API.md S2, S3).

        Synchronous, like :meth:`JoinSet.spawn`. If ``key`` already has a task that
        was not handed out yet, that task is aborted and its outcome is never
        handed out: the new task replaces it.

        Args:
            key: Any hashable key.
            func: An async function.
            *args: Positional arguments for ``func``.
            name: The task's name; defaults to the function's qualified name.

        Returns:
            The new task's handle.

        Raises:
            RuntimeError: If the map is not open.
            TypeError: If ``func`` is not an async function (the map is unchanged).
        """
        handle = self._set.spawn(func, *args, name=name)  # validates first
        old = self._by_key.pop(key, None)
        if old is not None:
            del self._by_id[old.id]
            old.abort()
        self._by_key[key] = handle
        self._by_id[handle.id] = key
        return handle

    def __len__(self) -> int:
        """Keys whose task's outcome has not been handed out yet (S4)."""
        return len(self._by_key)

    def __contains__(self, key: object) -> bool:
        """``key in jm``: the key has a task whose outcome was not handed out yet."""
        return key in self._by_key

    def keys(self) -> KeysView[K]:
        """A live view of the keys whose outcome has not been handed out yet."""
        return self._by_key.keys()

    def _claim(self, outcome: Outcome[T]) -> tuple[K, Outcome[T]] | None:
        key = self._by_id.pop(outcome.id, _REPLACED)
        if key is _REPLACED:
            return None  # the task was replaced: its outcome is never handed out
        del self._by_key[key]
        return key, outcome

    async def join_next(self) -> tuple[K, Outcome[T]] | None:
        """
        Wait for the next task to finish and return ``(key, outcome)`` (S5).

        A checkpoint on every call; cancel-safe; ``None`` at once when no key is
        left. Callers still waiting when the last key's outcome is taken get
        ``None`` once any replaced tasks have finished unwinding.

        Raises:
            BaseException: The backend's cancellation exception, if the caller's
                scope is cancelled; any ready outcome stays in the map.
        """
        while self._by_key:
            outcome = await self._set.join_next()
            if outcome is None:
                return None
            if (claimed := self._claim(outcome)) is not None:
                return claimed
        await checkpoint()
        return None

    def try_join_next(self) -> tuple[K, Outcome[T]] | None:
        """
        Return a ready ``(key, outcome)``, else ``None``; never waits (S10).

        Not a checkpoint.
        """
        while self._by_key and (outcome := self._set.try_join_next()) is not None:
            if (claimed := self._claim(outcome)) is not None:
                return claimed
        return None

    def abort(self, key: K) -> bool:
        """
        Abort the task of ``key`` (S7); never waits.

        Returns:
            ``True`` if ``key`` has a task whose outcome was not handed out yet
            (its outcome then comes out as usual), ``False`` otherwise.
        """
        handle = self._by_key.get(key)
        if handle is None:
            return False
        handle.abort()
        return True

    def abort_matching(self, predicate: Callable[[K], bool]) -> None:
        """Abort the task of every key for which ``predicate(key)`` is true (S7)."""
        for key, handle in list(self._by_key.items()):
            if predicate(key):
                handle.abort()

    def abort_all(self) -> None:
        """Abort every task (S8); ``len`` does not change."""
        self._set.abort_all()

    async def shutdown(self, *, grace: float | None = None) -> None:
        """
        Abort all tasks, wait for them and discard their outcomes (S9).

        Args:
            grace: As in :meth:`JoinSet.shutdown`: first wait up to this many
                seconds for the tasks to finish on their own.
        """
        await self._set.shutdown(grace=grace)
        self._by_key.clear()
        self._by_id.clear()

    def stats(self) -> JoinSetStats:
        """The underlying set's :meth:`JoinSet.stats` (replaced tasks included)."""
        return self._set.stats()

    def __aiter__(self) -> Self:
        """Iterate over ``(key, outcome)`` pairs until no key is left (S12)."""
        return self

    async def __anext__(self) -> tuple[K, Outcome[T]]:
        pair = await self.join_next()
        if pair is None:
            raise StopAsyncIteration
        return pair

    def __repr__(self) -> str:
        return f"<JoinMap keys={len(self._by_key)} set={self._set!r}>"


_REPLACED: Any = object()
