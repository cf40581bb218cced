# Instrumentation hooks (API.md S31-S33), after Trio's ``Instrument``
# --------------------------------------------------------------------
# An instrument is any object with some of the five hook methods of
# ``Instrument``; only the hooks it defines are called. Each set keeps one
# ``Hooks`` record in its ``_hooks`` slot: ``None`` when no instrument applies,
# so the engine's only cost per event is one ``is not None`` check (Trio's
# "any instruments?"). The record is rebuilt, for every live set, whenever an
# instrument is added or removed (process-wide instruments reach the live sets
# through the registry of ``_introspect.py``).
#
# A hook that raises anything (``KeyboardInterrupt`` and ``SystemExit``
# included, as Trio's instrument runner does) is logged at ERROR on the
# ``anyio_joinset`` logger, with its traceback, and its instrument is removed
# (from the set, or from the process and so from every set): the set itself
# never sees the exception, since hooks run in the middle of its bookkeeping.
# An instrument applies once per set however it was registered (S31): the
# record is built from the instruments deduplicated by identity.
# pyright: reportPrivateUsage=false
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from weakref import WeakKeyDictionary

from ._outcome import CANCELLED, FAILED, SUCCEEDED
from ._states import CLOSED

if TYPE_CHECKING:
    from ._engine import Engine
    from ._handle import JoinHandle
    from ._joinmap import AnyJoinSet
    from ._outcome import Outcome

T = TypeVar("T")

logger = logging.getLogger("anyio_joinset")

_now = time.monotonic

HOOKS = ("task_spawned", "task_started", "task_finished", "task_handed_out", "task_aborted")

FinishKind = Literal["succeeded", "failed", "cancelled", "uncaptured"]
"""How a task ended, as `Instrument.task_finished` receives it (S31)."""
_KINDS: dict[int, FinishKind] = {SUCCEEDED: "succeeded", FAILED: "failed", CANCELLED: "cancelled"}


class Instrument:
    """
    Hooks into the life of every task of a set, as ``trio.abc.Instrument`` does.

    Subclass it and override the hooks you need (or pass any object with some of
    these methods, or with some of them as attributes): only the hooks an
    instrument defines are called. Register it on one set
    (`JoinSet.add_instrument`) or for the whole process (`add_instrument`). Every
    hook is called synchronously, on the event loop's thread, in the middle of
    the set's bookkeeping, at the moment the event happens (S31): a hook may read
    the set (``len``, ``stats()``, ``snapshot()``) and abort tasks, but must not
    await, block, spawn into the set or take outcomes from it. A hook that raises
    (any ``BaseException``) is logged at ERROR on the ``anyio_joinset`` logger and
    its instrument is removed; the set carries on (API.md S32). With no
    instrument registered, a set pays one check per event (S33).
    """

    __slots__ = ()

    def task_spawned(self, joinset: AnyJoinSet, handle: JoinHandle[Any]) -> None:
        """A task was spawned (it may wait for a slot under ``limit``)."""

    def task_started(self, joinset: AnyJoinSet, handle: JoinHandle[Any]) -> None:
        """A task's body is about to run (after its slot and its rate turn)."""

    def task_finished(
        self, joinset: AnyJoinSet, handle: JoinHandle[Any], kind: FinishKind, run_time: float
    ) -> None:
        """
        A task ended.

        Args:
            joinset: The set (a `JoinSet` or a `JoinMap`).
            handle: The task's handle.
            kind: ``"succeeded"``, ``"failed"``, ``"cancelled"``, or
                ``"uncaptured"`` for a ``KeyboardInterrupt`` & co. that tears the
                set down (S6).
            run_time: Seconds from the start of its body (from its spawn for a
                task that never started) to its end.
        """

    def task_handed_out(self, joinset: AnyJoinSet, outcome: Outcome[Any]) -> None:
        """
        An outcome left the set, once per outcome (S31).

        Given to a caller (``join_next``, ``try_join_next``, iteration,
        ``follow``, ``join_all``, ``first_success``) or discarded (``shutdown``,
        the block's end, ``detach``, ``detach_all``, a replaced key). An outcome a
        cancelled combinator put back (S11) is not reported again.
        """

    def task_aborted(self, joinset: AnyJoinSet, handle: JoinHandle[Any]) -> None:
        """
        A task was aborted, once per task (S31).

        By its handle, ``abort_all``, a shutdown, the block's end, a replaced key,
        or the task-group face's ``cancel()``; for the ``TaskHandle.cancel()`` of
        a task spawned through the face, when that task ends cancelled.
        """


_global: list[object] = []
_local: WeakKeyDictionary[Engine[Any], list[object]] = WeakKeyDictionary()


def _hooks_of(instrument: object) -> list[str]:
    """The hooks ``instrument`` defines: methods or attributes, not Instrument's no-ops."""
    base = Instrument.__dict__
    hooks: list[str] = []
    for name in HOOKS:
        hook = getattr(instrument, name, None)
        if callable(hook) and getattr(hook, "__func__", None) is not base[name]:
            hooks.append(name)
    return hooks


def _unique(instruments: list[object]) -> list[object]:
    """Each instrument once, by identity, in registration order (S31)."""
    return list({id(instrument): instrument for instrument in instruments}.values())


def _has(instruments: list[object], instrument: object) -> bool:
    return any(registered is instrument for registered in instruments)


def _remove(instruments: list[object], instrument: object) -> bool:
    for i, registered in enumerate(instruments):
        if registered is instrument:
            del instruments[i]
            return True
    return False


