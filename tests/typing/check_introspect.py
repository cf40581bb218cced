"""
Typing tests of the snapshot and the hooks (S28-S33): checked, never run.

Every call that must be rejected carries a ``type: ignore[...]`` (mypy) and a
``pyright: ignore[...]``, so a regression shows up as an unused ignore.
"""

from __future__ import annotations

import sys
from typing import Any

from anyio_joinset import (
    Instrument,
    JoinHandle,
    JoinMap,
    JoinSet,
    SetSnapshot,
    StackFrame,
    TaskSnapshot,
    WaiterSnapshot,
    add_instrument,
    dump_on_signal,
    dump_sets,
    snapshot_sets,
)

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type


class Counting(Instrument):
    def __init__(self) -> None:
        self.finished = 0

    def task_finished(
        self,
        joinset: JoinSet[Any] | JoinMap[Any, Any],
        handle: JoinHandle[Any],
        kind: str,
        run_time: float,
    ) -> None:
        self.finished += 1


async def snapshots(js: JoinSet[int], jm: JoinMap[str, int]) -> None:
    snap = js.snapshot()
    assert_type(snap, SetSnapshot)
    assert_type(jm.snapshot(stale_after=1.0), SetSnapshot)
    assert_type(snap.tasks, tuple[TaskSnapshot, ...])
    assert_type(snap.waiters, tuple[WaiterSnapshot, ...])
    assert_type(snap.tasks[0].stack, tuple[StackFrame, ...])
    assert_type(snap.tasks[0].running_for, float | None)
    assert_type(snap.format(), str)
    assert_type(snapshot_sets(), tuple[SetSnapshot, ...])
    assert_type(dump_sets(), str)
    assert_type(dump_sets("json"), str)
    dump_sets("xml")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    restore = dump_on_signal()
    restore()
    js.add_instrument(Counting())
    add_instrument(Counting())
    js.snapshot(stale_after="1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
