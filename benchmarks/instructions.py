# What it measures: CPU instructions per task, counted by valgrind's callgrind,
# which is repeatable on a noisy machine where wall-clock times scatter by 10-20%
# between runs. Each implementation runs N1 and then N2 tasks in separate
# processes; (instructions(N2) - instructions(N1)) / (N2 - N1) cancels start-up
# and imports. It compares the floor (an AnyIO task group whose runner catches
# Exception into the value and send_nowait()s it into a memory object stream, a
# collector awaiting receive() per item), JoinSet, JoinMap and, with --ref,
# JoinSet at a git ref. Needs valgrind (apt-get install valgrind).
#
# The garbage collector is ON by default (--gc off to compare), in a heap like an
# application's: every child first imports what a web service and this project's
# peers import (httpx, anyio, trio, uvloop, aiometer, asyncer, aioresult where
# installed) and builds --heap long-lived objects (300,000 by default), then
# runs gc.collect() and the measured run. The GC's cost grows with what else is
# alive, so a bare heap would hide it (issue 17). Beside the instructions it
# reports, from a run without valgrind, the garbage collector's collections per
# 1,000 tasks (generation 0 / 1 / 2) and the GC-tracked objects alive per task
# while N tasks are pending.
#
# Gate: JoinSet/floor and JoinMap/floor <= 1.05 on every backend asked for; the
# script exits 1 if one is above (--no-gate to only report).
#
# Run it:
#   python benchmarks/instructions.py                       # GC on, W1, 3 loops
#   python benchmarks/instructions.py --workload W3 --gc off
#   python benchmarks/instructions.py --ref HEAD~5 --backends trio
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GATE = 1.05

CHILD = """
import sys, gc, json
sys.path.insert(0, {here!r})
import importlib
for name in ("httpx", "aiometer", "asyncer", "aioresult", "trio", "uvloop", "logging", "json",
             "decimal", "email.message", "http.client", "urllib.parse", "dataclasses"):
    try:
        importlib.import_module(name)
    except ImportError:
        pass
import anyio
import bench
from bench import BACKENDS, WORKLOADS, floor
from ab import joinset_impl, load_ref
import anyio_joinset, tempfile, pathlib
impl, backend, workload, n, ref, gc_on, heap, mode, hook = sys.argv[1:10]
n, heap = int(n), int(heap)
if backend == "trio":
    import trio._core._run
    trio._core._run._r.seed(0)  # the run queue's coin flips, the same in every run
if hook == "hook" and impl in ("JoinSet", "JoinMap"):
    class Noop(anyio_joinset.Instrument):
        def task_spawned(self, joinset, handle): pass
        def task_started(self, joinset, handle): pass
        def task_finished(self, joinset, handle, kind, run_time): pass
        def task_handed_out(self, joinset, outcome): pass
        def task_aborted(self, joinset, handle): pass
    anyio_joinset.add_instrument(Noop())
# An application's long-lived heap: records, dicts, lists and strings.
HEAP = [{{"id": i, "name": str(i), "tags": [i, str(i)]}} for i in range(heap // 4)]
if impl == "floor":
    run = floor
elif impl == "before":
    run = joinset_impl(load_ref(ref, pathlib.Path(tempfile.mkdtemp())))
elif impl == "JoinMap":
    from issue9 import joinmap_join_next as run
else:
    run = joinset_impl(anyio_joinset)
bench.SLEEPS.extend([0.0] * n)
name, options = BACKENDS[backend]
gc.collect()
if gc_on != "on":
    gc.disable()
if mode == "count":
    collections = [0, 0, 0]
    def callback(phase, info):
        if phase == "start":
            collections[info["generation"]] += 1
    gc.callbacks.append(callback)
assert anyio.run(run, WORKLOADS[workload], n, backend=name, backend_options=options) == n
if mode == "count":
    gc.callbacks.remove(callback)
    print(json.dumps(collections))
"""

# Tracked objects alive per pending task: spawn N tasks, count, let them finish.
ALIVE = """
import sys, gc, json
sys.path.insert(0, {here!r})
import anyio
from anyio.lowlevel import checkpoint
from bench import BACKENDS
impl, backend, n = sys.argv[1], sys.argv[2], int(sys.argv[3])

async def body(i):
    await checkpoint()
    return i

async def main():
    counts = []
    if impl == "floor":
        import math
        send, recv = anyio.create_memory_object_stream(math.inf)
        async def worker(i):
            try:
                value = await body(i)
            except Exception as exc:
                value = exc
            send.send_nowait(value)
        async with anyio.create_task_group() as tg:
            base = len(gc.get_objects())
            for i in range(n):
                tg.start_soon(worker, i)
            counts.append(len(gc.get_objects()) - base)
            await anyio.wait_all_tasks_blocked()
            counts.append(len(gc.get_objects()) - base)
            for _ in range(n):
                await recv.receive()
        send.close(); recv.close()
    else:
        from anyio_joinset import JoinMap, JoinSet
        async with (JoinSet() if impl == "JoinSet" else JoinMap()) as js:
            base = len(gc.get_objects())
            for i in range(n):
                if impl == "JoinSet":
                    js.spawn(body, i)
                else:
                    js.spawn(i, body, i)
            counts.append(len(gc.get_objects()) - base)
            await anyio.wait_all_tasks_blocked()
            counts.append(len(gc.get_objects()) - base)
            while await js.join_next() is not None:
                pass
    print(json.dumps([c / n for c in counts]))

gc.disable()
name, options = BACKENDS[backend]
anyio.run(main, backend=name, backend_options=options)
"""


