"""Run a changing set of concurrent tasks and take their results as they finish."""

from ._exceptions import TaskCancelled
from ._handle import JoinHandle
from ._joinset import JoinSet
from ._outcome import Outcome

__all__ = ["JoinHandle", "JoinSet", "Outcome", "TaskCancelled"]

# Show the public path in tracebacks, reprs and docs (as trio and httpx do).
for _obj in (JoinHandle, JoinSet, Outcome, TaskCancelled):
    _obj.__module__ = "anyio_joinset"
del _obj
