# How a snapshot sees inside a set (API.md S28-S30)
# ================================================
#
# Free until called: the engine keeps only what it keeps anyway (its live
# handles in spawn order, its finished outcomes, its waiters), plus timestamps
# (each task's spawn; its start, only for a task that waited for a slot or a
# rate turn, the others starting at the next scheduling point; the set's last
# "no outcome ready -> one" moment) and one registry entry per set, taken when
# the set opens. Everything
# else is computed here, at the call, from objects that exist anyway:
#
# - where a task waits: its AnyIO TaskHandle keeps the coroutine of the engine's
#   task wrapper (``Engine._run``); from there ``cr_await`` / ``gi_yieldfrom`` /
#   ``ag_await`` lead through every coroutine it awaits, each suspended frame
#   giving a function, a file and a line, down to the innermost awaitable (an
#   asyncio future, Trio's ``wait_task_rescheduled``). Objects written in C
#   (an asyncio Future's iterator, an async generator's ``asend``) end the chain.
# - what it waits on: a frame of a lock's (semaphore's, event's...) own method
#   in the chain names that primitive (read from the frame's ``self``).
# - a ``spawn_thread`` task's thread: the worker thread whose stack holds the
#   very ``(func, args)`` pair the task handed to AnyIO (``sys._current_frames``).
# - nesting: a set records the AnyIO task id of the task that entered it; the
#   backend's task list maps each of a set's TaskHandles to that id.
#
# A snapshot may be taken from any thread (a signal handler, a watchdog) and
# from inside an instrument's hook: it copies every container it reads in one C
# call, reads each field of a task once, and accepts any combination of them
# (a task half-way through the engine's ``_add``, ``_start`` or ``_finish``, a
# handle handed out since its container was copied), so a set that changes
# meanwhile gives a slightly stale view, never an error. It leaves the garbage
# collector alone: measured at 50,000 tasks, pausing it saved nothing, and its
# switch is the process's, not ours to flip from another thread.
# pyright: reportPrivateUsage=false
from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import math
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TextIO, cast, final
from weakref import ref

import anyio

from . import _instrument
from ._calling import real_number
from ._offload import _checked_call as checked_call
from ._outcome import (
    ABORTED,
    CANCELLED,
    DETACHED,
    FAILED,
    FINISHING,
    QUEUED,
    RATE_TURN,
    SUCCEEDED,
)

if TYPE_CHECKING:
    from ._engine import Engine
    from ._feed import _Feeding
    from ._handle import JoinHandle

logger = logging.getLogger("anyio_joinset")

_now = time.monotonic

SnapshotState = Literal[
    "waiting_for_slot", "waiting_for_rate", "starting", "running", "aborting", "finished"
]
OutcomeKind = Literal["succeeded", "failed", "cancelled"]

_KIND_NAMES: dict[int, OutcomeKind] = {
    SUCCEEDED: "succeeded",
    FAILED: "failed",
    CANCELLED: "cancelled",
}
_STATE_TEXT: dict[str, str] = {
    "waiting_for_slot": "waiting for a slot",
    "waiting_for_rate": "waiting for its rate turn",
    "starting": "starting (start() waits for its started())",
    "running": "running",
    "aborting": "aborted, unwinding",
    "finished": "finished, not joined",
}

# -- the registry (S29) ---------------------------------------------------------


@dataclass
class _Entry:
    serial: int
    opened: float
    thread: int
    host: object  # the AnyIO task id of the task that entered the set
    backend: str
    # The asyncio loop, or Trio's root task, to list the backend's tasks: weakly,
    # so a registered set whose loop is gone keeps nothing of it alive.
    root: ref[Any]


# A plain dict of weak references, not a WeakKeyDictionary: another thread
# copies it in one C call (``list(d.items())``), where iterating a
# WeakKeyDictionary runs Python code between items while the event loop's
# thread may add a set ("dictionary changed size during iteration").
_registry: dict[ref[Engine[Any]], _Entry] = {}
_serials = itertools.count(1)


def _forget(engine: ref[Engine[Any]]) -> None:
    _registry.pop(engine, None)


def _entry(engine: Engine[Any]) -> _Entry | None:
    return _registry.get(ref(engine))


def register(engine: Engine[Any]) -> None:
    """A set opens (``__aenter__``): list it, weakly, and give it its instruments."""
    loop = asyncio._get_running_loop()
    root: Any
    if loop is not None:
        backend, root = _loop_name(loop), loop
    else:
        import trio  # noqa: PLC0415 - only under Trio

        backend, root = "trio", trio.lowlevel.current_root_task()
    _registry[ref(engine, _forget)] = _Entry(
        next(_serials), _now(), threading.get_ident(), engine._host, backend, ref(root)
    )
    _instrument.opened(engine)


def _loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """The name of ``anyio_joinset.backends.BACKENDS`` for this asyncio loop."""
    uvloop = type(loop).__module__.split(".")[0] == "uvloop"
    eager = getattr(asyncio, "eager_task_factory", None)
    factory = loop.get_task_factory()
    name = "asyncio+uvloop" if uvloop else "asyncio"
    return name + ("+eager" if eager is not None and factory is eager else "")


if sys.version_info < (3, 12):

    def _registered() -> list[tuple[ref[Engine[Any]], _Entry]]:
        # Before 3.12 an allocation may run a collection on the spot, and the
        # collection a weak reference's callback (_forget) or another thread,
        # which change the registry while list() reads it: read it again.
        while True:
            try:
                return list(_registry.items())
            except RuntimeError:  # noqa: PERF203 - "dictionary changed size during iteration"
                continue

else:

    def _registered() -> list[tuple[ref[Engine[Any]], _Entry]]:
        # Collections run between bytecodes, never inside this one C call.
        return list(_registry.items())