def _child(source: str, args: list[str], *, valgrind: Path | None = None) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(source.format(here=str(HERE)), encoding="utf-8")
        prefix = []
        if valgrind is not None:
            prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={valgrind}"]
        done = subprocess.run(  # noqa: S603
            [*prefix, sys.executable, str(script), *args],
            check=True,
            capture_output=True,
            text=True,
            # Fixed hashing, so dict and set layouts repeat from run to run; Trio's
            # random run-queue order is seeded in the child.
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        return done.stdout


def instructions(impl: str, backend: str, n: int, args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        child_args = [impl, backend, args.workload, str(n), args.ref or "HEAD"]
        hook = "hook" if args.hook else "none"
        _child(CHILD, [*child_args, args.gc, str(args.heap), "run", hook], valgrind=out)
        summary = re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE)
        assert summary is not None
        return int(summary[1])


def collections(impl: str, backend: str, args: argparse.Namespace) -> list[float]:
    """Collections per 1,000 tasks, generation 0, 1 and 2, at N2 (GC on)."""
    child_args = [impl, backend, args.workload, str(args.n2), args.ref or "HEAD"]
    hook = "hook" if args.hook else "none"
    counts = json.loads(_child(CHILD, [*child_args, "on", str(args.heap), "count", hook]))
    return [c * 1000 / args.n2 for c in counts]


def alive(impl: str, backend: str, n: int) -> list[float]:
    """GC-tracked objects per task: just spawned, then all finished and not joined."""
    return json.loads(_child(ALIVE, [impl, backend, str(n)]))  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ref", help="also count JoinSet as it was at this git ref")
    parser.add_argument("--n1", type=int, default=1000)
    parser.add_argument("--n2", type=int, default=3000)
    parser.add_argument("--backends", nargs="+", default=["asyncio", "asyncio+uvloop", "trio"])
    parser.add_argument("--workload", default="W1", choices=["W1", "W3"])
    parser.add_argument("--gc", default="on", choices=["on", "off"])
    parser.add_argument("--heap", type=int, default=300_000, help="long-lived objects")
    parser.add_argument("--faces", nargs="+", default=["JoinSet", "JoinMap"])
    parser.add_argument("--no-gate", action="store_true", help="report only")
    parser.add_argument(
        "--hook", action="store_true", help="JoinSet/JoinMap with a process-wide no-op Instrument"
    )
    args = parser.parse_args()
    impls = ["floor", *args.faces] + (["before"] if args.ref else [])
    print(
        f"instructions per task ({args.workload}; N={args.n2} minus N={args.n1}; callgrind; "
        f"GC {args.gc}; heap of {args.heap:,} objects)"
    )
    header = "| backend | " + " | ".join(impls) + " | "
    header += " | ".join(f"{i}/floor" for i in impls[1:]) + " |"
    print(header)
    print("|---" * (2 * len(impls)) + "|")
    failed: list[str] = []
    gc_rows: list[str] = []
    for backend in args.backends:
        per: dict[str, float] = {}
        for impl in impls:
            low = instructions(impl, backend, args.n1, args)
            high = instructions(impl, backend, args.n2, args)
            per[impl] = (high - low) / (args.n2 - args.n1)
        ratios = {impl: per[impl] / per["floor"] for impl in impls[1:]}
        row = f"| {backend} | " + " | ".join(f"{per[i]:,.0f}" for i in impls)
        row += " | " + " | ".join(f"{r:.3f}" for r in ratios.values()) + " |"
        print(row, flush=True)
        failed += [
            f"{impl}/floor {r:.3f} > {GATE} on {backend}"
            for impl, r in ratios.items()
            if impl != "before" and r > GATE
        ]
        if args.gc == "on":
            for impl in impls:
                if impl == "before":
                    continue
                col = collections(impl, backend, args)
                live = alive(impl, backend, args.n2)
                gc_rows.append(
                    f"| {backend} | {impl} | {col[0]:.1f} / {col[1]:.1f} / {col[2]:.2f} "
                    f"| {live[0]:.2f} | {live[1]:.2f} |"
                )
    if gc_rows:
        print(
            f"\ngarbage collector ({args.workload}, N={args.n2}): collections per 1,000 tasks "
            "(gen 0 / 1 / 2), GC-tracked objects alive per task just after spawning N, "
            "and once all N finished, not yet joined"
        )
        print("| backend | impl | collections | alive, spawned | alive, finished |")
        print("|---|---|---|---|---|")
        print("\n".join(gc_rows))
    if failed and not args.no_gate:
        print("\nGATE FAILED: " + "; ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
