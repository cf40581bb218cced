"""Module-level functions for the process and cluster tests (they must pickle)."""

from __future__ import annotations

import os
import threading
import time


def square(x: int) -> int:
    return x * x


def pid_and_square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def fail(message: str) -> None:
    raise ValueError(message)


def sleep_then(seconds: float, value: int) -> int:
    time.sleep(seconds)
    return value


# For the in-process Dask cluster: module-level state is shared with its worker
# threads, because tasks are pickled by reference to this module.
STARTED = threading.Event()
GATE = threading.Event()
RAN: list[str] = []


def blocker() -> str:
    STARTED.set()
    GATE.wait(30)
    return "blocker"


def must_not_run() -> str:
    RAN.append("ran")
    return "pending"
