"""
Sessions: tests (each supported CPython), tests_oldest_anyio, lint, typing, examples,
docs, release, bench.

The supported Pythons are read from pyproject's classifiers and every tool from its
dependency groups, so each fact lives in one place. `tests-3.13` (the newest)
enforces 100% branch coverage; the others report it. On CI (the CI environment
variable set), a missing interpreter is an error rather than a skip.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import nox

nox.options.sessions = ["tests", "tests_oldest_anyio", "lint", "typing", "docs", "release"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
SUPPORTED = nox.project.python_versions(PYPROJECT)
OLDEST_ANYIO = "4.14.0"  # keep in step with pyproject's anyio>=4.14


def group(*names: str) -> tuple[str, ...]:
    """The requirements of pyproject's dependency groups, for any pip."""
    return nox.project.dependency_groups(PYPROJECT, *names)


def _expose_pyenv_pythons() -> None:
    # pyenv keeps python3.X off PATH unless it is "global"; nox looks on PATH.
    root = Path("~/.pyenv/versions").expanduser()
    for version in SUPPORTED:
        found = sorted(root.glob(f"{version}.*/bin/python{version}"))
        if found:
            os.environ["PATH"] = f"{found[-1].parent}{os.pathsep}{os.environ['PATH']}"


_expose_pyenv_pythons()


@nox.session(python=SUPPORTED)
def tests(session: nox.Session) -> None:
    """The whole suite under coverage; 100% branch coverage on the newest Python."""
    session.install("-e", ".", *group("test"))
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    if session.python == SUPPORTED[-1]:
        session.run("coverage", "report", "--fail-under=100")
    else:
        session.run("coverage", "report")


@nox.session(python="3.11")
def tests_oldest_anyio(session: nox.Session) -> None:
    """The suite against the oldest AnyIO that pyproject allows."""
    # AnyIO 4.14's pytest plugin imports a name that pytest 9.1 deprecated, which
    # filterwarnings = error turns into an error: test it with the pytest of its day.
    session.install("-e", ".", *group("test"), f"anyio=={OLDEST_ANYIO}", "pytest<9.1")
    session.run("python", "-c", "import importlib.metadata as m; print(m.version('anyio'))")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install(*group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typing(session: nox.Session) -> None:
    """The package and its typing tests, then every ```python block of the docs."""
    session.install("-e", ".", *group("typing"))
    session.run("mypy", "--strict")
    session.run("pyright")
    session.run("pyright", "--verifytypes", "anyio_joinset", "--ignoreexternal")
    # The code users copy is checked as they would check it: each block a module
    # of its own, as the oldest Python it runs on (tests/test_docs.py says which;
    # ```py fragments and example includes are not complete programs: skipped).
    with tempfile.TemporaryDirectory() as blocks:
        session.run("python", "tests/test_docs.py", blocks)
        for folder in sorted(Path(blocks).iterdir()):
            version = folder.name.removeprefix("py")
            session.run("mypy", "--strict", "--python-version", version, str(folder))
            session.run("pyright", "--pythonversion", version, str(folder))


@nox.session(python="3.11")
def examples(session: nox.Session) -> None:
    """Run every example, and every code block of the docs, on every event loop."""
    session.install("-e", ".", *group("test"))
    session.run("pytest", "tests/test_examples.py", "tests/test_docs.py", *session.posargs)


def _chromium(session: nox.Session) -> None:
    """Debian's chromium for the browser test: installed if missing, or the session fails."""
    if os.environ.get("ANYIO_JOINSET_CHROMIUM") or shutil.which("chromium"):
        return
    if shutil.which("apt-get") and getattr(os, "geteuid", lambda: -1)() == 0:  # CI is root
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-q", external=True, env=env)
        session.run("apt-get", "install", "-y", "-q", "chromium", external=True, env=env)
    if not shutil.which("chromium"):
        session.error(
            "Chromium is not installed and cannot be installed here: run `apt-get install "
            "chromium` as root, or set ANYIO_JOINSET_CHROMIUM to a Chromium or Chrome binary"
        )


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Build the docs site strictly (a broken link or ref fails), test the HTML, then
    every page in headless Chromium (site-screenshots/ gets a screenshot of each)."""
    _chromium(session)
    session.install("-e", ".", *group("docs", "test"))
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")
    session.run(
        "pytest",
        "tests/test_site.py",
        "tests/test_browser.py",
        env={"ANYIO_JOINSET_SITE": "site", "ANYIO_JOINSET_BROWSER": "required"},
    )


@nox.session(python="3.11")
def release(session: nox.Session) -> None:
    """Build the sdist and the wheel, and check them as PyPI and packagers will."""
    session.install(*group("release"))
    with tempfile.TemporaryDirectory() as dist:
        session.run("python", "-m", "build", "--outdir", dist)
        artifacts = sorted(str(p) for p in Path(dist).iterdir())
        session.run("twine", "check", "--strict", *artifacts)
        session.run("check-wheel-contents", *[a for a in artifacts if a.endswith(".whl")])


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """The benchmark suite: nox -s bench -- --quick (or --large)."""
    session.install("-e", ".", *group("bench"))
    session.run("python", "benchmarks/bench.py", *session.posargs)
