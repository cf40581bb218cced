"""
Run every async test on each event loop of anyio_joinset.backends (API.md S15), under a deadline.

The loops come from the one list, ``anyio_joinset.backends.BACKENDS``; plain
asyncio runs in debug mode. A test marked ``@pytest.mark.explore(runs=N)`` runs
instead on the schedule explorer's seeded loops (tests/explore.py), N times
each with a seed drawn from its test id; a failure shows the seed.

Every async test runs under a deadline (``--deadline``, 60 s by default, or
``@pytest.mark.deadline(seconds)``): a test that hangs fails with a message
naming the deadline, its traceback showing where the test was waiting, and the
dump of every open set (``anyio_joinset.dump_sets``, API.md S29) taken just
before the deadline, while the stuck tasks still wait where they are stuck.
pytest-timeout stays the backstop for a hang that no cancellation reaches.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Generator
from typing import Any

import anyio
import pytest

from anyio_joinset import dump_sets
from anyio_joinset.backends import BACKENDS as LOOPS
from explore import EXPLORE_BACKENDS, explore_backend, seed_for

DEADLINE = 60.0


def _param(name: str) -> Any:
    backend, options = LOOPS[name]
    if backend == "asyncio":
        options = {"debug": True, **options}
    return pytest.param((backend, options), id=name)


# (backend, options) for anyio.run, one per loop on this machine; also used by
# the tests that start their own event loop (test_docs, test_model).
BACKENDS = [_param(name) for name in LOOPS]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    param = request.param
    if isinstance(param, tuple) and param[0] == "explore":
        # A seeded explorer loop, the seed drawn from the test id (with its run).
        seed = seed_for(request.node.nodeid)
        request.node.add_report_section(
            "call", "explorer", f"{param[1]} seed {seed} (from the test id: rerun it)"
        )
        return explore_backend(param[1], seed)
    return param  # type: ignore[no-any-return]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        type=float,
        default=0,
        metavar="SECONDS",
        help="run the chaos and explorer soak tests with new seeds for this long",
    )
    parser.addoption(
        "--explore-runs",
        type=int,
        default=None,
        metavar="N",
        help="seeds per explorer-driven test (default: the test's explore(runs=) marker)",
    )
    parser.addoption(
        "--deadline",
        type=float,
        default=DEADLINE,
        metavar="SECONDS",
        help=f"fail an async test that runs longer than this (default {DEADLINE:g})",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "explore(runs): run on the explorer's seeded loops (tests/explore.py), runs seeds each",
    )
    config.addinivalue_line(
        "markers", "deadline(seconds): this async test's deadline instead of --deadline"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, obj: object) -> None:
    """Parametrize ``anyio_backend`` of an ``explore``-marked test over the seeded loops."""
    marks = getattr(obj, "pytestmark", ())
    marker = next((mark for mark in marks if mark.name == "explore"), None)
    if marker is None or getattr(obj, "_explore_loops", False):
        return
    runs = collector.config.getoption("explore_runs") or marker.kwargs.get("runs", 1)
    params = [
        pytest.param(("explore", loop, run), id=f"{loop}-{run}")
        for loop in EXPLORE_BACKENDS
        for run in range(runs)
    ]
    pytest.mark.parametrize("anyio_backend", params, indirect=True)(obj)
    obj._explore_loops = True  # type: ignore[attr-defined]


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Run an async test under its deadline: a hang fails with a clear message."""
    func = pyfuncitem.obj
    if (
        not inspect.iscoroutinefunction(func)
        or hasattr(func, "hypothesis")
        or "anyio_backend" not in pyfuncitem.funcargs
    ):
        return (yield)
    marker = pyfuncitem.get_closest_marker("deadline")
    seconds = marker.args[0] if marker else pyfuncitem.config.getoption("deadline")
    seconds += pyfuncitem.config.getoption("soak")

    async def under_deadline(**kwargs: object) -> None:
        __tracebackhide__ = True
        # Just before the deadline cancels everything, a thread takes the dump of
        # every open set (a snapshot may be taken from any thread, S28).
        dump: list[str] = []
        timer = threading.Timer(seconds - min(1.0, seconds / 10), lambda: dump.append(dump_sets()))
        timer.daemon = True
        timer.start()
        try:
            with anyio.fail_after(seconds) as scope:
                await func(**kwargs)
        except TimeoutError:
            if not scope.cancel_called:
                raise  # the test's own TimeoutError
            msg = (
                f"{pyfuncitem.nodeid} did not finish within its {seconds:g} s deadline: "
                "something waits forever (where: the traceback above this one, and every "
                "open set just before the deadline below)\n" + "\n".join(dump)
            )
            pytest.fail(msg)
        finally:
            timer.cancel()
            # Ended before the next test: a timer thread ending later would leave
            # its garbage in that test's measurements (tests/test_memory.py).
            timer.join()

    functools.update_wrapper(under_deadline, func, updated=())
    pyfuncitem.obj = under_deadline
    try:
        return (yield)
    finally:
        pyfuncitem.obj = func
