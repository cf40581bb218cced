# What it measures (issues 13 and 17), in one run, as ratios to the floor measured
# in the same run (this machine's wall clock scatters by 20%: compare ratios, not
# times across runs):
#
#   alive     N tasks alive at once (spawned, all waiting on one Event, then
#             released and joined), asyncio W1: wall time per task for the floor
#             (AnyIO task group + memory object stream) and JoinSet, paired runs
#             (floor and JoinSet alternate, median of --runs), at each size, each
#             run after a warm-up and over at least 100,000 tasks; and
#             memory per pending task, tracemalloc (Python allocations) and RSS
#             (VmRSS growth), measured in fresh processes.
#   detached  1,000,000 short connection-like tasks through ONE long-lived set
#             with limit=1000, each spawned after wait_for_capacity() and detached
#             (fire-and-forget, S22), a follower taking nothing: peak memory
#             (tracemalloc peak and VmHWM, reset before the run) after 10k, 100k
#             and 1M tasks must stay flat: memory is O(live tasks).
#
# Run it:
#   python benchmarks/scale.py alive --sizes 1000 100000 1000000
#   python benchmarks/scale.py detached --sizes 10000 100000 1000000
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import anyio
from anyio import create_memory_object_stream, create_task_group

from anyio_joinset import JoinSet

GATE_TIME = 1.02
GATE_MEMORY = 1.02


