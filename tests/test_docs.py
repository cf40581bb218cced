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
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_blocks() -> list[str]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_has_runnable_blocks() -> None:
    """The README shows at least the first-screen example and the API tour."""
    assert len(readme_blocks()) >= 2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_readme_block_runs(
    index: int, backend: tuple[str, dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each ```python block of the README runs to the end (its asserts included)."""
    name, options = backend
    monkeypatch.setattr(
        anyio, "run", functools.partial(anyio.run, backend=name, backend_options=options)
    )
    code = compile(readme_blocks()[index], f"README.md block {index}", "exec")
    exec(code, {"__name__": "readme"})  # noqa: S102 - the README's own code


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