def live_engines() -> list[Engine[Any]]:
    """Every set of the process that is open now, in the order they were entered."""
    items = _registered()
    items.sort(key=lambda item: item[1].serial)
    engines = [engine() for engine, _ in items]
    return [engine for engine in engines if engine is not None and engine._state < _CLOSED]


_NO_TASK = object()
_RUNNING_HERE: Any = object()  # a wrapper running on this thread, with no TaskHandle yet
_CLOSED = 4  # _states.CLOSED, without importing the engine's internals here


# -- what a snapshot holds (S28) ------------------------------------------------


@final
@dataclass(frozen=True)
class StackFrame:
    """One suspended frame of a task's await chain (or of its worker thread)."""

    function: str
    """The function's qualified name (``Class.method``)."""
    file: str
    """Its source file."""
    line: int
    """The line it waits at."""
    module: str = ""
    """Its module (``anyio._core._synchronization``)."""

    def __str__(self) -> str:
        return f"{self.function} ({self.file}:{self.line})"


@final
@dataclass(frozen=True)
class TaskSnapshot:
    """One task of a set, at the moment of the snapshot (API.md S28)."""

    id: int
    """The task's id, as its `JoinHandle.id`."""
    name: str
    """The task's name."""
    key: object
    """Its key in a `JoinMap` (or its input, fed by ``map()``); ``None`` otherwise."""
    state: SnapshotState
    """``"waiting_for_slot"``, ``"waiting_for_rate"``, ``"starting"`` (made by
    ``start()``, its body runs and has not called ``task_status.started()`` yet:
    not in ``len``), ``"running"``, ``"aborting"`` (aborted, still unwinding) or
    ``"finished"`` (outcome not handed out yet)."""
    age: float
    """Seconds since it was spawned."""
    running_for: float | None
    """Seconds since its body started: since its spawn, or since it got its slot
    or rate turn if it waited for one (``None`` while it waits for a slot or a
    rate turn, if aborted before its body ran, and once finished)."""
    stack: tuple[StackFrame, ...]
    """Its await chain, outermost first: the task's function down to where it waits."""
    awaiting: str | None
    """The innermost awaitable, when it is not a frame (``"asyncio Future"``);
    ``"rate turn"`` for a task waiting for its rate turn, on every backend."""
    waiting_on: str | None
    """The lock, semaphore, event... it waits on, if a frame of one is in the chain."""
    thread_stack: tuple[StackFrame, ...] = ()
    """For a ``spawn_thread`` task: where its worker thread is now, when found."""
    outcome: OutcomeKind | None = None
    """For a finished task: how it ended (``None`` at the very moment it ends,
    seen from an instrument's ``task_finished`` hook)."""
    sets: tuple[SetSnapshot, ...] = ()
    """The sets this task entered and has not left (nested sets)."""
    detached: bool = False
    """Its outcome will never be handed out (``detach``, a replaced key, a ``start()``
    not started yet): it runs on, not counted in ``len``."""

    @property
    def where(self) -> str:
        """The chain as one line: ``fetch -> AsyncClient.get -> ... -> sleep``."""
        return _chain_line(self.stack, self.awaiting)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (keys as ``repr``)."""
        return {
            "id": self.id,
            "name": self.name,
            "key": None if self.key is None else _repr(self.key),
            "state": self.state,
            "age": round(self.age, 6),
            "running_for": None if self.running_for is None else round(self.running_for, 6),
            "stack": [_frame_dict(f) for f in self.stack],
            "awaiting": self.awaiting,
            "waiting_on": self.waiting_on,
            "thread_stack": [_frame_dict(f) for f in self.thread_stack],
            "outcome": self.outcome,
            "sets": [s.to_dict() for s in self.sets],
            "detached": self.detached,
        }


@final
@dataclass(frozen=True)
class WaiterSnapshot:
    """Someone waiting on the set itself: a ``join_next`` caller, a ``follow()`` or a feeder."""

    kind: Literal["join_next", "follow", "feeder"]
    """``"join_next"`` (any caller waiting for an outcome: iteration, ``join_all``,
    a ``map()`` Feed's step...), ``"follow"`` (a ``follow()`` iteration, which
    waits on an empty set by design, S22) or ``"feeder"`` (a ``map()`` feeder)."""
    waited: float | None
    """Seconds it has waited (``None`` for a feeder that is not waiting now)."""
    stack: tuple[StackFrame, ...] = ()
    """A feeder's await chain. Empty for a ``join_next`` or ``follow()`` caller:
    the set keeps only the wake-up it waits on, not its task, and finding that
    task would mean walking every task of the event loop; its own traceback (or
    `dump_sets`' listing of the set that task belongs to) shows where it is."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "kind": self.kind,
            "waited": None if self.waited is None else round(self.waited, 6),
            "stack": [_frame_dict(f) for f in self.stack],
        }


@final
@dataclass(frozen=True)
class SetSnapshot:
    """A set and its tasks, at one moment: `JoinSet.snapshot`, `snapshot_sets` (S28, S29)."""

    face: str
    """``"JoinSet"`` or ``"JoinMap"``."""
    serial: int
    """A number unique in the process, in the order sets were entered."""
    state: str
    """``"open"``, ``"shutting down"``, ``"closing"`` or ``"closed"``."""
    backend: str
    """The event loop, named as in ``anyio_joinset.backends.BACKENDS``:
    ``"asyncio"``, ``"asyncio+uvloop"``, ``"asyncio+eager"`` or ``"trio"``."""
    age: float
    """Seconds since the set was entered."""
    length: int
    """``len()`` of the set."""
    limit: int | None
    """Its ``limit``."""
    tasks: tuple[TaskSnapshot, ...]
    """Every task not handed out yet, in spawn order."""
    waiters: tuple[WaiterSnapshot, ...]
    """Its ``join_next`` callers and feeders."""
    ready_for: float | None = None
    """Seconds since the set last had no finished outcome waiting to be joined
    (``None`` while it has none): how long it has not been emptied."""
    warnings: tuple[str, ...] = field(default=())
    """What looks wrong (S30), one sentence each."""

    def groups(self) -> list[tuple[TaskSnapshot, ...]]:
        """The tasks grouped by state and identical stack, the oldest group first."""
        return _group(self.tasks)

    def format(self) -> str:
        """The readable text of this set (and its nested sets), as `dump_sets` writes it."""
        lines: list[str] = []
        _format_set(self, lines, "")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "face": self.face,
            "serial": self.serial,
            "state": self.state,
            "backend": self.backend,
            "age": round(self.age, 6),
            "len": self.length,
            "limit": self.limit,
            "tasks": [t.to_dict() for t in self.tasks],
            "waiters": [w.to_dict() for w in self.waiters],
            "ready_for": None if self.ready_for is None else round(self.ready_for, 6),
            "warnings": list(self.warnings),
        }


