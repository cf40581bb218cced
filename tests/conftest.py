"""Run every async test on asyncio (debug on), asyncio+uvloop and Trio (API.md S15)."""

from __future__ import annotations

import importlib.util

import pytest

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None

BACKENDS = [
    pytest.param(("asyncio", {"debug": True}), id="asyncio"),
    pytest.param(
        ("asyncio", {"debug": True, "use_uvloop": True}),
        id="asyncio+uvloop",
        marks=pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed"),
    ),
    pytest.param(("trio", {}), id="trio"),
]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return request.param  # type: ignore[no-any-return]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        type=float,
        default=0,
        metavar="SECONDS",
        help="run the chaos suite with new seeds for this long (tests/test_chaos.py)",
    )
