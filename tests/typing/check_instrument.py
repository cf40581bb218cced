"""
Typing tests of the instruments (S31): checked, never run.

A duck-typed instrument is accepted wherever an `Instrument` is, and the
public names `AnyJoinSet` and `FinishKind` annotate an override.
"""

from __future__ import annotations

import types
from typing import Any

from anyio_joinset import (
    AnyJoinSet,
    FinishKind,
    Instrument,
    JoinHandle,
    JoinMap,
    JoinSet,
    Outcome,
    add_instrument,
    remove_instrument,
)


class Timing(Instrument):
    def task_finished(
        self, joinset: AnyJoinSet, handle: JoinHandle[Any], kind: FinishKind, run_time: float
    ) -> None:
        pass

    def task_handed_out(self, joinset: AnyJoinSet, outcome: Outcome[Any]) -> None:
        pass


class Duck:
    def task_spawned(self, joinset: AnyJoinSet, handle: JoinHandle[Any]) -> None:
        pass


def register(js: JoinSet[int], jm: JoinMap[str, int]) -> None:
    for instrument in (Timing(), Duck(), types.SimpleNamespace(task_spawned=print)):
        js.add_instrument(instrument)
        jm.add_instrument(instrument)
        add_instrument(instrument)
        js.remove_instrument(instrument)
        jm.remove_instrument(instrument)
        remove_instrument(instrument)
    either: AnyJoinSet = js
    either = jm
    del either
