"""The README's code blocks and the examples run, on asyncio, asyncio+uvloop and Trio."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from conftest import BACKENDS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# ```python blocks are complete programs and are run; ```py blocks are fragments.
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
# docs/API.md is a verbatim copy of the contract; its sketch is not a program.
DOC_FILES = [README, *sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name != "API.md")]


def blocks() -> list[tuple[str, str]]:
    """(name, code) of every runnable block in the README and the docs."""
    found = []
    for path in DOC_FILES:
        for index, code in enumerate(BLOCK.findall(path.read_text(encoding="utf-8"))):
            found.append((f"{path.relative_to(ROOT)}#{index}", code))
    return found


ANYIO_BLOCKS = [
    pytest.param(
        code,
        id=name,
        marks=pytest.mark.skipif(
            "anyio.as_completed" in code and not hasattr(anyio, "as_completed"),
            reason="anyio.as_completed is newer than this AnyIO",
        ),
    )
    for name, code in blocks()
    if "anyio.run(" in code
]
NATIVE_BLOCKS = [
    pytest.param(
        code,
        id=name,
        marks=pytest.mark.skipif(
            "asyncio.TaskGroup" in code and sys.version_info < (3, 11),
            reason="asyncio.TaskGroup is new in Python 3.11",
        ),
    )
    for name, code in blocks()
    if "anyio.run(" not in code
]


def test_readme_has_runnable_blocks() -> None:
    """The README shows at least the first-screen example and the API tour."""
    assert len(BLOCK.findall(README.read_text(encoding="utf-8"))) >= 2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("code", ANYIO_BLOCKS)
def test_anyio_block_runs(
    code: str, backend: tuple[str, dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each AnyIO code block of the README and docs runs to the end, asserts included."""
    name, options = backend
    monkeypatch.setattr(
        anyio, "run", functools.partial(anyio.run, backend=name, backend_options=options)
    )
    exec(compile(code, "<docs>", "exec"), {"__name__": "docs"})  # noqa: S102 - our docs


@pytest.mark.parametrize("code", NATIVE_BLOCKS)
def test_native_block_runs(code: str) -> None:
    """Each asyncio- or Trio-only block (the migration guide's "before") runs too."""
    assert "trio.run(" in code or "asyncio.run(" in code
    exec(compile(code, "<docs>", "exec"), {"__name__": "docs"})  # noqa: S102 - our docs


def test_readme_has_exactly_two_setup_commands() -> None:
    """The README's set-up section holds exactly two commands: example and tests."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```\n(.*?)\n```", section, re.MULTILINE | re.DOTALL)
    assert commands == [
        'python -m pip install -e ".[examples]" && python examples/crawl.py',
        'python -m pip install -e ".[test]" && python -m pytest',
    ]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_quickstart_example_runs(backend: str) -> None:
    """examples/quickstart.py runs end to end as a script and reports every task."""
    result = subprocess.run(  # noqa: S603 - our own example
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--backend", backend],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = result.stdout.splitlines()
    assert lines[-1] == "done: 8 ok, 1 failed, 1 aborted"
    assert "page-7: failed with page 7: HTTP 500" in lines
    assert "page-9: aborted" in lines
    assert len(lines) == 11


@pytest.mark.parametrize("backend", BACKENDS)
def test_quickstart_main_on_every_backend(backend: tuple[str, dict[str, object]]) -> None:
    """The quickstart's main() gives the same counts on every backend."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import quickstart  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    name, options = backend
    counts = anyio.run(quickstart.main, 5, backend=name, backend_options=options)
    assert counts == {"ok": 8, "failed": 1, "cancelled": 1}