def _frame_dict(frame: StackFrame) -> dict[str, Any]:
    return {
        "function": frame.function,
        "module": frame.module,
        "file": frame.file,
        "line": frame.line,
    }


# -- walking an await chain (S28) --------------------------------------------------

_frames: dict[tuple[types.CodeType, int], StackFrame] = {}
_primitive_codes: dict[types.CodeType, bool] = {}


_primitives: dict[bool, tuple[type, ...]] = {}  # by "is trio imported?"


def _primitive_types() -> tuple[type, ...]:
    trio = sys.modules.get("trio")
    found = _primitives.get(trio is not None)
    if found is None:
        kinds: list[type] = [
            anyio.Lock,
            anyio.Semaphore,
            anyio.CapacityLimiter,
            anyio.Condition,
            anyio.Event,
            asyncio.Lock,
            asyncio.Semaphore,
            asyncio.Condition,
            asyncio.Event,
        ]
        if trio is not None:  # pragma: no branch - the tests import Trio
            kinds += [trio.Lock, trio.StrictFIFOLock, trio.Semaphore, trio.CapacityLimiter]
            kinds += [trio.Condition, trio.Event]
        found = _primitives[trio is not None] = tuple(kinds)
    return found


_LOCKS = ("Lock", "Semaphore", "CapacityLimiter", "StrictFIFOLock")


def _stack_frame(frame: types.FrameType) -> StackFrame:
    code = frame.f_code
    lineno = frame.f_lineno
    found = _frames.get((code, lineno))
    if found is None:
        name = getattr(code, "co_qualname", None) or _qualname_310(frame)
        module = frame.f_globals.get("__name__", "")
        found = StackFrame(name, code.co_filename, lineno, module)
        if len(_frames) < 100_000:  # pragma: no branch - a bounded cache
            _frames[code, lineno] = found
    return found


def _coro_state(coro: Any) -> str:  # noqa: ANN401 - a coroutine of any type
    """``inspect.getcoroutinestate``, safe while the loop's thread ends ``coro``."""
    try:
        return inspect.getcoroutinestate(coro)
    except AttributeError:  # pragma: no cover - Python 3.10 reads cr_frame twice
        return inspect.CORO_CLOSED


def _qualname_310(frame: types.FrameType) -> str:
    """
    A frame's qualified name on Python 3.10, whose code objects have none.

    A method's is found through its first argument (``self`` or ``cls``): the
    class in its MRO whose attribute runs this very code. A nested function's is
    its bare name there (``blocking``, not ``test.<locals>.blocking``).
    """
    code = frame.f_code
    if code.co_argcount and code.co_varnames[0] in ("self", "cls"):
        first = frame.f_locals.get(code.co_varnames[0])
        owner = first if isinstance(first, type) else type(first)
        for klass in owner.__mro__:
            attr: object = klass.__dict__.get(code.co_name)
            func: object = getattr(attr, "__func__", attr)  # a classmethod's, staticmethod's
            if getattr(func, "__code__", None) is code:
                return cast("str", getattr(func, "__qualname__", code.co_name))
    return code.co_name


def _primitive_of(frame: types.FrameType) -> object:
    """The primitive whose own method this frame runs, or None."""
    code = frame.f_code
    is_method = _primitive_codes.get(code)
    if is_method is None:
        is_method = bool(code.co_argcount) and code.co_varnames[0] == "self"
        _primitive_codes[code] = is_method
    if not is_method:
        return None
    obj = frame.f_locals.get("self")
    return obj if isinstance(obj, _primitive_types()) else None


@dataclass
class _Chain:
    frames: list[StackFrame]
    awaiting: str | None
    primitive: object
    thread_key: tuple[int, int] | None


def _walk(awaitable: object, *, skip_first: bool = False) -> _Chain:
    frames: list[StackFrame] = []
    primitive: object = None
    thread_key: tuple[int, int] | None = None
    awaiting: str | None = None
    aw: object = awaitable
    first = True
    last: types.FrameType | None = None
    for _ in range(256):  # pragma: no branch - a chain is never this deep; a cycle would be
        step = _step(aw)
        if step is None:
            agen = _running_agen(aw, last)
            if agen is not None:
                aw = agen  # the async generator that this asend()/athrow() steps
                continue
            if aw is not None:
                awaiting = _describe(aw)
            break
        frame, nxt = step
        if frame is None:  # pragma: no cover - it finished a moment ago (another thread)
            break
        last = frame
        if not (first and skip_first):
            frames.append(_stack_frame(frame))
            if primitive is None:
                primitive = _primitive_of(frame)
            if frame.f_code.co_name == "run_sync_in_worker_thread":
                local = frame.f_locals
                func, args = local.get("func"), local.get("args")
                if func is checked_call:
                    # spawn_thread's check around the function (_offload.py): the
                    # thread is found by the frame of that check, its func and args.
                    func, args = cast("tuple[object, object, str]", args)[:2]
                thread_key = (id(func), id(args))
        first = False
        aw = nxt
    return _Chain(frames, awaiting, primitive, thread_key)


