"""Run a changing set of concurrent tasks and take their results as they finish."""

from importlib.metadata import PackageNotFoundError, version

from ._exceptions import TaskCancelled
from ._feed import Feed
from ._handle import JoinHandle, TaskState
from ._instrument import FinishKind, Instrument, add_instrument, remove_instrument
from ._introspect import (
    SetSnapshot,
    StackFrame,
    TaskSnapshot,
    WaiterSnapshot,
    dump_on_signal,
    dump_sets,
    snapshot_sets,
)
from ._joinmap import AnyJoinSet, JoinMap
from ._joinset import JoinSet, JoinSetStats
from ._outcome import Outcome
from ._start import Follow, TaskStatus
from ._taskgroup import SetTaskGroup

__all__ = [
    "AnyJoinSet",
    "Feed",
    "FinishKind",
    "Follow",
    "Instrument",
    "JoinHandle",
    "JoinMap",
    "JoinSet",
    "JoinSetStats",
    "Outcome",
    "SetSnapshot",
    "SetTaskGroup",
    "StackFrame",
    "TaskCancelled",
    "TaskSnapshot",
    "TaskState",
    "TaskStatus",
    "WaiterSnapshot",
    "add_instrument",
    "dump_on_signal",
    "dump_sets",
    "remove_instrument",
    "snapshot_sets",
]

try:
    __version__ = version("anyio-joinset")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree, not installed
    __version__ = "0+unknown"
del version, PackageNotFoundError

# Show the public path in tracebacks, reprs and docs (as trio and httpx do).
for _obj in (
    AnyJoinSet,
    Feed,
    FinishKind,
    Follow,
    Instrument,
    JoinHandle,
    JoinMap,
    JoinSet,
    JoinSetStats,
    Outcome,
    SetSnapshot,
    SetTaskGroup,
    StackFrame,
    TaskCancelled,
    TaskSnapshot,
    TaskState,
    TaskStatus,
    WaiterSnapshot,
    add_instrument,
    dump_on_signal,
    dump_sets,
    remove_instrument,
    snapshot_sets,
):
    _obj.__module__ = "anyio_joinset"
del _obj
