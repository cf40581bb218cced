"""Run a changing set of concurrent tasks and take their results as they finish."""

from importlib.metadata import PackageNotFoundError, version

from ._exceptions import TaskCancelled
from ._feed import Feed
from ._handle import JoinHandle, TaskState
from ._joinmap import JoinMap
from ._joinset import JoinSet, JoinSetStats
from ._outcome import Outcome
from ._start import Follow, TaskStatus
from ._taskgroup import SetTaskGroup

__all__ = [
    "Feed",
    "Follow",
    "JoinHandle",
    "JoinMap",
    "JoinSet",
    "JoinSetStats",
    "Outcome",
    "SetTaskGroup",
    "TaskCancelled",
    "TaskState",
    "TaskStatus",
]

try:
    __version__ = version("anyio-joinset")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree, not installed
    __version__ = "0+unknown"
del version, PackageNotFoundError

# Show the public path in tracebacks, reprs and docs (as trio and httpx do).
for _obj in (
    Feed,
    Follow,
    JoinHandle,
    JoinMap,
    JoinSet,
    JoinSetStats,
    Outcome,
    SetTaskGroup,
    TaskCancelled,
    TaskState,
    TaskStatus,
):
    _obj.__module__ = "anyio_joinset"
del _obj
