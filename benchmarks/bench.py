# What it measures: the per-task cost and memory of anyio_joinset.JoinSet against
# the raw floor (one AnyIO task group + one memory object stream, each task
# pushing its result) and against peers, in ONE run, implementations interleaved
# (A B A B ...) so machine drift cancels out. Ratios to the floor of the same run
# are the numbers to read; absolute times are not comparable across machines.
#
# Run it:
#   python benchmarks/bench.py --quick            # under a minute
#   python benchmarks/bench.py                    # N = 1k, 10k, 100k
#   python benchmarks/bench.py --large            # adds N = 1,000,000
#   nox -s bench -- --quick
#   python benchmarks/bench.py --issue9 [--quick] # the figures of issue 9 (issue9.py)
# It prints a markdown table and writes benchmarks/results/<date>-<backend...>.{md,json,png}.
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import importlib.metadata
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio import create_memory_object_stream, create_task_group
from anyio.lowlevel import checkpoint
from anyio.streams.memory import MemoryObjectReceiveStream

from anyio_joinset import JoinSet
from anyio_joinset.backends import BACKENDS

RESULTS = Path(__file__).parent / "results"

# -- workloads ----------------------------------------------------------------
# Every implementation runs the same task body; W3's failures come back as values
# (implementations that would tear down on an error wrap the body, as a user must).

SLEEPS: list[float] = []


async def w1(i: int) -> int:
    """W1: trivial, one checkpoint."""
    await checkpoint()
    return i


async def w2(i: int) -> int:
    """W2: sleep a random 0-5 ms (the sleeps are drawn once, the same for everyone)."""
    await anyio.sleep(SLEEPS[i])
    return i


async def w3(i: int) -> int:
    """W3: one checkpoint, every tenth task raises."""
    await checkpoint()
    if i % 10 == 0:
        raise ValueError(i)
    return i


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3}


def errors_as_values(func: Callable[[int], Awaitable[int]]) -> Callable[[int], Awaitable[object]]:
    async def safe(i: int) -> object:
        try:
            return await func(i)
        except Exception as exc:  # noqa: BLE001 - the point: errors as values
            return exc

    return safe


# -- implementations: each runs n tasks and consumes n results, as completed ----


async def floor(func: Callable[[int], Awaitable[int]], n: int) -> int:
    send, recv = create_memory_object_stream[object](math.inf)

    async def worker(i: int) -> None:
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


async def joinset_join_next(func: Callable[[int], Awaitable[int]], n: int) -> int:
    count = 0
    async with JoinSet[int]() as js:
        for i in range(n):
            js.spawn(func, i)
        while await js.join_next() is not None:
            count += 1
    return count


async def joinset_iter(func: Callable[[int], Awaitable[int]], n: int) -> int:
    count = 0
    async with JoinSet[int]() as js:
        for i in range(n):
            js.spawn(func, i)
        async for _ in js:
            count += 1
    return count


async def anyio_as_completed(func: Callable[[int], Awaitable[int]], n: int) -> int:
    safe = errors_as_values(func)
    count = 0
    async with anyio.as_completed(*(safe(i) for i in range(n))) as handles:  # type: ignore[attr-defined]
        async for _ in handles:
            count += 1
    return count


async def aiometer_amap(func: Callable[[int], Awaitable[int]], n: int) -> int:
    import aiometer  # noqa: PLC0415

    count = 0
    async with aiometer.amap(errors_as_values(func), range(n)) as results:
        async for _ in results:
            count += 1
    return count


async def asyncer_soonify(func: Callable[[int], Awaitable[int]], n: int) -> int:
    import asyncer  # noqa: PLC0415

    safe = errors_as_values(func)
    async with asyncer.create_task_group() as tg:
        values = [tg.soonify(safe)(i) for i in range(n)]
    return sum(1 for v in values if v.ready)  # results only at the end: no as-completed


