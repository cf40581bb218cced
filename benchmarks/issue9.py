# What it measures: the figures issue 9 asks of the one-engine rewrite, each
# against a floor measured in the same run (ratios are the numbers to read):
#   core     JoinSet and JoinMap per-task CPU instructions (callgrind, as
#            instructions.py counts them: (I(N2) - I(N1)) / (N2 - N1)) against
#            the raw AnyIO floor (task group + memory object stream), W1 and W3,
#            on every loop of anyio_joinset.backends; wall clock beside it.
#            Gates: JoinSet/floor <= 1.05, JoinMap/JoinSet <= 1.15 (instructions).
#   limit    the limit=n path (JoinSet(limit=n) spawning everything, and
#            JoinSet(limit=n).map) against aiometer.amap(max_at_once=n) and an
#            AnyIO task group + CapacityLimiter(n), in instructions and wall clock;
#            and aborting n waiting tasks one by one (JoinSet(limit=1)) for n =
#            10k and 100k: the time ratio should be ~10 (O(n) in all), not ~100.
#   feed     js.map(func, range(N)) with limit=100: tracemalloc peak and peak RSS
#            growth at N = 100k and 1M, each in a fresh process: should be flat.
#   rate     start times against the schedule of rate=: in Trio virtual time
#            (MockClock(autojump_threshold=0); gate: within 5 ms), and the real
#            clock's jitter on every loop (rate=200/s, 200 starts).
#
# Run it:
#   python benchmarks/issue9.py --quick          # under a minute; no callgrind
#   python benchmarks/issue9.py                  # all sections (~15 min on 2 cores)
#   python benchmarks/issue9.py --sections core --backends trio
#   python benchmarks/bench.py --issue9 [--quick]   # the same, through bench.py
# Needs valgrind for the instruction counts (apt-get install valgrind), aiometer.
from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import gc
import importlib.metadata
import itertools
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
from anyio import CapacityLimiter, create_memory_object_stream, create_task_group
from bench import WORKLOADS, errors_as_values, floor, joinset_join_next, peak_rss_kib

from anyio_joinset import JoinMap, JoinSet
from anyio_joinset.backends import BACKENDS

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LIMIT = 100  # n of the limit=n path and of feeding

Impl = Callable[[Callable[[int], Awaitable[int]], int], Awaitable[int]]

# -- implementations: each runs n tasks of `func` and consumes n results -------


async def joinmap_join_next(func: Callable[[int], Awaitable[int]], n: int) -> int:
    count = 0
    async with JoinMap[int, int]() as jm:
        for i in range(n):
            jm.spawn(i, func, i)
        while await jm.join_next() is not None:
            count += 1
    return count


async def limit_joinset(func: Callable[[int], Awaitable[int]], n: int) -> int:
    """JoinSet(limit=n): spawn everything up front, the set queues what has no slot."""
    count = 0
    async with JoinSet[int](limit=LIMIT) as js:
        for i in range(n):
            js.spawn(func, i)
        while await js.join_next() is not None:
            count += 1
    return count


async def limit_joinset_map(func: Callable[[int], Awaitable[int]], n: int) -> int:
    """JoinSet(limit=n).map: fed lazily, at most n inputs in flight (S20)."""
    count = 0
    async with JoinSet[int](limit=LIMIT) as js:
        async for _ in js.map(func, range(n)):
            count += 1
    return count


async def limit_aiometer(func: Callable[[int], Awaitable[int]], n: int) -> int:
    import aiometer  # noqa: PLC0415

    count = 0
    async with aiometer.amap(errors_as_values(func), range(n), max_at_once=LIMIT) as results:
        async for _ in results:
            count += 1
    return count


async def limit_anyio(func: Callable[[int], Awaitable[int]], n: int) -> int:
    """The raw floor of the limit path: task group + CapacityLimiter + stream."""
    send, recv = create_memory_object_stream[object](math.inf)
    limiter = CapacityLimiter(LIMIT)

    async def worker(i: int) -> None:
        async with limiter:
            try:
                value: object = await func(i)
            except Exception as exc:  # noqa: BLE001
                value = exc
        send.send_nowait(value)

    async with create_task_group() as tg:
        for i in range(n):
            tg.start_soon(worker, i)
        for _ in range(n):
            await recv.receive()
    send.close()
    recv.close()
    return n