class Hooks:
    """The instruments of one set, per hook; ``Engine._hooks`` holds it (or None)."""

    __slots__ = (
        "task_aborted",
        "task_finished",
        "task_handed_out",
        "task_spawned",
        "task_started",
    )

    task_spawned: tuple[Any, ...]
    task_started: tuple[Any, ...]
    task_finished: tuple[Any, ...]
    task_handed_out: tuple[Any, ...]
    task_aborted: tuple[Any, ...]

    def __init__(self, instruments: list[object]) -> None:
        # By id: an instrument need not be hashable, nor equal only to itself.
        hooks = {id(i): _hooks_of(i) for i in instruments}
        self.task_spawned = tuple(i for i in instruments if "task_spawned" in hooks[id(i)])
        self.task_started = tuple(i for i in instruments if "task_started" in hooks[id(i)])
        self.task_finished = tuple(i for i in instruments if "task_finished" in hooks[id(i)])
        self.task_handed_out = tuple(i for i in instruments if "task_handed_out" in hooks[id(i)])
        self.task_aborted = tuple(i for i in instruments if "task_aborted" in hooks[id(i)])

    # What the engine calls, behind its one ``_hooks is not None`` check.

    def spawned(self, engine: Engine[Any], handle: JoinHandle[Any]) -> None:
        _call(engine, self.task_spawned, "task_spawned", engine, handle)

    def started(self, engine: Engine[Any], handle: JoinHandle[Any]) -> None:
        if handle._payload is None:  # running: its start time, if it has one
            handle._payload = _now()
        _call(engine, self.task_started, "task_started", engine, handle)

    def finished(self, engine: Engine[Any], handle: JoinHandle[Any], kind: int) -> None:
        if self.task_finished:
            # Its kind not recorded yet: _payload is its start time, if any.
            started = handle._payload
            start = started if isinstance(started, float) else handle._spawned
            run_time = max(0.0, _now() - start)
            label = _KINDS.get(kind, "uncaptured")
            _call(engine, self.task_finished, "task_finished", engine, handle, label, run_time)

    def handed_out(self, engine: Engine[Any], outcome: Outcome[Any]) -> None:
        _call(engine, self.task_handed_out, "task_handed_out", engine, outcome)

    def aborted(self, engine: Engine[Any], handle: JoinHandle[Any]) -> None:
        _call(engine, self.task_aborted, "task_aborted", engine, handle)


def _call(engine: Engine[Any], instruments: tuple[Any, ...], hook: str, *args: object) -> None:
    for instrument in instruments:
        try:
            getattr(instrument, hook)(*args)
        except BaseException:  # noqa: PERF203 - never reaches the set (S32), as in Trio
            logger.exception(
                "Instrument %r raised in %s and was removed; the %s carries on",
                instrument,
                hook,
                engine._face,
            )
            _drop(engine, instrument)


def _drop(engine: Engine[Any], instrument: object) -> None:
    """Remove a failing instrument wherever it was registered."""
    local = _local.get(engine)
    if local is not None and _remove(local, instrument):
        refresh(engine)
    if _remove(_global, instrument):
        refresh_all()


def refresh(engine: Engine[Any]) -> None:
    """Rebuild ``engine._hooks`` from its own and the process-wide instruments."""
    instruments = _unique([*_global, *_local.get(engine, ())])
    engine._set_hooks(Hooks(instruments) if instruments else None)


def refresh_all() -> None:
    from ._introspect import live_engines  # noqa: PLC0415 - the two modules use each other

    for engine in live_engines():
        refresh(engine)


def _check(instrument: object, where: str) -> None:
    if not _hooks_of(instrument):
        names = ", ".join(HOOKS)
        msg = (
            f"{where} was given an instrument of type {type(instrument).__name__} with none of the "
            f"hooks {names}; define at least one of them (override it in a subclass of "
            f"anyio_joinset.Instrument, or give the object a method of that name)."
        )
        raise TypeError(msg)


def _check_set(engine: Engine[Any], method: str) -> None:
    """A set's instruments belong to its event loop, before or inside its block (S2, S31)."""
    engine._check_thread(method)
    if engine._state == CLOSED:
        face = engine._face
        msg = f"This {face} is closed; call {method} before or inside its async with block."
        raise RuntimeError(msg)


def add_to_set(engine: Engine[Any], instrument: object) -> None:
    """``JoinSet.add_instrument``: instrument this one set (S31)."""
    _check_set(engine, "add_instrument()")
    _check(instrument, f"{engine._face}.add_instrument()")
    local = _local.setdefault(engine, [])
    if not _has(local, instrument):
        local.append(instrument)
    refresh(engine)


def remove_from_set(engine: Engine[Any], instrument: object) -> None:
    """``JoinSet.remove_instrument``: stop instrumenting this set; absent: no error."""
    _check_set(engine, "remove_instrument()")
    local = _local.get(engine)
    if local is not None and _remove(local, instrument):
        refresh(engine)


def add_instrument(instrument: object) -> None:
    """
    Instrument every set of the process, live and future (API.md S31).

    Adding an instrument that is already registered does nothing. Hooks run on
    each set's event loop thread; an instrument shared by sets of several event
    loops must be thread-safe.

    Args:
        instrument: An `Instrument` (or any object with some of its hooks).

    Raises:
        TypeError: If ``instrument`` has none of the hooks.
    """
    _check(instrument, "anyio_joinset.add_instrument()")
    if not _has(_global, instrument):
        _global.append(instrument)
        refresh_all()


def remove_instrument(instrument: object) -> None:
    """
    Stop instrumenting every set with ``instrument``; not registered: nothing happens.

    Sets that registered it themselves (`JoinSet.add_instrument`) keep it.
    """
    if _remove(_global, instrument):
        refresh_all()


def opened(engine: Engine[Any]) -> None:
    """A set opens: it starts with the process-wide instruments and its own."""
    if _global or engine in _local:
        refresh(engine)