async def aioresult_channel(func: Callable[[int], Awaitable[int]], n: int) -> int:
    import aioresult  # noqa: PLC0415

    safe = errors_as_values(func)
    count = 0
    send, recv = create_memory_object_stream[Any](math.inf)
    async with create_task_group() as tg:
        results = [aioresult.ResultCapture.start_soon(tg, safe, i) for i in range(n)]
        tg.start_soon(aioresult.results_to_channel, results, send)
        async with recv:
            async for _ in recv:
                count += 1
    return count


async def asyncio_native(func: Callable[[int], Awaitable[int]], n: int) -> int:
    safe = errors_as_values(func)
    count = 0
    async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined]
        tasks = [tg.create_task(safe(i)) for i in range(n)]  # type: ignore[arg-type]
        for future in asyncio.as_completed(tasks):
            await future
            count += 1
    return count


async def trio_native(func: Callable[[int], Awaitable[int]], n: int) -> int:
    import trio  # noqa: PLC0415

    send, recv = trio.open_memory_channel[object](math.inf)

    async def worker(i: int) -> None:
        try:
            value: object = await func(i)
        except Exception as exc:  # noqa: BLE001
            value = exc
        send.send_nowait(value)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(worker, i)
        for _ in range(n):
            await recv.receive()
    return n


IMPLS: dict[str, Callable[[Callable[[int], Awaitable[int]], int], Awaitable[int]]] = {
    "floor": floor,
    "JoinSet join_next": joinset_join_next,
    "JoinSet async for": joinset_iter,
    "anyio.as_completed": anyio_as_completed,
    "aiometer.amap": aiometer_amap,
    "asyncer soonify": asyncer_soonify,
    "aioresult channel": aioresult_channel,
    "asyncio TaskGroup+as_completed": asyncio_native,
    "trio nursery+channel": trio_native,
}
ONLY_ON = {"asyncio TaskGroup+as_completed": "asyncio", "trio nursery+channel": "trio"}


def impls_for(backend: str, names: list[str]) -> list[str]:
    wanted = []
    for name in names:
        only = ONLY_ON.get(name)
        if only is not None and BACKENDS[backend][0] != only:
            continue
        if name == "asyncio TaskGroup+as_completed" and sys.version_info < (3, 11):
            continue
        wanted.append(name)
    return wanted


# -- measurements ---------------------------------------------------------------