def _status(field: str) -> int:
    """A /proc/self/status field in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def _reset_peak() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0): a
    # child would otherwise inherit its parent's high-water mark.
    Path("/proc/self/clear_refs").write_text("5")


async def _wait_on(event: anyio.Event) -> int:
    await event.wait()
    return 1


async def floor_alive(n: int, measure: str) -> float:
    """Spawn n waiting tasks with a bare task group; returns seconds or bytes per task."""
    send, recv = create_memory_object_stream[object](math.inf)
    release = anyio.Event()

    async def worker() -> None:
        try:
            value: object = await _wait_on(release)
        except Exception as exc:  # noqa: BLE001
            value = exc
        send.send_nowait(value)

    result = 0.0
    with send, recv:
        start = time.perf_counter()
        async with create_task_group() as tg:
            before = _memory(measure)
            for _ in range(n):
                tg.start_soon(worker)
            await anyio.wait_all_tasks_blocked()
            if measure != "time":
                result = (_memory(measure) - before) / n
            release.set()
            for _ in range(n):
                await recv.receive()
        if measure == "time":
            result = (time.perf_counter() - start) / n
    return result


async def joinset_alive(n: int, measure: str) -> float:
    """The same with a JoinSet and join_next."""
    release = anyio.Event()
    result = 0.0
    start = time.perf_counter()
    async with JoinSet[int]() as js:
        before = _memory(measure)
        for _ in range(n):
            js.spawn(_wait_on, release)
        await anyio.wait_all_tasks_blocked()
        if measure != "time":
            result = (_memory(measure) - before) / n
        release.set()
        while await js.join_next() is not None:
            pass
    if measure == "time":
        result = (time.perf_counter() - start) / n
    return result


def _memory(measure: str) -> int:
    if measure == "tracemalloc":
        return tracemalloc.get_traced_memory()[0]
    if measure == "rss":
        return _status("VmRSS")
    return 0


IMPLS = {"floor": floor_alive, "JoinSet": joinset_alive}


async def _timed(impl: str, n: int) -> float:
    """
    Seconds per task: one warm-up run, then the median of enough runs to fill 100k tasks.

    The warm-up lets the interpreter specialize the code first (a fresh
    process's first thousand tasks run slower code than the rest), and the
    repeats make a 1,000-task run (about 25 ms) more than one sample.
    """
    await IMPLS[impl](min(n, 1000), "time")
    return statistics.median([await IMPLS[impl](n, "time") for _ in range(max(1, 100_000 // n))])


def child_alive(impl: str, n: int, measure: str) -> float:
    if measure == "time":
        return anyio.run(_timed, impl, n)
    if measure == "tracemalloc":
        tracemalloc.start()
    return anyio.run(IMPLS[impl], n, measure)


async def _connection(i: int) -> int:
    # A short connection-like task: a few steps, a small buffer, a reply.
    await anyio.lowlevel.checkpoint()
    buffer = bytearray(256)
    await anyio.lowlevel.checkpoint()
    return len(buffer) + i


async def detached(sizes: list[int], tracing: bool) -> list[tuple[int, int, int]]:
    """Peak memory (tracemalloc, VmHWM) after each size, one long-lived set."""
    marks: list[tuple[int, int, int]] = []
    spawned = 0
    async with JoinSet[int](limit=1000) as js, create_task_group() as tg:
        taken = 0

        async def follower() -> None:  # a server's reaper: nothing comes (all detached)
            nonlocal taken
            async for _ in js.follow():
                taken += 1

        tg.start_soon(follower)
        for size in sizes:
            while spawned < size:
                await js.wait_for_capacity()
                js.spawn(_connection, spawned).detach()
                spawned += 1
            peak = tracemalloc.get_traced_memory()[1] if tracing else 0
            marks.append((size, peak, _status("VmHWM")))
        assert len(js) == 0
        assert taken == 0
        tg.cancel_scope.cancel()
    return marks


def run_child(args: list[str]) -> object:
    out = subprocess.run(  # noqa: S603
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["alive", "detached"])
    parser.add_argument("--sizes", nargs="+", type=int, default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory-size", type=int, default=100_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("child_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.mode, args.child_args)
        return
    failed = report_alive(args) if args.mode == "alive" else report_detached(args)
    if failed:
        print("\nGATE FAILED: " + "; ".join(failed))
        sys.exit(1)


def report_alive(args: argparse.Namespace) -> list[str]:
    failed: list[str] = []
    sizes = args.sizes or [1000, 100_000, 1_000_000]
    print(f"alive at once, asyncio W1, wall time per task, median of {args.runs} paired runs")
    print("| tasks | floor µs | JoinSet µs | JoinSet/floor |")
    print("|---|---|---|---|")
    for n in sizes:
        samples: dict[str, list[float]] = {"floor": [], "JoinSet": []}
        for run in range(args.runs):
            order = ["floor", "JoinSet"] if run % 2 == 0 else ["JoinSet", "floor"]
            for impl in order:
                samples[impl].append(float(run_child(["alive", impl, str(n), "time"])))  # type: ignore[arg-type]
        floor, ours = (statistics.median(samples[i]) for i in ("floor", "JoinSet"))
        ratio = ours / floor
        print(f"| {n:,} | {floor * 1e6:.1f} | {ours * 1e6:.1f} | {ratio:.3f} |", flush=True)
        if ratio > GATE_TIME:
            failed.append(f"time {ratio:.3f} at {n:,}")
    n = args.memory_size
    print(f"\nmemory per pending task at {n:,} tasks (fresh processes)")
    print("| measure | floor B | JoinSet B | JoinSet/floor |")
    print("|---|---|---|---|")
    for measure in ("tracemalloc", "rss"):
        floor_b = float(run_child(["alive", "floor", str(n), measure]))  # type: ignore[arg-type]
        ours_b = float(run_child(["alive", "JoinSet", str(n), measure]))  # type: ignore[arg-type]
        ratio = ours_b / floor_b
        print(f"| {measure} | {floor_b:,.0f} | {ours_b:,.0f} | {ratio:.3f} |", flush=True)
        if ratio > GATE_MEMORY:
            failed.append(f"memory ({measure}) {ratio:.3f}")
    return failed


def report_detached(args: argparse.Namespace) -> list[str]:
    sizes = args.sizes or [10_000, 100_000, 1_000_000]
    marks: list[list[int]] = run_child(["detached", *map(str, sizes)])  # type: ignore[assignment]
    print("detached tasks through one long-lived set (limit=1000): peak memory")
    print("| tasks | tracemalloc peak MiB | VmHWM MiB |")
    print("|---|---|---|")
    for size, peak, hwm in marks:
        print(f"| {size:,} | {peak / 2**20:.1f} | {hwm / 2**20:.1f} |")
    if marks[-1][1] > marks[0][1] * 1.1 + 2**20:
        return ["tracemalloc peak grew with the number of tasks"]
    return []


def child_main(mode: str, rest: list[str]) -> None:
    if mode == "alive":
        impl, n, measure = rest
        print(json.dumps(child_alive(impl, int(n), measure)))
    else:
        tracemalloc.start()
        _reset_peak()
        print(json.dumps(anyio.run(detached, [int(s) for s in rest], True)))


if __name__ == "__main__":
    main()
