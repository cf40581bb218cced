# What it measures: whether a change slowed the core spawn/join_next path. It
# loads anyio_joinset as it was at a git ref next to the working tree's, and
# times both (and the floor) interleaved in ONE run per backend, so the ratio
# "now / before" is free of machine drift.
#
# Run it:
#   python benchmarks/ab.py --ref HEAD~3
#   python benchmarks/ab.py --ref v0.1.0 --n 20000 --runs 9 --backends trio
from __future__ import annotations

import argparse
import importlib.util
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
from bench import BACKENDS, floor, w1, w3

import anyio_joinset

ROOT = Path(__file__).resolve().parent.parent


def load_ref(ref: str, into: Path) -> ModuleType:
    """anyio_joinset as it was at `ref`, imported as `anyio_joinset_ref`."""
    # The package moved from src/ to the top level; older refs have it under src/.
    for where in ("anyio_joinset", "src/anyio_joinset"):
        archive = subprocess.run(  # noqa: S603
            ["git", "archive", "--format=tar", ref, where],  # noqa: S607
            cwd=ROOT,
            check=False,
            capture_output=True,
        )
        if archive.returncode == 0:
            break
    archive.check_returncode()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    package = into / where
    spec = importlib.util.spec_from_file_location(
        "anyio_joinset_ref", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["anyio_joinset_ref"] = module
    spec.loader.exec_module(module)
    return module


def joinset_impl(module: ModuleType) -> Any:
    async def run(func: Any, n: int) -> int:
        count = 0
        async with module.JoinSet() as js:
            for i in range(n):
                js.spawn(func, i)
            while await js.join_next() is not None:
                count += 1
        return count

    return run


async def measure(impls: dict[str, Any], n: int, runs: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for workload, func in (("W1", w1), ("W3", w3)):
        samples: dict[str, list[float]] = {name: [] for name in impls}
        for run in range(runs + 1):
            order = list(impls) if run % 2 == 0 else list(impls)[::-1]
            for name in order:
                start = time.perf_counter()
                assert await impls[name](func, n) == n
                if run:
                    samples[name].append((time.perf_counter() - start) / n * 1e6)
        out[workload] = {name: statistics.median(v) for name, v in samples.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ref", required=True, help="the git ref to compare against")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ref = load_ref(args.ref, Path(tmp))
        impls = {"floor": floor, "before": joinset_impl(ref), "now": joinset_impl(anyio_joinset)}
        print(f"JoinSet now vs {args.ref}, N={args.n:,}, median of {args.runs} interleaved runs")
        print("| backend | workload | floor µs | before µs | now µs | now/before | now/floor |")
        print("|---|---|---|---|---|---|---|")
        for backend in args.backends:
            name, options = BACKENDS[backend]
            result = anyio.run(
                measure, impls, args.n, args.runs, backend=name, backend_options=options
            )
            for workload, t in result.items():
                print(
                    f"| {backend} | {workload} | {t['floor']:.1f} | {t['before']:.1f} | "
                    f"{t['now']:.1f} | {t['now'] / t['before']:.3f} | {t['now'] / t['floor']:.3f} |"
                )


if __name__ == "__main__":
    main()
