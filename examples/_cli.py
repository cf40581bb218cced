"""The command line every example shares: pick the backend, then anyio.run."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

BACKENDS: dict[str, tuple[str, dict[str, Any]]] = {
    "asyncio": ("asyncio", {}),
    "asyncio+uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}


def parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with --backend already in it."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument("--backend", choices=list(BACKENDS), default="asyncio")
    return result


def run(main: Callable[..., Awaitable[Any]], args: argparse.Namespace, *main_args: Any) -> Any:
    """Run ``main(*main_args)`` on the backend named by ``args.backend``."""
    backend, options = BACKENDS[args.backend]
    return anyio.run(main, *main_args, backend=backend, backend_options=options)