def _step(aw: object) -> tuple[types.FrameType | None, object] | None:
    """A coroutine's (generator's, async generator's) frame and what it awaits."""
    if isinstance(aw, types.CoroutineType):
        return aw.cr_frame, aw.cr_await
    if isinstance(aw, types.GeneratorType):
        return aw.gi_frame, cast("object", aw.gi_yieldfrom)  # pyright: ignore[reportUnknownMemberType]
    if isinstance(aw, types.AsyncGeneratorType):
        return aw.ag_frame, aw.ag_await
    return None


def _running_agen(aw: object, frame: types.FrameType | None) -> object:
    """
    The async generator an ``asend()``/``athrow()`` object is stepping, if found.

    Those objects (written in C) do not expose their generator; the frame that
    awaits one usually holds it in a local (``async for`` over a variable, a
    feeder's iterator): the one of them that is running is it.
    """
    if frame is None or not type(aw).__name__.startswith("async_generator_a"):
        return None
    for value in list(frame.f_locals.values()):
        if isinstance(value, types.AsyncGeneratorType) and value.ag_running:
            return cast("object", value)
    return None


def _describe(aw: object) -> str:
    kind = type(aw)
    if kind.__name__ == "FutureIter" or isinstance(aw, asyncio.Future):
        return "asyncio Future"
    return f"{kind.__module__}.{kind.__qualname__}"


def _describe_primitive(obj: object) -> str:
    kind = type(obj)
    module = kind.__module__.split(".")[0]
    return f"{module}.{kind.__qualname__} at {id(obj):#x}"


# -- worker threads (S28) --------------------------------------------------------


def _thread_stacks() -> dict[tuple[int, int], list[tuple[StackFrame, ...]]]:
    """``(id(func), id(args))`` handed to a worker thread -> that thread's frames."""
    found: dict[tuple[int, int], list[tuple[StackFrame, ...]]] = {}
    me = threading.get_ident()
    for ident, top in list(sys._current_frames().items()):
        if ident == me:
            continue
        inner: list[StackFrame] = []
        frame: types.FrameType | None = top
        for _ in range(512):  # pragma: no branch - a thread's stack is never this deep
            if frame is None:
                break
            code = frame.f_code
            if "func" in code.co_varnames or "func" in code.co_freevars:
                local = frame.f_locals
                if "args" in local:
                    func = local.get("func")
                    key = (id(func), id(local.get("args")))
                    if not inner:  # in a function written in C: no frame of its own
                        name = getattr(func, "__qualname__", type(func).__qualname__)
                        inner.append(StackFrame(name, "<C function>", 0))
                    found.setdefault(key, []).append(tuple(reversed(inner)))
                    break
            inner.append(_stack_frame(frame))
            frame = frame.f_back
    return found


# -- nesting (S29) -------------------------------------------------------------------


def _task_ids(entries: Iterable[_Entry]) -> dict[int, object]:
    """id(AnyIO TaskHandle) -> the AnyIO task id of the task it runs, for these loops."""
    from anyio._core._tasks import TaskHandle  # noqa: PLC0415 - only to recognise its frames

    run_coro = TaskHandle._run_coro.__code__  # pyright: ignore[reportUnknownMemberType]
    found: dict[int, object] = {}
    roots: dict[int, tuple[str, Any]] = {}
    for entry in entries:
        root = entry.root()
        if root is not None:  # pragma: no branch - only an abandoned loop is gone
            roots[id(root)] = (entry.backend, root)
    for backend, root in roots.values():
        tasks: list[tuple[object, Any]] = []
        if backend != "trio":
            tasks = [(id(t), t.get_coro()) for t in list(asyncio.all_tasks(root))]
        else:
            pending = [root]
            while pending:
                task = pending.pop()
                tasks.append((id(task), task.coro))
                for nursery in list(task.child_nurseries):
                    pending.extend(list(nursery.child_tasks))
        for task_id, coro in tasks:
            frame = getattr(coro, "cr_frame", None)
            if frame is not None and frame.f_code is run_coro:
                # Until it ends: its ``finally`` deletes ``self`` (then: None).
                found[id(frame.f_locals.get("self"))] = task_id
    return found


# -- taking a snapshot ------------------------------------------------------------------


def check_stale_after(stale_after: object, where: str) -> float:
    """``stale_after=``: a real number of seconds, at least 0 (S3, S30)."""
    seconds = real_number(stale_after)
    if seconds is None:
        msg = f"{where} stale_after must be a number of seconds, got {type(stale_after).__name__}."
        raise TypeError(msg)
    if math.isnan(seconds) or seconds < 0:
        msg = f"{where} stale_after must be at least 0 seconds, got {stale_after!r}."
        raise ValueError(msg)
    return seconds


def snapshot(engine: Engine[Any], *, stale_after: float = 5.0) -> SetSnapshot:
    """``JoinSet.snapshot()``: this set and the sets nested in its tasks."""
    seconds = check_stale_after(stale_after, f"{engine._face}.snapshot()")
    return _Snapshotter(seconds).take(engine)


def snapshot_sets(*, stale_after: float = 5.0) -> tuple[SetSnapshot, ...]:
    """
    Snapshot every open set of the process, nested as they are (API.md S29).

    The sets that were not entered by a task of another set come out at the top,
    the oldest first; every other set comes out inside the `TaskSnapshot` of the
    task that entered it (``sets``). Synchronous, never a checkpoint, callable
    from any thread; it costs time in proportion to the tasks it lists and their
    await chains, and nothing before it is called.

    Args:
        stale_after: Seconds after which a finished outcome that nobody is joining
            is worth a warning (S30).

    Returns:
        The top-level sets' snapshots.

    Raises:
        TypeError: If ``stale_after`` is not a number.
        ValueError: If ``stale_after`` is negative or NaN.
    """
    return _snapshot_sets(check_stale_after(stale_after, "snapshot_sets()"))