IMPLS: dict[str, Impl] = {
    "floor": floor,
    "JoinSet": joinset_join_next,
    "JoinMap": joinmap_join_next,
    "TG+CapacityLimiter": limit_anyio,
    "aiometer amap(max_at_once)": limit_aiometer,
    "JoinSet(limit) spawn": limit_joinset,
    "JoinSet(limit).map": limit_joinset_map,
}
CORE = ["floor", "JoinSet", "JoinMap"]
LIMITED = [
    "TG+CapacityLimiter",
    "aiometer amap(max_at_once)",
    "JoinSet(limit) spawn",
    "JoinSet(limit).map",
]

# -- instructions (callgrind) ------------------------------------------------------


def callgrind(impl: str, backend: str, workload: str, n: int, keep: Path | None = None) -> int:
    """Instructions of one process running `impl` on n tasks, start-up included."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(  # noqa: S603
            [  # noqa: S607
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                sys.executable, __file__, "--child", "run", impl, backend, workload, str(n),
            ],
            check=True,
            capture_output=True,
            # Fixed hashing, so dict and set layouts repeat from run to run. (Trio
            # also shuffles its run queue at random: expect about +-1% there.)
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
        summary = re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE)
        assert summary is not None
        if keep is not None:
            shutil.copy(out, keep)
        return int(summary[1])


def instructions_per_task(
    jobs: list[tuple[str, str, str]], n1: int, n2: int, workers: int
) -> dict[tuple[str, str, str], float]:
    """(impl, backend, workload) -> instructions per task, runs spread over `workers`."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = {(job, n): pool.submit(callgrind, *job, n) for job in jobs for n in (n1, n2)}
        counts = {key: future.result() for key, future in futures.items()}
    return {job: (counts[job, n2] - counts[job, n1]) / (n2 - n1) for job in jobs}


