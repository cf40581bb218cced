"""
The code in the README and the docs is right: every block runs or compiles.

Blocks fenced ```python are complete programs: each runs to the end, asserts
included (the AnyIO ones on every event loop of BACKENDS), and `nox -s typing`
type-checks each with mypy --strict and pyright strict (``python
tests/test_docs.py DIR`` writes them out for it). Blocks fenced ```py
do not run here, and each says why: either it is a `--8<--` include of an
example, which tests/test_examples.py runs on every event loop, or the line just
above it reads `<!-- fragment: why it cannot run -->` (invisible on the page).
test_py_block_runs_elsewhere lists each such block as skipped with that reason,
and fails on a ```py block that gives none. Each include must be the exact
directive pymdownx.snippets expands (a formatter once rewrote all of them into
`--8 < --"..."`, which still parses as Python), and what a block expands to must
compile. The built site is checked in tests/test_site.py and tests/test_browser.py.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import hashlib
import inspect
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio

from anyio_joinset.backends import BACKENDS, run
from virtual_time import VirtualTimeLoop, eager_virtual_time_loop, trio_clock

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOC_FILES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(python|py)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# The line just above a ```py block that cannot run, saying why.
FRAGMENT = re.compile(r"^<!-- fragment: (.+?) -->\n```py\n", re.MULTILINE)
# What pymdownx.snippets expands, exactly as it is written in docs/howto/*.md.
INCLUDE = re.compile(r'^--8<-- "([^"]+)"$')
LOOKS_LIKE_INCLUDE = re.compile(r"-\s*-\s*8\s*<")
# The README's test command, which .ci/run also runs exactly (pip >= 25.1 for --group).
TEST_COMMAND = (
    "python -m pip install -U pip && python -m pip install -e . --group test && python -m pytest"
)


def blocks(fence: str) -> list[tuple[str, str]]:
    """(name, code) of every block with this fence in the README and the docs."""
    found = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for index, (kind, code) in enumerate(FENCE.findall(text)):
            if kind == fence:
                found.append((f"{path.relative_to(ROOT)}#{index}", code))
    return found


def expand(code: str) -> str:
    """A ```py block with its --8<-- includes expanded, as the docs build does."""
    lines = []
    for line in code.splitlines():
        match = INCLUDE.match(line)
        if match:
            lines.append((ROOT / match[1]).read_text(encoding="utf-8"))
        else:
            assert not LOOKS_LIKE_INCLUDE.search(line), f"mangled include: {line!r}"
            lines.append(line)
    return "\n".join(lines)


# A block that sleeps for some milliseconds (not sleep(0), not sleep_forever)
# runs on virtual time (tests/virtual_time.py), so its tasks end in the order of
# their sleeps on every run; that is, on every loop but uvloop.
TIMED = re.compile(r"\bsleep\((?!0\))")


def anyio_run_options(backend: str, code: str) -> tuple[str, dict[str, Any]] | None:
    """anyio.run's backend and options for a block, or None if it cannot run there."""
    name, options = BACKENDS[backend]
    if not TIMED.search(code):
        return name, options
    if name == "trio":
        return name, {**options, "clock": trio_clock()}
    factories = {"asyncio": VirtualTimeLoop, "asyncio+eager": eager_virtual_time_loop}
    factory = factories.get(backend)
    return None if factory is None else (name, {"loop_factory": factory})


ANYIO_BLOCKS = [
    pytest.param(
        code,
        backend,
        id=f"{backend}-{name}",
        marks=pytest.mark.skipif(
            "anyio.as_completed" in code and not hasattr(anyio, "as_completed"),
            reason="anyio.as_completed is newer than this AnyIO",
        ),
    )
    for name, code in blocks("python")
    if "anyio.run(" in code
    for backend in BACKENDS
    if anyio_run_options(backend, code) is not None
]


def oldest_python(code: str) -> tuple[int, int]:
    """The oldest Python a ```python block runs on (the package's own: 3.10)."""
    return (3, 11) if "asyncio.TaskGroup" in code else (3, 10)


NATIVE_BLOCKS = [
    pytest.param(
        code,
        id=name,
        marks=pytest.mark.skipif(
            sys.version_info < oldest_python(code),
            reason="asyncio.TaskGroup is new in Python 3.11",
        ),
    )
    for name, code in blocks("python")
    if "anyio.run(" not in code
]
FRAGMENTS = [pytest.param(code, id=name) for name, code in blocks("py")]


def why_not_run(path: Path, index: int, code: str) -> str | None:
    """Why the index-th ```python/```py block of path does not run here, if it says."""
    include = INCLUDE.match(code.strip())
    if include and include[1].startswith("examples/"):
        return f"includes {include[1]}, which tests/test_examples.py runs on every event loop"
    text = path.read_text(encoding="utf-8")
    start = list(FENCE.finditer(text))[index].start()
    stated = [match for match in FRAGMENT.finditer(text) if match.end() - len("```py\n") == start]
    return f"a fragment: {stated[0][1]}" if stated else None


def py_blocks() -> list[tuple[str, str | None]]:
    """(name, why it does not run) of every ```py block of the README and the docs."""
    found = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for index, (kind, code) in enumerate(FENCE.findall(text)):
            if kind == "py":
                name = f"{path.relative_to(ROOT)}#{index}"
                found.append((name, why_not_run(path, index, code)))
    return found


NOT_RUN = [
    pytest.param(name, marks=[pytest.mark.skip(reason=why)] if why else [], id=name)
    for name, why in py_blocks()
]


def write_for_type_checkers(directory: Path) -> dict[str, list[Path]]:
    """
    Write each ```python block as a module of its own, for mypy and pyright.

    One subdirectory per oldest Python the blocks run on (``py3.10``, ``py3.11``),
    each to be checked as that version. ```py blocks are skipped: they are
    fragments (top-level ``await``, names defined elsewhere) or includes of an
    example, which is a program of its own: tests/test_examples.py runs it and
    the package's own mypy and pyright runs check it (pyproject.toml).
    Returns the files written, by Python version.
    """
    written: dict[str, list[Path]] = {}
    for name, code in blocks("python"):
        version = "{}.{}".format(*oldest_python(code))
        folder = directory / f"py{version}"
        folder.mkdir(parents=True, exist_ok=True)
        module = re.sub(r"\W", "_", name.replace(".md#", "_"))
        path = folder / f"{module}.py"
        path.write_text(code, encoding="utf-8")
        written.setdefault(version, []).append(path)
    return written


def test_every_python_block_is_written_for_the_type_checkers(tmp_path: Path) -> None:
    """nox -s typing checks every ```python block, each as a module of its own."""
    written = write_for_type_checkers(tmp_path)
    files = [path for paths in written.values() for path in paths]
    codes = [code for _, code in blocks("python")]
    assert sorted(path.read_text(encoding="utf-8") for path in files) == sorted(codes)
    assert len({path.stem for path in files}) == len(codes)
    assert all(path.stem.isidentifier() for path in files)
    assert set(written) <= {"3.10", "3.11"}


def test_readme_has_runnable_blocks() -> None:
    """The README shows at least the first-screen example and the API tour."""
    assert len([code for name, code in blocks("python") if name.startswith("README")]) >= 2


@pytest.mark.parametrize(("code", "backend"), ANYIO_BLOCKS)
def test_anyio_block_runs(code: str, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each AnyIO code block of the README and docs runs to the end, asserts included."""
    found = anyio_run_options(backend, code)
    assert found is not None
    name, options = found
    monkeypatch.setattr(
        anyio, "run", functools.partial(anyio.run, backend=name, backend_options=options)
    )
    exec(compile(code, "<docs>", "exec"), {"__name__": "docs"})  # noqa: S102 - our docs


@pytest.mark.parametrize("code", NATIVE_BLOCKS)
def test_native_block_runs(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each asyncio- or Trio-only block (the migration guide's "before") runs too."""
    assert "trio.run(" in code or "asyncio.run(" in code
    if TIMED.search(code):  # on virtual time, as the AnyIO blocks
        monkeypatch.setattr(trio, "run", functools.partial(trio.run, clock=trio_clock()))
        # asyncio.run makes its loop with asyncio.events.new_event_loop on every Python.
        monkeypatch.setattr(asyncio.events, "new_event_loop", VirtualTimeLoop)
    exec(compile(code, "<docs>", "exec"), {"__name__": "docs"})  # noqa: S102 - our docs


def test_docs_have_fragments_and_includes() -> None:
    """Every how-to page includes its example through a ```py block."""
    included = {INCLUDE.match(code.strip()) for _, code in blocks("py")}
    paths = {match[1] for match in included if match}
    howtos = sorted((ROOT / "docs" / "howto").glob("*.md"))
    assert len(paths) >= len(howtos) == 12


@pytest.mark.parametrize("name", NOT_RUN)
def test_py_block_runs_elsewhere(name: str) -> None:
    """A ```py block is an example's include or says why it cannot run, and is skipped for it."""
    pytest.fail(
        f"{name}: a ```py block that is no example's include needs the line "
        "`<!-- fragment: why it cannot run -->` just above it, or a ```python fence and to run"
    )


@pytest.mark.parametrize("code", FRAGMENTS)
def test_py_block_compiles(code: str) -> None:
    """Each ```py block expands (includes well-formed, files present) and compiles."""
    expanded = expand(code)
    # Fragments may use `await` and `async for` at the top level.
    compile(expanded, "<docs>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    for match in map(INCLUDE.match, code.splitlines()):
        if match:  # an included example is run by tests/test_examples.py
            assert match[1].startswith("examples/"), match[1]


def test_vendored_mermaid_is_the_npm_packages_file() -> None:
    """The site's Mermaid is byte for byte the file mkdocs.yml names (no formatter touched it)."""
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    (expected,) = re.findall(r"^\s*# sha256 ([0-9a-f]{64})$", config, re.MULTILINE)
    vendored = (ROOT / "docs" / "assets" / "mermaid" / "mermaid.min.js").read_bytes()
    assert hashlib.sha256(vendored).hexdigest() == expected
    assert (ROOT / "docs" / "assets" / "mermaid" / "LICENSE").is_file()


def test_bad_input_page_names_real_tests() -> None:
    """Every test that docs/bad-input.md cites as asserting a message exists."""
    text = (ROOT / "docs" / "bad-input.md").read_text(encoding="utf-8")
    cited = set(re.findall(r"`(test_\w+)`", text))
    defined = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        defined |= set(re.findall(r"def (test_\w+)\(", path.read_text(encoding="utf-8")))
    assert cited
    assert cited <= defined, sorted(cited - defined)


def test_readme_setup_commands() -> None:
    """The README's contributor set-up: a virtual environment, then the crawler and the tests."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Contributing", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```\n(.*?)\n```", section, re.MULTILINE | re.DOTALL)
    assert commands == [
        "python -m venv .venv && . .venv/bin/activate",
        'python -m pip install -e ".[examples]" && python examples/crawl.py',
        TEST_COMMAND,
    ]


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs the README's test command exactly, in a virtual environment of its own."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"\n{TEST_COMMAND}\n" in ci
    assert "\npython3 -m venv .ci-venv\n" in ci


def test_readme_links_are_absolute() -> None:
    """The README is the PyPI page: every link works away from the repository."""
    text = README.read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)  # code blocks
    text = re.sub(r"`[^`]*`", "", text)  # inline code
    inline = re.findall(r"\]\(([^)]+)\)", text)
    targets = inline + re.findall(r"^\[[^\]]+\]: (\S+)", text, re.MULTILINE)
    assert targets
    for target in targets:
        assert target.startswith("https://"), target


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


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_quickstart_main_on_every_backend(backend: str) -> None:
    """The quickstart's main() gives the same counts on every backend."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import quickstart  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    counts = run(quickstart.main, 5, backend=backend)
    assert counts == {"ok": 8, "failed": 1, "cancelled": 1}


# docs/migration.md (e): each original, the port's block (the one defining this
# function) and the port's functions that count, its helpers included.
PORTS = {
    "aiometer.amap": ("run_all", ["amap"]),
    "aiometer.run_on_each": ("run_all", ["run_on_each"]),
    "aiometer.run_all": ("run_all", ["run_all"]),
    "aiometer.run_any": ("run_all", ["run_any"]),
    "anyio.gather": ("gather", ["gather"]),
    "anyio.as_completed": ("gather", ["as_completed", "_wait"]),
    "anyio.amap": ("gather", ["amap"]),
}
NOT_CODE = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
}


def code_lines(source: str) -> int:
    """Lines of code: no docstrings, comments or blank lines (decorators count)."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings |= set(range(first.lineno, (first.end_lineno or 0) + 1))
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in NOT_CODE:
            lines |= set(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def port_functions(defines: str) -> dict[str, str]:
    """The source of each top-level function of the migration block that defines ``defines``."""
    text = (ROOT / "docs" / "migration.md").read_text(encoding="utf-8")
    (code,) = [
        code for kind, code in FENCE.findall(text) if kind == "python" and f"def {defines}(" in code
    ]
    lines = code.splitlines()
    found = {}
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            found[node.name] = "\n".join(lines[first - 1 : node.end_lineno])
    return found


@pytest.mark.parametrize("original", list(PORTS))
def test_port_is_no_longer_than_the_original(original: str) -> None:
    """Each port in the migration guide has at most the original's lines, as its table says."""
    module_name, name = original.split(".")
    module = pytest.importorskip(module_name)
    if not hasattr(module, name):
        pytest.skip(f"{original} is newer than this {module_name}")
    before = code_lines(inspect.getsource(getattr(module, name)))
    block, counted = PORTS[original]
    functions = port_functions(block)
    port = sum(code_lines(functions[function]) for function in counted)
    text = (ROOT / "docs" / "migration.md").read_text(encoding="utf-8")
    row = re.search(rf"^\| `{re.escape(original)}` +\| (\d+) +\| (\d+) +\|", text, re.MULTILINE)
    assert row is not None, f"no row for {original} in the table"
    assert (int(row[1]), int(row[2])) == (before, port)
    assert port <= before


if __name__ == "__main__":
    # nox -s typing: write the blocks into the directory given (py3.10/, py3.11/).
    write_for_type_checkers(Path(sys.argv[1]))