def _snapshot_sets(stale_after: float) -> tuple[SetSnapshot, ...]:
    taker = _Snapshotter(stale_after)
    engines = live_engines()
    nested = taker.nesting(engines)
    return tuple(taker.take(e) for e in engines if id(e) not in nested)


def dump_sets(
    format: Literal["text", "json"] = "text",  # noqa: A002 - the word a user looks for
    *,
    stale_after: float = 5.0,
) -> str:
    """
    Describe every open set of the process, as text for people or JSON for tools (S29).

    The text lists each set (nested sets indented under the task that entered
    them), its warnings and waiters, then its tasks grouped by state and
    identical await chain with a count, the oldest group first: ``986 tasks
    running ... at fetch -> AsyncClient.get -> ... -> sleep``, each group's frames
    below it with file and line. The JSON form is ``{"sets": [...]}`` of
    `SetSnapshot.to_dict`. Synchronous, never a checkpoint, from any thread.

    Args:
        format: ``"text"`` (the default) or ``"json"``.
        stale_after: As for `snapshot_sets`.

    Returns:
        The dump; ``"no open JoinSet or JoinMap"`` (text) when there is none.

    Raises:
        TypeError: If ``stale_after`` is not a number.
        ValueError: If ``format`` is neither ``"text"`` nor ``"json"``, or if
            ``stale_after`` is negative or NaN.
    """
    if format not in ("text", "json"):
        msg = f"dump_sets() format must be 'text' or 'json', got {format!r}."
        raise ValueError(msg)
    sets = _snapshot_sets(check_stale_after(stale_after, "dump_sets()"))
    if format == "json":
        return json.dumps({"sets": [s.to_dict() for s in sets]}, indent=1)
    if not sets:
        return "no open JoinSet or JoinMap"
    return "\n".join(s.format() for s in sets)