def annotate(path: Path) -> dict[str, int]:
    """Exclusive instructions by C function, from callgrind_annotate."""
    text = subprocess.run(  # noqa: S603
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", "--show-percs=no",  # noqa: S607
         "--auto=no", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    found: dict[str, int] = {}
    for line in text.splitlines():
        match = re.match(r"^\s*([\d,]+)\s+(\S.*?)(?: \[.*\])?$", line)
        if match and ":" in match[2]:
            name = match[2].split(":", 1)[1]
            found[name] = found.get(name, 0) + int(match[1].replace(",", ""))
    return found


def python_calls(impl: str, backend: str, workload: str, n: int) -> dict[str, int]:
    """Python-level calls by function (cProfile call counts, which repeat exactly)."""
    import cProfile  # noqa: PLC0415
    import pstats  # noqa: PLC0415

    name, options = BACKENDS[backend]
    profile = cProfile.Profile()
    profile.enable()
    anyio.run(IMPLS[impl], WORKLOADS[workload], n, backend=name, backend_options=options)
    profile.disable()
    stats: Any = pstats.Stats(profile).stats  # pyright: ignore[reportAttributeAccessIssue]
    found: dict[str, int] = {}
    for (file, line, func), (calls, *_rest) in stats.items():
        key = f"{Path(file).name}:{line}({func})"
        found[key] = found.get(key, 0) + calls
    return found


def breakdown(backend: str, workload: str, n1: int, n2: int, impl: str = "JoinSet") -> str:
    """Where `impl` spends instructions per task beyond the floor, by C and Python function."""
    with tempfile.TemporaryDirectory() as tmp:
        outs = {(i, n): Path(tmp) / f"{i}-{n}.out" for i in ("floor", impl) for n in (n1, n2)}
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            totals = {
                key: pool.submit(callgrind, key[0], backend, workload, key[1], out)
                for key, out in outs.items()
            }
            per_task = {
                i: (totals[i, n2].result() - totals[i, n1].result()) / (n2 - n1)
                for i in ("floor", impl)
            }
        funcs = {key: annotate(out) for key, out in outs.items()}

    def delta(i: str, found: dict[tuple[str, int], dict[str, int]]) -> dict[str, float]:
        names = set(found[i, n1]) | set(found[i, n2])
        return {f: (found[i, n2].get(f, 0) - found[i, n1].get(f, 0)) / (n2 - n1) for f in names}

    base, mine = delta("floor", funcs), delta(impl, funcs)
    extra = {f: mine.get(f, 0) - base.get(f, 0) for f in set(base) | set(mine)}
    ratio = per_task[impl] / per_task["floor"]
    lines = [
        (
            f"{impl} vs floor, {backend} {workload}: {per_task[impl]:,.0f} vs "
            f"{per_task['floor']:,.0f} instructions per task ({ratio:.3f}x, "
            f"+{per_task[impl] - per_task['floor']:,.0f})"
        ),
        "",
        "Extra instructions per task by C function (exclusive; callgrind_annotate):",
        "",
        "| function | floor | " + impl + " | extra |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{f}` | {base.get(f, 0):,.0f} | {mine.get(f, 0):,.0f} | {extra[f]:+,.0f} |"
        for f in sorted(extra, key=lambda f: -abs(extra[f]))[:25]
    ]
    for i in ("floor", impl):
        python_calls(i, backend, workload, 100)  # warm-up: imports and caches out of the way
    calls = {
        (i, n): python_calls(i, backend, workload, n) for i in ("floor", impl) for n in (n1, n2)
    }
    pbase, pmine = delta("floor", calls), delta(impl, calls)
    pextra = {f: pmine.get(f, 0) - pbase.get(f, 0) for f in set(pbase) | set(pmine)}
    lines += [
        "",
        "Python calls per task, where they differ (cProfile call counts):",
        "",
        "| function | floor | " + impl + " | extra |",
        "|---|---|---|---|",
    ]
    for f in sorted(pextra, key=lambda f: (-abs(pextra[f]), f)):
        if abs(pextra[f]) >= 0.05:  # noise below one call per 20 tasks: left out
            lines.append(
                f"| `{f}` | {pbase.get(f, 0):.2f} | {pmine.get(f, 0):.2f} | {pextra[f]:+.2f} |"
            )
    return "\n".join(lines) + "\n"


# -- wall clock ---------------------------------------------------------------------


async def wall_per_task(names: list[str], workload: str, n: int, runs: int) -> dict[str, float]:
    """Median µs per task of each implementation, runs interleaved (A B C, C B A, ...)."""
    func = WORKLOADS[workload]
    samples: dict[str, list[float]] = {name: [] for name in names}
    for run in range(runs + 1):  # the first round is the warm-up
        for name in names if run % 2 == 0 else names[::-1]:
            gc.collect()
            start = time.perf_counter()
            count = await IMPLS[name](func, n)
            elapsed = time.perf_counter() - start
            assert count == n, (name, count, n)
            if run:
                samples[name].append(elapsed / n * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def wall(names: list[str], workload: str, n: int, runs: int, backend: str) -> dict[str, float]:
    name, options = BACKENDS[backend]
    return anyio.run(wall_per_task, names, workload, n, runs, backend=name, backend_options=options)


# -- abort of n waiting tasks ---------------------------------------------------------


async def abort_waiting(n: int, collect: bool) -> tuple[float, float]:
    """(seconds to abort n waiting tasks one by one, seconds to then drain them)."""
    async with JoinSet[None](limit=1) as js:
        handles = [js.spawn(anyio.sleep_forever) for _ in range(n)]
        await anyio.wait_all_tasks_blocked()  # the first one holds the slot
        gc.collect()
        if not collect:
            gc.disable()
        try:
            start = time.perf_counter()
            for handle in handles:
                handle.abort()
            aborted = time.perf_counter()
            while await js.join_next() is not None:
                pass
            drained = time.perf_counter()
        finally:
            gc.enable()
    return aborted - start, drained - aborted


def abort_scaling(backend: str, sizes: tuple[int, int], runs: int) -> dict[str, Any]:
    """Median abort and drain times per n, with the cyclic GC on and off."""
    name, options = BACKENDS[backend]
    out: dict[str, Any] = {}
    for n in sizes:
        for collect in (True, False):
            samples = [
                anyio.run(abort_waiting, n, collect, backend=name, backend_options=options)
                for _ in range(runs)
            ]
            out[n, collect] = (
                statistics.median(s[0] for s in samples),
                statistics.median(s[1] for s in samples),
            )
    return out


# -- feeding memory (each N in a fresh process) ------------------------------------------


async def feed(n: int, trace: bool) -> dict[str, float]:
    async def work(i: int) -> int:
        await anyio.lowlevel.checkpoint()
        return i

    most = 0
    gc.collect()
    rss_before, _ = peak_rss_kib(reset=True)
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    async with JoinSet[int](limit=LIMIT) as js:
        async for _, outcome in js.map(work, range(n)):
            outcome.result()
            most = max(most, len(js))
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    tracemalloc.stop()
    _, rss_peak = peak_rss_kib()
    return {
        "n": n,
        "tracemalloc_peak_kib": peak / 1024,
        "maxrss_growth_kib": rss_peak - rss_before,
        "maxrss_mib": rss_peak / 1024,
        "max_len": most,
        "seconds": elapsed,
    }


def feed_child(backend: str, n: int, trace: bool) -> dict[str, float]:
    name, options = BACKENDS[backend]
    anyio.run(feed, 2_000, False, backend=name, backend_options=options)  # warm-up
    return anyio.run(feed, n, trace, backend=name, backend_options=options)


def run_child(*argv: str) -> Any:
    proc = subprocess.run(  # noqa: S603
        [sys.executable, __file__, "--child", *argv], check=True, capture_output=True, text=True
    )
    return json.loads(proc.stdout.splitlines()[-1])


# -- rate accuracy ------------------------------------------------------------------------


async def rate_starts(
    rate: float | tuple[int, float], count: int, how: str, clock: Callable[[], float]
) -> list[float]:
    """Start times of `count` tasks of JoinSet(rate=rate), read from `clock`."""
    starts: list[float] = []

    async def task(_i: int) -> None:
        starts.append(clock())

    async with JoinSet[None](rate=rate) as js:
        if how == "spawn":  # everything spawned up front: tasks wait for their turn
            for i in range(count):
                js.spawn(task, i)
        elif how == "wait_for_capacity":  # a producer held back by the rate (S14, S18)
            for i in range(count):
                await js.wait_for_capacity()
                js.spawn(task, i)
        else:  # fed lazily (S20)
            async for _ in js.map(task, range(count)):
                pass
        await js.join_all()  # leaving the block would abort what has not started
    return starts


def deviations(starts: list[float], interval: float) -> dict[str, float]:
    """
    How far the starts are from the schedule (ms).

    ``late``: start k against first start + k * interval (signed; negative is early,
    which the rate forbids). ``gap``: each gap between starts against the interval.
    """
    late = [(s - (starts[0] + k * interval)) * 1e3 for k, s in enumerate(starts)]
    gaps = [(b - a - interval) * 1e3 for a, b in itertools.pairwise(starts)]
    return {
        "mean_abs_ms": statistics.fmean(abs(x) for x in late),
        "max_abs_ms": max(abs(x) for x in late),
        "most_early_ms": min(late),
        "most_late_ms": max(late),
        "gap_mean_abs_ms": statistics.fmean(abs(x) for x in gaps),
        "gap_max_abs_ms": max(abs(x) for x in gaps),
        "min_gap_ms": min(gaps) + interval * 1e3,
    }


def rate_virtual(count: int) -> list[dict[str, Any]]:
    import trio.testing  # noqa: PLC0415

    rows = []
    for rate, interval in ((100.0, 0.01), ((10, 1.0), 0.1), (3.0, 1 / 3)):
        for how in ("spawn", "wait_for_capacity", "map"):
            clock = trio.testing.MockClock(autojump_threshold=0)
            starts = anyio.run(rate_starts, rate, count, how, anyio.current_time,
                               backend="trio", backend_options={"clock": clock})  # fmt: skip
            assert len(starts) == count
            rows.append({"rate": repr(rate), "how": how, **deviations(starts, interval)})
    return rows


def rate_real(backend: str, per_second: float, count: int) -> dict[str, float]:
    name, options = BACKENDS[backend]
    # time.perf_counter, not the loop's clock: uvloop's counts whole milliseconds.
    starts = anyio.run(rate_starts, per_second, count, "spawn", time.perf_counter,
                       backend=name, backend_options=options)  # fmt: skip
    return deviations(starts, 1 / per_second)


# -- driver ---------------------------------------------------------------------------------


def versions() -> str:
    found = [f"python {platform.python_version()}"]
    for dist in ("anyio", "trio", "uvloop", "aiometer"):
        try:
            found.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{dist} not installed")
    return ", ".join(found)


def section_core(args: argparse.Namespace, lines: list[str], gates: list[str]) -> None:
    if args.no_callgrind or shutil.which("valgrind") is None:
        lines += ["Instructions: skipped (--no-callgrind, --quick or no valgrind).", ""]
        instr: dict[tuple[str, str, str], float] = {}
    else:
        jobs = [(i, b, w) for b in args.backends for w in ("W1", "W3") for i in CORE]
        instr = instructions_per_task(jobs, args.n1, args.n2, args.jobs)
    lines += [
        (
            f"### Core path: per task, W1 and W3 (callgrind N={args.n2} minus N={args.n1}; "
            f"wall clock N={args.wall_n:,}, median of {args.runs} interleaved runs)"
        ),
        "",
        (
            "| backend | workload | floor | JoinSet | JoinMap | **JoinSet/floor** "
            "| **JoinMap/JoinSet** | wall JoinSet/floor | wall JoinMap/JoinSet |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for backend in args.backends:
        for workload in ("W1", "W3"):
            t = wall(CORE, workload, args.wall_n, args.runs, backend)
            cells = [backend, workload]
            if instr:
                f, s, m = (instr[i, backend, workload] for i in CORE)
                cells += [f"{f:,.0f}", f"{s:,.0f}", f"{m:,.0f}", f"{s / f:.3f}", f"{m / s:.3f}"]
                if s / f > 1.05:
                    gates.append(f"JoinSet/floor {s / f:.3f} > 1.05 on {backend} {workload}")
                if m / s > 1.15:
                    gates.append(f"JoinMap/JoinSet {m / s:.3f} > 1.15 on {backend} {workload}")
            else:
                cells += ["-"] * 5
            cells += [
                f"{t['JoinSet'] / t['floor']:.2f}",
                f"{t['JoinMap'] / t['JoinSet']:.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    lines.append("")


def section_limit(args: argparse.Namespace, lines: list[str], gates: list[str]) -> None:
    instr: dict[tuple[str, str, str], float] = {}
    if not args.no_callgrind and shutil.which("valgrind") is not None:
        jobs = [(i, b, "W1") for b in args.backends for i in LIMITED]
        instr = instructions_per_task(jobs, args.n1, args.n2, args.jobs)
    lines += [
        (
            f"### limit={LIMIT} path: per task, W1 (instructions as above; wall clock "
            f"N={args.wall_n:,}, median of {args.runs}); ratio to TG+CapacityLimiter"
        ),
        "",
        "| backend | implementation | instructions | ratio | wall µs | wall ratio |",
        "|---|---|---|---|---|---|",
    ]
    for backend in args.backends:
        t = wall(LIMITED, "W1", args.wall_n, args.runs, backend)
        base = LIMITED[0]
        for impl in LIMITED:
            cells = [backend, impl]
            if instr:
                i, b = instr[impl, backend, "W1"], instr[base, backend, "W1"]
                cells += [f"{i:,.0f}", f"{i / b:.3f}"]
                peer = min(instr[p, backend, "W1"] for p in LIMITED[:2])
                if impl.startswith("JoinSet") and i > peer:
                    gates.append(f"{impl} {i:,.0f} instr/task > peers' {peer:,.0f} on {backend}")
            else:
                cells += ["-", "-"]
            cells += [f"{t[impl]:.1f}", f"{t[impl] / t[base]:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    small, large = args.abort_sizes
    lines += [
        "",
        f"### Aborting n waiting tasks one by one (JoinSet(limit=1), median of {args.runs})",
        "",
        (
            "Each handle's abort(), then the drain of the n cancelled outcomes by join_next; "
            "with the cyclic GC on (as users run) and off (the library's own cost). "
            f"O(n) means a ratio near {large // small}."
        ),
        "",
        (
            f"| backend | GC | abort {small:,} ms | abort {large:,} ms | **ratio** "
            f"| drain {small:,} ms | drain {large:,} ms | ratio |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend in args.backends:
        res = abort_scaling(backend, (small, large), args.runs)
        for collect in (True, False):
            (a_abort, a_drain), (b_abort, b_drain) = res[small, collect], res[large, collect]
            ratio = b_abort / a_abort
            if not collect and ratio > 3 * large / small:
                gates.append(f"abort {large:,}/{small:,} = {ratio:.1f} on {backend}: not O(n)")
            lines.append(
                f"| {backend} | {'on' if collect else 'off'} | {a_abort * 1e3:.1f} "
                f"| {b_abort * 1e3:.1f} | {ratio:.1f} | {a_drain * 1e3:.1f} "
                f"| {b_drain * 1e3:.1f} | {b_drain / a_drain:.1f} |"
            )
            print(lines[-1], flush=True)
    lines.append("")


def section_feed(args: argparse.Namespace, lines: list[str], gates: list[str]) -> None:
    lines += [
        f"### Feeding: js.map(work, range(N)) with limit={LIMIT}, each N in a fresh process",
        "",
        (
            "tracemalloc peak of the run (Python allocations); peak RSS (VmHWM, reset before "
            "the run) and its growth over the RSS before the run, in a separate process "
            "without tracemalloc; max len(js) seen during the run."
        ),
        "",
        (
            "| backend | N | tracemalloc peak KiB | peak RSS growth KiB | peak RSS MiB "
            "| max len | s |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for backend in args.backends:
        peaks = []
        for n in args.feed_sizes:
            traced = run_child("feed", backend, str(n), "trace")
            rss = run_child("feed", backend, str(n), "rss")
            peaks.append((traced["tracemalloc_peak_kib"], rss["maxrss_growth_kib"]))
            lines.append(
                f"| {backend} | {n:,} | {traced['tracemalloc_peak_kib']:.1f} "
                f"| {rss['maxrss_growth_kib']:,} | {rss['maxrss_mib']:.1f} "
                f"| {traced['max_len']} | {rss['seconds']:.1f} |"
            )
            print(lines[-1], flush=True)
        (small_peak, _), (large_peak, large_rss) = peaks[0], peaks[-1]
        if large_peak > 1.5 * small_peak + 64 or large_rss > 4096:
            gates.append(f"feeding memory grows with N on {backend}")
    lines.append("")


def section_rate(args: argparse.Namespace, lines: list[str], gates: list[str]) -> None:
    lines += [
        f"### rate: start k against first start + k * interval ({args.rate_count} starts)",
        "",
        "Trio virtual time (MockClock(autojump_threshold=0)); gate: |deviation| <= 5 ms.",
        "",
        ("| rate | tasks | mean abs ms | max abs ms | most early ms | most late ms | min gap ms |"),
        "|---|---|---|---|---|---|---|",
    ]
    if "trio" in BACKENDS:
        for row in rate_virtual(args.rate_count):
            lines.append(
                f"| {row['rate']} | {row['how']} | {row['mean_abs_ms']:.3f} "
                f"| {row['max_abs_ms']:.3f} | {row['most_early_ms']:.3f} "
                f"| {row['most_late_ms']:.3f} | {row['min_gap_ms']:.3f} |"
            )
            if row["max_abs_ms"] > 5:
                gates.append(f"rate {row['rate']} ({row['how']}) off by {row['max_abs_ms']:.2f} ms")
    per_second, count = 200.0, args.rate_real_count
    lines += [
        "",
        (
            f"Real clock, rate={per_second:g}/s (interval {1e3 / per_second:g} ms), {count} "
            "tasks spawned up front, the median of 3 runs by max abs (not a gate). Each "
            "turn counts from the previous actual start, so lateness against the first "
            "start adds up over the run; the gap jitter is per start:"
        ),
        "",
        (
            "| backend | mean abs ms | max abs ms | most early ms | most late ms "
            "| gap jitter mean ms | gap jitter max ms | min gap ms |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend in args.backends:
        runs = sorted(
            (rate_real(backend, per_second, count) for _ in range(3)),
            key=lambda d: d["max_abs_ms"],
        )
        d = runs[1]
        lines.append(
            f"| {backend} | {d['mean_abs_ms']:.3f} | {d['max_abs_ms']:.3f} "
            f"| {d['most_early_ms']:.3f} | {d['most_late_ms']:.3f} "
            f"| {d['gap_mean_abs_ms']:.3f} | {d['gap_max_abs_ms']:.3f} | {d['min_gap_ms']:.3f} |"
        )
        print(lines[-1], flush=True)
    lines.append("")


SECTIONS = {
    "core": section_core,
    "limit": section_limit,
    "feed": section_feed,
    "rate": section_rate,
}


def child(argv: list[str]) -> None:
    if argv[0] == "run":  # one implementation, for callgrind
        impl, backend, workload, n = argv[1], argv[2], argv[3], int(argv[4])
        name, options = BACKENDS[backend]
        func = WORKLOADS[workload]
        assert anyio.run(IMPLS[impl], func, n, backend=name, backend_options=options) == n
        return
    backend, n, mode = argv[1], int(argv[2]), argv[3]
    print(json.dumps(feed_child(backend, n, mode == "trace")))


def main() -> None:
    parser = argparse.ArgumentParser(description="The figures of issue 9 (see the top).")
    parser.add_argument("--quick", action="store_true", help="small sizes, no callgrind: < 60 s")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    parser.add_argument("--no-callgrind", action="store_true", help="wall clock only")
    parser.add_argument("--n1", type=int, default=1000, help="callgrind: smaller N")
    parser.add_argument("--n2", type=int, default=3000, help="callgrind: larger N")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="callgrind runs")
    parser.add_argument("--wall-n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--save", metavar="PATH", help="also write the markdown here")
    parser.add_argument(
        "--breakdown",
        nargs=2,
        metavar=("BACKEND", "WORKLOAD"),
        help="where JoinSet (or --impl) spends instructions beyond the floor, and stop",
    )
    parser.add_argument("--impl", default="JoinSet", choices=list(IMPLS), help="for --breakdown")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.breakdown:
        print(breakdown(*args.breakdown, args.n1, args.n2, args.impl))
        return
    args.abort_sizes = (10_000, 100_000)
    args.feed_sizes = (100_000, 1_000_000)
    args.rate_count, args.rate_real_count = 200, 200
    if args.quick:
        args.no_callgrind = True
        args.wall_n, args.runs = 2_000, 3
        args.abort_sizes = (2_000, 20_000)
        args.feed_sizes = (5_000, 20_000)
        args.rate_count, args.rate_real_count = 50, 40
    lines = [
        f"# Issue 9 figures, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
        + (" (--quick)" if args.quick else ""),
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores. Versions: {versions()}.",
        "",
    ]
    gates: list[str] = []
    for section in args.sections:
        print(f"-- {section}", flush=True)
        SECTIONS[section](args, lines, gates)
    lines += ["## Gates", ""]
    lines += [f"- **FAIL** {g}" for g in gates] or ["- all pass"]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if args.save:
        Path(args.save).write_text(text, encoding="utf-8")
    sys.exit(1 if gates else 0)


if __name__ == "__main__":
    main()