async def time_per_task(names: list[str], workload: str, n: int, runs: int) -> dict[str, float]:
    """Median microseconds per task of each implementation, runs interleaved."""
    func = WORKLOADS[workload]
    samples: dict[str, list[float]] = {name: [] for name in names}
    for run in range(runs + 1):  # the first round is the warm-up
        order = names if run % 2 == 0 else names[::-1]
        for name in order:
            gc.collect()
            start = time.perf_counter()
            count = await IMPLS[name](func, n)
            elapsed = time.perf_counter() - start
            assert count == n, (name, count, n)
            if workload == "W2":
                elapsed -= max(SLEEPS[:n])  # the overhead beyond the sleeps
            if run:
                samples[name].append(elapsed / n * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


@asynccontextmanager
async def floor_set(
    func: Callable[[int], Awaitable[int]],
) -> AsyncIterator[tuple[Callable[[int], object], MemoryObjectReceiveStream[int]]]:
    """The floor's machinery, for measurements that need to act between steps."""
    send, recv = create_memory_object_stream[int](math.inf)

    async def worker(i: int) -> None:
        send.send_nowait(await func(i))

    with send, recv:
        async with create_task_group() as tg:
            yield (lambda i: tg.start_soon(worker, i)), recv


async def first_result_latency(name: str, n: int) -> float:
    """Milliseconds from the first spawn to the first result (W1)."""
    start = time.perf_counter()
    first: list[float] = []
    if name == "floor":
        async with floor_set(w1) as (spawn, recv):
            for i in range(n):
                spawn(i)
            for _ in range(n):
                await recv.receive()
                if not first:
                    first.append(time.perf_counter())
    else:
        async with JoinSet[int]() as js:
            for i in range(n):
                js.spawn(w1, i)
            while await js.join_next() is not None:
                if not first:
                    first.append(time.perf_counter())
    return (first[0] - start) * 1e3


async def bytes_per_pending_task(name: str, n: int) -> tuple[float, float]:
    """(tracemalloc bytes, RSS bytes) per task while n tasks wait on one Event."""
    release = anyio.Event()

    async def blocked(_i: int) -> int:
        await release.wait()
        return 0

    gc.collect()
    rss_before = _rss()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    if name == "floor":
        async with floor_set(blocked) as (spawn, recv):
            for i in range(n):
                spawn(i)
            await anyio.wait_all_tasks_blocked()
            traced = tracemalloc.get_traced_memory()[0] - before
            rss = _rss() - rss_before
            tracemalloc.stop()
            release.set()
            for _ in range(n):
                await recv.receive()
    else:
        async with JoinSet[int]() as js:
            for i in range(n):
                js.spawn(blocked, i)
            await anyio.wait_all_tasks_blocked()
            traced = tracemalloc.get_traced_memory()[0] - before
            rss = _rss() - rss_before
            tracemalloc.stop()
            release.set()
            while await js.join_next() is not None:
                pass
    return traced / n, rss / n


def _rss() -> int:
    try:
        with open("/proc/self/statm") as statm:  # noqa: PTH123
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: report 0 rather than a wrong number
        return 0


async def long_lived_growth(total: int) -> list[tuple[int, float]]:
    """RSS (MiB above the first wave) of one set spawning and joining `total` tasks."""
    points: list[tuple[int, float]] = []
    wave = 1000
    start = 0
    async with JoinSet[int]() as js:
        for done in range(wave, total + 1, wave):
            for i in range(wave):
                js.spawn(w1, i)
            while await js.join_next() is not None:
                pass
            if done == wave:
                gc.collect()
                start = _rss()
            elif done % (total // 5) == 0:
                gc.collect()
                points.append((done, (_rss() - start) / 2**20))
    return points


def peak_rss_kib(reset: bool = False) -> tuple[int, int]:
    """
    (current RSS, peak RSS) of this process in KiB, from /proc/self/status.

    Not ``ru_maxrss``: on Linux a child process inherits its parent's high-water
    mark through fork and exec, so a child smaller than its parent reports the
    parent's peak. ``reset`` starts a new peak (writing 5 to clear_refs).
    """
    if reset:
        with open("/proc/self/clear_refs", "w") as clear:  # noqa: PTH123
            clear.write("5")
    with open("/proc/self/status") as status:  # noqa: PTH123
        fields = dict(line.split(":", 1) for line in status)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def backpressure_peak(items: int, limit: int) -> float:
    """Peak RSS growth (MiB) of a producer of `items` using wait_for_capacity."""
    base, _ = peak_rss_kib(reset=True)
    async with JoinSet[int](limit=limit) as js, create_task_group() as tg:

        async def consume() -> None:
            # join_next is a checkpoint even when outcomes are ready (S5), so take
            # everything that is ready at each wake-up: otherwise finished outcomes
            # pile up faster than one consumer step per scheduling round.
            async for outcome in js:
                outcome.result()
                while (ready := js.try_join_next()) is not None:
                    ready.result()

        for i in range(items):
            await js.wait_for_capacity()
            js.spawn(w1, i)
            if i == 0:
                tg.start_soon(consume)  # after the first spawn: an empty set ends the loop
    _, peak = peak_rss_kib()
    return (peak - base) / 1024


# -- driver -----------------------------------------------------------------------


async def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"time": {}, "memory": {}, "first_result_ms": {}}
    names = impls_for(backend, args.impls)
    for n in args.sizes:
        for workload in args.workloads:
            runs = args.runs if n <= 100_000 else max(2, args.runs // 2)
            active = (
                names
                if n <= args.peer_max_n
                else [x for x in names if "JoinSet" in x or x == "floor"]
            )
            print(
                f"  {backend} {workload} N={n:,}: {len(active)} implementations x {runs} runs",
                flush=True,
            )
            result = await time_per_task(active, workload, n, runs)
            out["time"][f"{workload}/{n}"] = result
    mem_n = 5_000 if args.quick else 100_000
    out["memory_n"] = mem_n
    for name in ("floor", "JoinSet join_next"):
        samples = [await bytes_per_pending_task(name, mem_n) for _ in range(1 if args.quick else 3)]
        out["memory"][name] = {
            "tracemalloc": statistics.median(s[0] for s in samples),
            "rss": statistics.median(s[1] for s in samples),
        }
        out["first_result_ms"][name] = statistics.median(
            [await first_result_latency(name, mem_n) for _ in range(3 if args.quick else 5)]
        )
    return out


def child_main(args: argparse.Namespace) -> None:
    """One measurement in its own process, so memory numbers do not mix."""
    rng = random.Random(12345)
    SLEEPS.extend(rng.uniform(0, 0.005) for _ in range(max(args.sizes)))
    items = 1_000_000 if args.large else (20_000 if args.quick else 200_000)
    if args.child.startswith("rss:"):
        _, impl, backend_name = args.child.split(":")
        backend, options = BACKENDS[backend_name]
        result = anyio.run(
            bytes_per_pending_task,
            impl,
            5_000 if args.quick else 100_000,
            backend=backend,
            backend_options=options,
        )[1]
    elif args.child == "backpressure":
        result: Any = {"items": items, "limit": 100}
        result["peak_rss_mib"] = anyio.run(backpressure_peak, items, 100)
    elif args.child == "long-lived":
        result = anyio.run(long_lived_growth, items)
    else:
        backend, options = BACKENDS[args.child]
        result = anyio.run(run_backend, args.child, args, backend=backend, backend_options=options)
    json.dump(result, sys.stdout)


def run_child(name: str, args: argparse.Namespace) -> Any:
    cmd = [sys.executable, __file__, "--child", name, "--runs", str(args.runs)]
    cmd += ["--peer-max-n", str(args.peer_max_n), "--sizes", *map(str, args.sizes)]
    cmd += ["--workloads", *args.workloads, "--impls", *args.impls]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--large"] if args.large else []
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True)  # noqa: S603
    lines = proc.stdout.splitlines()
    sys.stderr.write("".join(line + "\n" for line in lines[:-1]))
    return json.loads(lines[-1])


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("anyio", "trio", "uvloop", "aiometer", "asyncer", "aioresult", "anyio-joinset"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def mode(args: argparse.Namespace) -> str:
    return "quick" if args.quick else "large" if args.large else "default"


def report(results: dict[str, Any], extra: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"# Benchmark results, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        f"Mode: {mode(args)}; median of {args.runs} interleaved runs after a warm-up.",
        "",
        "## Time per task (µs; ratio to the floor of the same run)",
        "",
    ]
    for backend, res in results.items():
        lines += [f"### {backend}", ""]
        keys = list(res["time"])
        header = "| implementation | " + " | ".join(keys) + " |"
        lines += [header, "|" + "---|" * (len(keys) + 1)]
        names = sorted(
            {name for per in res["time"].values() for name in per}, key=list(IMPLS).index
        )
        for name in names:
            cells = []
            for key in keys:
                per = res["time"][key]
                if name in per:
                    cells.append(f"{per[name]:.1f} ({per[name] / per['floor']:.2f}x)")
                else:
                    cells.append("-")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        mem = res["memory"]
        lines += [
            (
                f"| N={res['memory_n']:,} pending | tracemalloc B/task "
                "| RSS B/task (fresh process) | first result, ms |"
            ),
            "|---|---|---|---|",
        ]
        for name, values in mem.items():
            lines.append(
                f"| {name} | {values['tracemalloc']:.0f} "
                f"({values['tracemalloc'] / mem['floor']['tracemalloc']:.2f}x) | "
                f"{values['rss']:.0f} | {res['first_result_ms'][name]:.1f} |"
            )
        lines.append("")
        w1 = sorted(
            (int(k.split("/")[1]), v) for k, v in res["time"].items() if k.startswith("W1/")
        )
        if len(w1) > 1:
            small, large = w1[0], w1[-1]
            flat = large[1]["JoinSet join_next"] / small[1]["JoinSet join_next"]
            scaling = (
                f"Scaling (W1, JoinSet): cost per task at N={large[0]:,} is "
                f"{flat:.2f}x the cost at N={small[0]:,}."
            )
            lines += [scaling, ""]
    bp = extra["backpressure"]
    lines += [
        "## Memory over a set's life (asyncio, each in a fresh process)",
        "",
        (
            f"Backpressure: {bp['items']:,} items through limit={bp['limit']} with "
            f"wait_for_capacity: peak RSS grew {bp['peak_rss_mib']:.1f} MiB."
        ),
        "",
        "Long-lived set, RSS MiB above the first wave after N tasks spawned and joined: "
        + ", ".join(f"{n:,}: {mib:.2f}" for n, mib in extra["long_lived"]),
        "",
    ]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib as mpl  # noqa: PLC0415

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no chart")
        return
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 5), squeeze=False)
    for ax, (backend, res) in zip(axes[0], results.items(), strict=True):
        keys = list(res["time"])
        names = sorted({n for per in res["time"].values() for n in per}, key=list(IMPLS).index)
        width = 0.8 / len(names)
        for j, name in enumerate(names):
            ratios = [res["time"][k].get(name, 0) / res["time"][k]["floor"] for k in keys]
            ax.bar([i + j * width for i in range(len(keys))], ratios, width, label=name)
        ax.axhline(1.10, color="red", linestyle="--", linewidth=1)
        ax.set_xticks([i + 0.4 for i in range(len(keys))], keys, rotation=45, ha="right")
        ax.set_title(f"{backend}: time per task / floor")
        ax.set_ylabel("ratio to floor (lower is better)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N = 1k, 10k; 3 runs")
    parser.add_argument("--large", action="store_true", help="add N = 1,000,000")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=list(IMPLS))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--peer-max-n", type=int, default=10_000, help="largest N for peers")
    parser.add_argument("--no-save", action="store_true", help="print only")
    parser.add_argument(
        "--issue9",
        action="store_true",
        help="instead, the figures of issue 9 (benchmarks/issue9.py; with --quick, its quick mode)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.issue9:
        cmd = [sys.executable, str(Path(__file__).with_name("issue9.py"))]
        cmd += ["--backends", *args.backends] + (["--quick"] if args.quick else [])
        sys.exit(subprocess.run(cmd, check=False).returncode)  # noqa: S603
    if args.sizes is None:
        args.sizes = [1_000, 5_000] if args.quick else [1_000, 10_000, 100_000]
        if args.large:
            args.sizes.append(1_000_000)
    if args.quick:
        args.runs = min(args.runs, 3)
        args.workloads = [w for w in args.workloads if w != "W2"] or args.workloads
    if args.child:
        child_main(args)
        return

    results: dict[str, Any] = {}
    for backend in args.backends:
        print(f"{backend}...", flush=True)
        results[backend] = run_child(backend, args)
        for impl in ("floor", "JoinSet join_next"):
            rss = run_child(f"rss:{impl}:{backend}", args)
            results[backend]["memory"][impl]["rss"] = rss
    # Peak RSS and growth are only meaningful in a fresh process each.
    extra = {"backpressure": run_child("backpressure", args)}
    extra["long_lived"] = run_child("long-lived", args)
    text = report(results, extra, args)
    print(text)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        stem = f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}-{mode(args)}"
        (RESULTS / f"{stem}.md").write_text(text + "\n", encoding="utf-8")
        (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
        chart(results, RESULTS / f"{stem}.png")
        print(f"saved {RESULTS / stem}.{{md,json,png}}")


if __name__ == "__main__":
    main()