class _Snapshotter:
    def __init__(self, stale_after: float) -> None:
        self.now = _now()
        self.stale_after = stale_after
        self.children: dict[int, list[Engine[Any]]] = {}  # id(TaskHandle) -> sets
        self.threads: dict[tuple[int, int], list[tuple[StackFrame, ...]]] | None = None
        self.seen: set[int] = set()
        from ._engine import NO_KEY, Engine  # noqa: PLC0415 - the engine imports this module

        self.no_key: object = NO_KEY
        self.run_code = Engine._run.__code__  # pyright: ignore[reportUnknownMemberType]

    def nesting(self, engines: list[Engine[Any]]) -> set[int]:
        """Find which task entered which set; return the ids of the nested sets."""
        entries = [e for e in (_entry(x) for x in engines) if e is not None]
        hosts = {entry.host for entry in entries}
        if len(engines) < 2:
            return set()
        task_ids = _task_ids(entries)
        by_task_id: dict[object, int] = {}
        for engine in engines:
            for handle in tuple(engine._live):
                task = handle._task
                task_id = task_ids.get(id(task), _NO_TASK)
                if task_id in hosts:
                    by_task_id[task_id] = id(task)
        nested: set[int] = set()
        for engine in engines:
            entry = _entry(engine)
            if entry is not None and entry.host in by_task_id:
                self.children.setdefault(by_task_id[entry.host], []).append(engine)
                nested.add(id(engine))
        return nested

    def take(self, engine: Engine[Any]) -> SetSnapshot:
        if not self.children:
            live = [e for e in live_engines() if e is not engine]
            if live:
                self.nesting([engine, *live])
        self.seen.add(id(engine))
        entry = _entry(engine)
        now = self.now
        # A task may be in both lists when another thread finishes it meanwhile
        # (copied from _live, then pushed into the stream): keep its later view.
        # _live keeps finished handles until a compaction (the engine's _bury):
        # one whose kind is recorded is in the stream (then _finished has it),
        # handed out or detached; one whose kind is not is finishing right now.
        by_handle = {
            id(handle): self.task(engine, handle)
            for handle in tuple(engine._live)
            if handle._kind < 0
        }
        for handle, kind in _finished(engine):
            by_handle[id(handle)] = self.finished(handle, kind)
        tasks = sorted(by_handle.values(), key=lambda t: t.id)
        waiters = [
            WaiterSnapshot("follow" if follow else "join_next", _since(now, since))
            for since, follow in tuple(engine._waiters.values())
        ]
        waiters += [self.feeder(f) for f in _feeding(engine)]
        snap = SetSnapshot(
            face=engine._face,
            serial=0 if entry is None else entry.serial,
            state=engine._state_name(),
            backend="" if entry is None else entry.backend,
            age=0.0 if entry is None else now - entry.opened,
            length=engine._pending,
            limit=None if engine._slots is None else engine._slots.limit,
            tasks=tuple(tasks),
            waiters=tuple(waiters),
            ready_for=max(0.0, now - engine._ready_since) if engine._nready else None,
        )
        return _with_warnings(snap, engine, self.stale_after)

    def finished(self, handle: JoinHandle[Any], kind: int) -> TaskSnapshot:
        """A task whose outcome waits to be handed out."""
        return self.record(handle, "finished", None, _Chain([], None, None, None), kind)

    def task(self, engine: Engine[Any], handle: JoinHandle[Any]) -> TaskSnapshot:
        """
        A task of ``_live``: not finished, or finishing right now.

        Each field of the handle is read once, and every combination is a state:
        the engine changes them one at a time (a hook, or another thread, may
        look in between), so no reading assumes that one field implies another.
        """
        task = handle._task
        # _payload before _kind: the engine records a task's kind before its value,
        # so a value (perhaps a float) is never taken for a start time.
        payload = handle._payload
        kind = handle._kind
        started = payload if kind < FINISHING and isinstance(payload, float) else None
        empty = _Chain([], None, None, None)
        if kind >= FINISHING:
            # In the engine's _finish: its outcome is recorded a moment later.
            return self.record(handle, "finished", None, empty, kind)
        if kind == QUEUED:
            return self.record(handle, "waiting_for_slot", None, empty, None)
        wrapper: Any = None if task is None else task.coro
        if wrapper is None and self.runs_here(handle):
            # Its wrapper runs on this very thread with no TaskHandle yet: an eager
            # asyncio task's first step, inside spawn(), where a hook took this.
            wrapper = _RUNNING_HERE
        # Not stepped by the event loop yet: no frame of it has run (or no task
        # yet: inside spawn(), or a slot just freed for it). Without a task, a
        # rate turn is still due if it has no start time (its turn gives it one).
        unstepped = wrapper is None or (
            wrapper is not _RUNNING_HERE and _coro_state(wrapper) == inspect.CORO_CREATED
        )
        due = started is None if wrapper is None else unstepped
        if wrapper is None and started is None and _no_room(engine):
            # Inside spawn() (a task_spawned hook): it is about to join the queue.
            return self.record(handle, "waiting_for_slot", None, empty, None)
        state: SnapshotState
        if handle._flags & ABORTED:
            state = "aborting"
            started = None if unstepped or kind == RATE_TURN else started or handle._spawned
        elif kind == RATE_TURN or (due and engine._rate is not None):
            empty.awaiting = "rate turn"  # the same on every backend (S15)
            return self.record(handle, "waiting_for_rate", None, empty, None)
        else:
            status = handle._status
            state = "starting" if status is not None and status._waiting() else "running"
            started = started or handle._spawned  # spawned is started, unless it waited
        return self.record(handle, state, started, _chain_of(wrapper, unstepped, kind), None, task)

    def record(  # noqa: PLR0913, PLR0917 - one TaskSnapshot's parts
        self,
        handle: JoinHandle[Any],
        state: SnapshotState,
        started: float | None,
        chain: _Chain,
        kind: int | None,
        task: object = None,
    ) -> TaskSnapshot:
        now = self.now
        key = handle._key
        thread_stack: tuple[StackFrame, ...] = ()
        if chain.thread_key is not None:
            thread_stack = self.thread_stack(chain.thread_key)
        sets: tuple[SetSnapshot, ...] = ()
        owned = self.children.get(id(task)) if task is not None else None
        if owned:
            sets = tuple(self.take(e) for e in owned if id(e) not in self.seen)
        return TaskSnapshot(
            id=handle._id,
            name=handle._name,
            key=None if key is self.no_key else key,
            state=state,
            age=max(0.0, now - handle._spawned),
            running_for=None if started is None else max(0.0, now - started),
            stack=tuple(chain.frames),
            awaiting=chain.awaiting,
            waiting_on=None if chain.primitive is None else _describe_primitive(chain.primitive),
            thread_stack=thread_stack,
            outcome=None if kind is None else _KIND_NAMES.get(kind),
            detached=handle._flags >= DETACHED,
            sets=sets,
        )

    def runs_here(self, handle: JoinHandle[Any]) -> bool:
        """Whether this thread is inside ``handle``'s task wrapper (``Engine._run``)."""
        frame: types.FrameType | None = sys._getframe()
        while frame is not None:
            if frame.f_code is self.run_code and frame.f_locals.get("handle") is handle:
                return True
            frame = frame.f_back
        return False

    def thread_stack(self, key: tuple[int, int]) -> tuple[StackFrame, ...]:
        if self.threads is None:
            self.threads = _thread_stacks()
        found = self.threads.get(key, [])
        # Two threads running the same function with the same (empty, shared)
        # argument tuple cannot be told apart: show neither rather than guess.
        return found[0] if len(found) == 1 else ()

    def feeder(self, feeding: _Feeding[Any, Any]) -> WaiterSnapshot:
        task = feeding.task  # None while its task is being made (eager asyncio)
        stack = () if task is None else tuple(_walk(task.coro).frames)
        return WaiterSnapshot("feeder", _since(self.now, feeding.since), stack)


def _chain_of(wrapper: Any, unstepped: bool, kind: int) -> _Chain:  # noqa: ANN401 - or _RUNNING_HERE
    """Where a started task is: its await chain, or why it has none."""
    chain = _Chain([], None, None, None)
    if wrapper is _RUNNING_HERE:
        chain.awaiting = "running now"
    elif unstepped:
        chain.awaiting = "not started by the event loop yet"
    elif kind == RATE_TURN:
        chain.awaiting = "rate turn"  # aborted while it waited for its turn
    else:
        chain = _walk(wrapper, skip_first=True)
        if chain.awaiting is None and not chain.frames:
            chain.awaiting = _not_suspended(wrapper)
    return chain


def _no_room(engine: Engine[Any]) -> bool:
    """Whether a task being spawned now goes to the limit's queue (S14)."""
    slots = engine._slots
    return slots is not None and not slots.has_room(engine._running)


def _finished(engine: Engine[Any]) -> list[tuple[JoinHandle[Any], int]]:
    """The finished tasks whose outcome is still to be handed out, in their order."""
    # Put back by a cancelled combinator (S11), then in the engine's stream. The
    # stream's buffer is AnyIO's: read it, never change it. A handle handed out
    # since the buffer was copied (another thread) is left out.
    found = [(outcome._handle, outcome._kind) for outcome in tuple(engine._front)]
    state = getattr(getattr(engine, "_receive", None), "_state", None)
    buffer: tuple[JoinHandle[Any], ...] = tuple(getattr(state, "buffer", ()))
    found += [(handle, handle._kind) for handle in buffer if handle._flags < DETACHED]
    return [(handle, kind) for handle, kind in found if kind in _KIND_NAMES]


