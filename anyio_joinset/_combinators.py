# The combinators, written once against the engine's operations (take the next
# outcome, put outcomes back, abort all) so both faces get them: shutdown (S9),
# join_all (S11) and first_success (S19). Feeding (S20) has a module of its own,
# _feed.py.
#
# Cancel safety (S11, S19): everything a combinator took and did not return or
# raise goes back to the set, ahead of later outcomes, in the order it was taken.
# pyright: reportPrivateUsage=false
from __future__ import annotations

import math
import sys
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio

from ._calling import real_number
from ._engine import Engine, discard, discard_all
from ._outcome import SUCCEEDED, Outcome
from ._states import OPEN, SHUTTING

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup

T = TypeVar("T")
V = TypeVar("V")
I = TypeVar("I")  # noqa: E741


def check_grace(grace: object, face: str) -> float | None:
    """``shutdown(grace=)``: None or a real number of seconds >= 0, not NaN (S3)."""
    if grace is None:
        return None
    seconds = real_number(grace)
    if seconds is None:
        msg = (
            f"{face}.shutdown() grace must be None or a number of seconds, "
            f"got {type(grace).__name__}."
        )
        raise TypeError(msg)
    if math.isnan(seconds) or seconds < 0:
        msg = f"{face}.shutdown() grace must be None or at least 0 seconds, got {grace!r}."
        raise ValueError(msg)
    return seconds


@contextmanager
def _shutting(engine: Engine[Any]) -> Generator[None, None, None]:
    """
    While it lasts, new spawns are aborted before they start (S9) and feeding stops.

    Counted, so a shutdown that ends (or is cancelled) while another one still
    waits leaves the set shutting down until the last one is done.
    """
    engine._draining += 1
    if engine._state == OPEN:
        engine._set_state(SHUTTING)
    try:
        engine._stop_feeding()
        yield
    finally:
        engine._draining -= 1
        if not engine._draining and engine._state == SHUTTING:
            engine._set_state(OPEN)


async def _drain(engine: Engine[T], into: list[Outcome[T]] | None) -> None:
    """Abort every task and wait for all; new spawns meanwhile never run (S9)."""
    with _shutting(engine):
        engine._abort_all()
        while (outcome := await engine._next()) is not None:
            if into is None:
                discard(outcome)
            else:
                into.append(outcome)


async def shutdown(engine: Engine[T], grace: float | None) -> None:
    """Abort all, wait for every task, discard the outcomes (S9)."""
    with _shutting(engine):
        if grace and engine._pending:
            with anyio.move_on_after(grace):
                while (outcome := await engine._next()) is not None:
                    discard(outcome)
        await _drain(engine, None)


async def join_all(
    engine: Engine[T], present: Callable[[Outcome[T]], V], fail_fast: bool, face: str
) -> list[V]:
    """Every value in completion order, or the failure(s) (S11)."""
    taken: list[Outcome[T]] = []
    engine._hold(taken)
    try:
        while (outcome := await engine._next()) is not None:
            taken.append(outcome)
            if fail_fast and outcome._kind != SUCCEEDED:
                await _drain(engine, taken)
                break
    except BaseException:
        engine._put_back(taken)
        raise
    finally:
        engine._unhold(taken)
    failed = [outcome for outcome in taken if outcome._kind != SUCCEEDED]
    if not failed:
        return [present(outcome) for outcome in taken]
    if fail_fast:
        discard_all(failed[1:])  # drained after the first failure, never retrieved (S13)
        error: BaseException = failed[0]._failure()
    else:
        msg = f"{len(failed)} of the {face}'s {len(taken)} tasks failed or were cancelled"
        error = ExceptionGroup(msg, [outcome._failure() for outcome in failed])
    # The traceback keeps this frame: it must hold neither the outcomes (and so
    # the values taken) nor the error, or they would live on in a cycle.
    del taken, failed, outcome
    try:
        raise error
    finally:
        del error


async def first_success(engine: Engine[T], present: Callable[[Outcome[T]], V], face: str) -> V:
    """The first task to succeed wins; the rest are aborted and drained (S19)."""
    taken: list[Outcome[T]] = []
    winner: Outcome[T] | None = None
    engine._hold(taken)
    try:
        while (outcome := await engine._next()) is not None:
            taken.append(outcome)
            if outcome._kind == SUCCEEDED:
                winner = outcome
                # Straight into taken: cancelled while draining, the losers go
                # back too (S19 with S11), failures included.
                await _drain(engine, taken)
                break
    except BaseException:
        engine._put_back(taken)
        raise
    finally:
        engine._unhold(taken)
    if winner is not None:
        discard_all(taken[taken.index(winner) + 1 :])
        return present(winner)
    if not taken:
        msg = f"This {face} has no tasks; spawn some before first_success()."
        raise LookupError(msg)
    msg = f"no task of the {face} succeeded"
    error = ExceptionGroup(msg, [outcome._failure() for outcome in taken])
    del taken, outcome  # as in join_all: no cycle through the traceback
    try:
        raise error
    finally:
        del error


def outcome_only(outcome: Outcome[T]) -> Outcome[T]:
    """A JoinSet's view of an outcome: the outcome itself."""
    return outcome


def value_only(outcome: Outcome[T]) -> T:
    """A JoinSet's join_all/first_success view of a successful outcome."""
    return outcome.result()


def tagged(outcome: Outcome[T]) -> tuple[Any, Outcome[T]]:
    """A JoinMap's key (or a fed task's input) with its outcome."""
    return outcome._handle._key, outcome


def keyed_value(outcome: Outcome[T]) -> tuple[Any, T]:
    """A JoinMap's join_all/first_success view of a successful outcome."""
    return outcome._handle._key, outcome.result()
