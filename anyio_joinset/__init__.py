"""Run a changing set of concurrent tasks and take their results as they finish."""

from ._exceptions import TaskCancelled
from ._handle import JoinHandle
from ._joinmap import JoinMap
from ._joinset import JoinSet, JoinSetStats
from ._outcome import Outcome

__all__ = ["JoinHandle", "JoinMap", "JoinSet", "JoinSetStats", "Outcome", "TaskCancelled"]

# Show the public path in tracebacks, reprs and docs (as trio and httpx do).
for _obj in (JoinHandle, JoinMap, JoinSet, JoinSetStats, Outcome, TaskCancelled):
    _obj.__module__ = "anyio_joinset"
del _obj
