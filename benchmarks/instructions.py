# What it measures: CPU instructions per task, counted by valgrind's callgrind,
# which is repeatable on a noisy machine where wall-clock times scatter by 10-20%
# between runs. Each implementation runs N1 and then N2 tasks in separate
# processes; (instructions(N2) - instructions(N1)) / (N2 - N1) cancels start-up
# and imports. It compares the floor, JoinSet now and, with --ref, JoinSet at a
# git ref. Needs valgrind (apt-get install valgrind).
#
# Run it:
#   python benchmarks/instructions.py
#   python benchmarks/instructions.py --ref HEAD~5 --backends trio --workload W3
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = """
import sys
sys.path.insert(0, {here!r})
import anyio
import bench
from bench import BACKENDS, WORKLOADS, floor
from ab import joinset_impl, load_ref
import anyio_joinset, tempfile, pathlib
impl, backend, workload, n, ref = sys.argv[1:6]
n = int(n)
if impl == "floor":
    run = floor
elif impl == "before":
    run = joinset_impl(load_ref(ref, pathlib.Path(tempfile.mkdtemp())))
else:
    run = joinset_impl(anyio_joinset)
bench.SLEEPS.extend([0.0] * n)
name, options = BACKENDS[backend]
assert anyio.run(run, WORKLOADS[workload], n, backend=name, backend_options=options) == n
"""


def instructions(impl: str, backend: str, workload: str, n: int, ref: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        script = Path(tmp) / "child.py"
        script.write_text(CHILD.format(here=str(HERE)), encoding="utf-8")
        subprocess.run(  # noqa: S603
            [  # noqa: S607
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                sys.executable, str(script), impl, backend, workload, str(n), ref,
            ],
            check=True,
            capture_output=True,
            # Fixed hashing, so dict and set layouts repeat from run to run. (Trio
            # also shuffles its run queue at random: expect about +-1% there.)
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
        summary = re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE)
        assert summary is not None
        return int(summary[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ref", help="also count JoinSet as it was at this git ref")
    parser.add_argument("--n1", type=int, default=1000)
    parser.add_argument("--n2", type=int, default=3000)
    parser.add_argument("--backends", nargs="+", default=["asyncio", "asyncio+uvloop", "trio"])
    parser.add_argument("--workload", default="W1", choices=["W1", "W3"])
    args = parser.parse_args()
    impls = ["floor", "now"] + (["before"] if args.ref else [])
    print(f"instructions per task ({args.workload}; N={args.n2} minus N={args.n1}; callgrind)")
    header = "| backend | " + " | ".join(impls) + " | now/floor |"
    header += " now/before |" if args.ref else ""
    print(header)
    print("|---" * (len(impls) + 2 + bool(args.ref)) + "|")
    for backend in args.backends:
        per: dict[str, float] = {}
        for impl in impls:
            low = instructions(impl, backend, args.workload, args.n1, args.ref or "HEAD")
            high = instructions(impl, backend, args.workload, args.n2, args.ref or "HEAD")
            per[impl] = (high - low) / (args.n2 - args.n1)
        row = f"| {backend} | " + " | ".join(f"{per[i]:,.0f}" for i in impls)
        row += f" | {per['now'] / per['floor']:.3f} |"
        if args.ref:
            row += f" {per['now'] / per['before']:.3f} |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