def _feeding(engine: Engine[Any]) -> list[_Feeding[Any, Any]]:
    """The set's ``map()`` feeders whose task still runs (_feed.py)."""
    feeders = cast("tuple[_Feeding[Any, Any], ...]", tuple(engine._feeders))
    return [f for f in feeders if f.feeding]


def _since(now: float, stamp: float | None) -> float | None:
    return None if stamp is None else max(0.0, now - stamp)


def _not_suspended(wrapper: Coroutine[Any, Any, Any]) -> str | None:
    """A stepped task with no chain: it is the one taking the snapshot, or just ended."""
    return "running now" if _coro_state(wrapper) == inspect.CORO_RUNNING else None


# -- warnings (S30) -----------------------------------------------------------------


def _with_warnings(snap: SetSnapshot, engine: Engine[Any], stale_after: float) -> SetSnapshot:
    warnings: list[str] = []
    # A follow() waiter joins too; only join_next on an empty set is wrong (S22).
    joiners = [w for w in snap.waiters if w.kind == "join_next"]
    takers = [w for w in snap.waiters if w.kind != "feeder"]
    finished = [t for t in snap.tasks if t.state == "finished"]
    ready_for = snap.ready_for
    if finished and not takers and ready_for is not None and ready_for >= stale_after:
        warnings.append(
            f"{len(finished)} finished outcome(s) wait to be joined, the set has not "
            f"been emptied for {ready_for:.1f} s, and nobody is joining: call "
            f"join_next() (or iterate) to take them."
        )
    if joiners and snap.length == 0 and not _feeding(engine):
        warnings.append(
            "join_next() waits while len is 0, which must never happen (API.md S5): "
            "please report this with this dump."
        )
    started = [t for t in snap.tasks if t.state in ("starting", "running", "aborting")]
    locks = {t.waiting_on for t in started}
    if len(started) > 1 and len(locks) == 1:
        (lock,) = locks
        if lock is not None and lock.split(" at ")[0].rsplit(".", 1)[-1] in _LOCKS:
            warnings.append(
                f"every one of its {len(started)} running tasks waits on the same {lock}: "
                f"whoever holds it is the one to look at."
            )
    if not warnings:
        return snap
    return replace(snap, warnings=tuple(warnings))


# -- the text form (S29) ------------------------------------------------------------


def _chain_line(stack: tuple[StackFrame, ...], awaiting: str | None) -> str:
    names = [f.function for f in stack]
    if len(names) > 6:
        names = [*names[:3], "...", *names[-2:]]
    if awaiting is not None:
        names.append(f"<{awaiting}>")
    return " -> ".join(names) if names else "-"


def _group(tasks: Iterable[TaskSnapshot]) -> list[tuple[TaskSnapshot, ...]]:
    groups: dict[object, list[TaskSnapshot]] = {}
    for task in tasks:
        # A task that entered sets is shown alone, with its sets under it.
        key = (
            (task.state, task.outcome, task.detached, task.stack, task.awaiting, task.thread_stack)
            if not task.sets
            else ("alone", task.id)
        )
        groups.setdefault(key, []).append(task)
    ordered = sorted(groups.values(), key=lambda g: -max(t.age for t in g))
    return [tuple(g) for g in ordered]


def _format_set(snap: SetSnapshot, lines: list[str], indent: str) -> None:
    lines.append(
        f"{indent}{snap.face} #{snap.serial} [{snap.backend}] {snap.state}, len={snap.length}, "
        f"limit={snap.limit}, {len(snap.tasks)} task(s), entered {snap.age:.1f} s ago"
    )
    inner = indent + "  "
    lines.extend(f"{inner}WARNING: {warning}" for warning in snap.warnings)
    for waiter in snap.waiters:
        waited = "" if waiter.waited is None else f" for {waiter.waited:.1f} s"
        where = f" at {_chain_line(waiter.stack, None)}" if waiter.stack else ""
        lines.append(f"{inner}{waiter.kind} waiting{waited}{where}")
    for group in snap.groups():
        first = group[0]
        oldest = max(t.age for t in group)
        state = _STATE_TEXT[first.state]
        if first.outcome is not None:
            state += f" ({first.outcome})"
        if first.detached:
            state += " (detached)"
        if len(group) == 1:
            key = "" if first.key is None else f" key={_repr(first.key)}"
            who = f"task {first.id} {first.name!r}{key} {state}, spawned {oldest:.1f} s ago"
        else:
            ids = [t.id for t in group]
            who = (
                f"{len(group)} tasks (ids {_id_ranges(ids)}) {state}, "
                f"the oldest spawned {oldest:.1f} s ago"
            )
        lines.append(f"{inner}{who}, at {_chain_line(first.stack, first.awaiting)}")
        lines.extend(f"{inner}    {frame}" for frame in first.stack)
        waits = {t.waiting_on for t in group} - {None}
        if len(waits) == 1:
            lines.append(f"{inner}    waits on {next(iter(waits))}")
        elif waits:
            kinds = sorted({w.split(" at ")[0] for w in waits if w is not None})
            lines.append(f"{inner}    waits on {len(waits)} different {', '.join(kinds)}")
        if first.thread_stack:
            lines.append(f"{inner}    in its worker thread:")
            lines.extend(f"{inner}      {frame}" for frame in first.thread_stack)
        for owned in first.sets:
            _format_set(owned, lines, inner + "    ")


def _repr(obj: object) -> str:
    """``repr(obj)``, or what went wrong: a user's key must not break a dump (S29)."""
    try:
        return repr(obj)
    except Exception as exc:  # noqa: BLE001 - any error of a user's __repr__
        return f"<repr failed: {type(exc).__name__}>"


