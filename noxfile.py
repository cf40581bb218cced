"""Sessions: tests (CPython 3.10-3.13), tests_oldest_anyio, lint, typing, examples, bench, docs."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests", "tests_oldest_anyio", "lint", "typing", "examples", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]
OLDEST_ANYIO = "4.14.0"  # keep in step with pyproject's anyio>=4.14
# Linters are pinned so a new release cannot turn CI red by itself.
RUFF = "ruff==0.17.6"
MYPY = "mypy==2.4.1"
PYRIGHT = "pyright[nodejs]==1.1.414"


def _expose_pyenv_pythons() -> None:
    # pyenv keeps python3.X off PATH unless it is "global"; nox looks on PATH.
    for version in SUPPORTED:
        root = Path("~/.pyenv/versions").expanduser()
        found = sorted(root.glob(f"{version}.*/bin/python{version}"))
        if found:
            os.environ["PATH"] = f"{found[-1].parent}{os.pathsep}{os.environ['PATH']}"


_expose_pyenv_pythons()


@nox.session(python=SUPPORTED)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "report", "--fail-under=100")


@nox.session(python="3.11")
def tests_oldest_anyio(session: nox.Session) -> None:
    # AnyIO 4.14's pytest plugin imports a name that pytest 9.1 deprecated, which
    # filterwarnings = error turns into an error: test it with the pytest of its day.
    session.install("-e", ".[test]", f"anyio=={OLDEST_ANYIO}", "pytest<9.1")
    session.run("python", "-c", "import anyio, importlib.metadata as m; print(m.version('anyio'))")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install(RUFF)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typing(session: nox.Session) -> None:
    # exceptiongroup: the checkers look at the Python 3.10 branch too.
    session.install("-e", ".[test]", MYPY, PYRIGHT, "exceptiongroup")
    session.run("mypy", "--strict")
    session.run("pyright")
    session.run("pyright", "--verifytypes", "anyio_joinset", "--ignoreexternal")


@nox.session(python="3.11")
def examples(session: nox.Session) -> None:
    """Run every example on asyncio, asyncio+uvloop and Trio (as the tests do)."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/test_examples.py", "tests/test_docs.py", *session.posargs)


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """The benchmark suite: nox -s bench -- --quick (or --large)."""
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/bench.py", *session.posargs)


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Build the docs site strictly: any warning (a broken link, a bad ref) fails."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")