def _id_ranges(ids: list[int]) -> str:
    ids = sorted(ids)
    parts: list[str] = []
    start = prev = ids[0]
    for i in [*ids[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    if len(parts) > 4:
        parts = [*parts[:2], "...", parts[-1]]
    return ", ".join(parts)


# -- the signal handler (S29) -----------------------------------------------------------


def dump_on_signal(signum: int | None = None, *, file: TextIO | None = None) -> Callable[[], None]:
    """
    Write `dump_sets` to ``file`` (standard error) whenever the process gets ``signum``.

    Opt-in: call it once, from the main thread (``signal.signal``'s rule), for
    example at the top of ``main()``; ``kill -USR1 <pid>`` then prints every open
    set, nested, with its tasks grouped by stack. The default signal is
    ``SIGUSR1``. Windows has no ``SIGUSR1``: pass another signal your program
    does not use (``signal.SIGBREAK``, sent by Ctrl-Break in a console), or call
    `dump_sets` from your own code (a watchdog thread, a debug endpoint). The
    handler runs in the main thread between two bytecodes, so the dump is
    consistent for a set of the main thread's event loop; it blocks that thread
    (and its event loop) while it writes, in proportion to the tasks listed
    (S29). It never raises: if the dump cannot be written to ``file``, the error
    and the dump go to the process's standard error instead, best effort, and
    the program carries on.

    Installs stack: each returned function removes its own handler, in any
    order; the handler that was installed before the first comes back once all
    are removed.

    Args:
        signum: The signal; default ``signal.SIGUSR1``.
        file: Where to write (anything with a ``write()`` method); default
            ``sys.stderr`` at the time of the signal.

    Returns:
        A function that removes this handler (calling it again does nothing).

    Raises:
        TypeError: If ``signum`` is not a signal number (an int or a
            ``signal.Signals``), or ``file`` has no ``write()`` method.
        ValueError: If ``signum`` is not a signal of this platform, is
            ``SIGKILL`` or ``SIGSTOP`` (which cannot be caught), is missing on
            Windows (no ``SIGUSR1``), or if called from another thread than the
            main one.
    """
    signum = _check_signal(signum)
    if file is not None and not callable(getattr(file, "write", None)):
        msg = (
            f"dump_on_signal() file must have a write() method, such as sys.stderr or "
            f"a file opened for writing text, got {type(file).__name__}."
        )
        raise TypeError(msg)
    if threading.current_thread() is not threading.main_thread():
        msg = (
            "dump_on_signal() must be called from the main thread, as signal.signal() "
            "must; call it at the start of main(), or call dump_sets() from this thread."
        )
        raise ValueError(msg)
    layer = _Layer(signum, file)
    layer.previous = signal.signal(signum, layer.handle)
    _layers.append(layer)
    return layer.remove


def _check_signal(signum: object) -> int:
    if signum is None:
        found = getattr(signal, "SIGUSR1", None)
        if found is None:  # pragma: no cover - Windows
            msg = "dump_on_signal() needs a signal on Windows, which has no SIGUSR1; pass one."
            raise ValueError(msg)
        return int(found)
    if not isinstance(signum, int) or isinstance(signum, bool):
        msg = (
            f"dump_on_signal() signum must be a signal number such as signal.SIGUSR1, "
            f"got {type(signum).__name__}."
        )
        raise TypeError(msg)
    if signum not in signal.valid_signals():
        msg = (
            f"dump_on_signal() signum must be a signal of this platform, got {signum!r}; "
            f"pass one of signal.valid_signals(), such as signal.SIGUSR1."
        )
        raise ValueError(msg)
    uncatchable = {getattr(signal, name, None) for name in ("SIGKILL", "SIGSTOP")} - {None}
    if signum in uncatchable:
        msg = (
            f"dump_on_signal() signum cannot be {signal.Signals(signum).name}, which no "
            f"handler can catch; pass another signal, such as signal.SIGUSR1."
        )
        raise ValueError(msg)
    return int(signum)


_Handler = Callable[[int, Any], Any] | int | None


class _Layer:
    """One ``dump_on_signal`` install: its handler, and the one it replaced."""

    def __init__(self, signum: int, file: TextIO | None) -> None:
        self.signum = signum
        self.file = file
        self.previous: _Handler = None
        self.active = True

    def handle(self, _signum: int, _frame: object) -> None:
        """The signal handler: write the dump; never raise into the interrupted code."""
        if not self.active:
            return  # removed, but kept as the previous handler of another's install
        out = sys.stderr if self.file is None else self.file
        text = ""
        try:
            text = dump_sets() + "\n"
            out.write(text)
            flush = getattr(out, "flush", None)
            if flush is not None:
                flush()
        except Exception as exc:  # noqa: BLE001 - the program must keep running
            _fallback(f"anyio_joinset.dump_on_signal(): could not write the dump: {exc!r}\n{text}")

    def remove(self) -> None:
        """Put back what this install replaced, wherever it is in the stack of installs."""
        if not self.active:
            return
        self.active = False
        mine = [layer for layer in _layers if layer.signum == self.signum]
        above = mine[mine.index(self) + 1 :]
        _layers.remove(self)
        if above:
            # A later install replaced ours: it puts back what ours replaced.
            above[0].previous = self.previous
        elif signal.getsignal(self.signum) == self.handle:
            signal.signal(self.signum, self.previous)
        # Else someone else's handler replaced ours: it stays; ours does nothing now.


_layers: list[_Layer] = []


def _fallback(text: str) -> None:
    """Best effort: the process's own standard error, as it was at start-up."""
    stream = sys.__stderr__
    try:
        if stream is not None:
            stream.write(text)
            stream.flush()
    except Exception:  # nowhere left to write it
        logger.exception("dump_on_signal() could not write the dump")
