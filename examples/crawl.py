"""
What it shows: a real concurrent web crawler built on one JoinSet.

It starts a real HTTP server on 127.0.0.1 (a generated site with random
latency, some pages that fail with HTTP 500 and some links to pages that do
not exist), then crawls it with httpx: every page fetched is a task; each
result is handled the moment its task finishes, and the links it found are
spawned as new tasks while the crawl goes on. `limit` bounds how many fetches
run at once; failures are values and never stop the crawl; a live progress bar
(rich), driven by the set's own stats() snapshot, shows spawned / finished /
failed; Ctrl-C aborts every fetch still running and still prints the summary.
No internet is needed.

Run it:
  python examples/crawl.py                          # asyncio, 200 pages
  python examples/crawl.py --backend trio --pages 500 --concurrency 32
  python examples/crawl.py --backend asyncio+uvloop --max-latency 0.05
"""

from __future__ import annotations

import argparse
import random
import re
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import anyio.abc
import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from anyio_joinset import JoinSet
from anyio_joinset.backends import BACKENDS, run

LINK = re.compile(r'href="(/page/\d+)"')


# -- the site: a real HTTP server in a background thread ----------------------


@dataclass(frozen=True)
class Site:
    """A generated site: page i links to a few other pages, some missing."""

    pages: int
    seed: int
    max_latency: float

    def links(self, page: int) -> list[int]:
        rng = random.Random(self.seed * 1_000_003 + page)
        # Mostly forward links, so the whole site is reachable from page 0,
        # plus one link past the end of the site (a 404) now and then.
        targets = {page + 1, rng.randrange(self.pages), rng.randrange(self.pages)}
        if rng.random() < 0.1:
            targets.add(self.pages + rng.randrange(100))
        return sorted(t for t in targets if t != page)

    def fails(self, page: int) -> bool:
        return page % 17 == 16  # a deterministic set of broken pages

    def latency(self, page: int) -> float:
        return random.Random(self.seed + page).uniform(0, self.max_latency)


def make_handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            match = re.fullmatch(r"/page/(\d+)", self.path)
            page = int(match.group(1)) if match else -1
            if not 0 <= page < site.pages:
                self.reply(404, "not found")
                return
            time.sleep(site.latency(page))
            if site.fails(page):
                self.reply(500, "internal server error")
                return
            links = "".join(f'<a href="/page/{t}">{t}</a>\n' for t in site.links(page))
            self.reply(200, f"<html><body><h1>Page {page}</h1>\n{links}</body></html>")

        def reply(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep the terminal for the progress bar

    return Handler


def start_server(site: Site) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(site))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


# -- the crawler ---------------------------------------------------------------


@dataclass
class Stats:
    spawned: int = 0
    finished: int = 0
    failed: int = 0
    statuses: Counter[str] = field(default_factory=Counter[str])
    interrupted: bool = False


async def fetch(client: httpx.AsyncClient, path: str) -> list[str]:
    """Fetch one page and return the links on it; an HTTP error raises."""
    response = await client.get(path)
    response.raise_for_status()
    return LINK.findall(response.text)


async def stop_on_signal(
    scope: anyio.CancelScope,
    stats: Stats,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for _ in signals:
            stats.interrupted = True
            scope.cancel()  # leaving the JoinSet's block aborts every fetch
            return


async def crawl(base_url: str, concurrency: int, stats: Stats, console: Console) -> None:
    columns = (
        TextColumn("[bold]crawling"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} pages"),
        TextColumn("[green]{task.fields[finished]} ok [red]{task.fields[failed]} failed"),
        TimeElapsedColumn(),
    )
    limits = httpx.Limits(max_connections=concurrency)
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task("crawl", total=1, finished=0, failed=0)
        async with (
            httpx.AsyncClient(base_url=base_url, limits=limits) as client,
            anyio.create_task_group() as tg,
        ):
            with anyio.CancelScope() as scope:
                if sys.platform != "win32":
                    await tg.start(stop_on_signal, scope, stats)
                progress.console.print(f"crawling {base_url} (Ctrl-C stops)", highlight=False)
                async with JoinSet[list[str]](limit=concurrency) as js:
                    seen = {"/page/0"}
                    js.spawn(fetch, client, "/page/0", name="/page/0")
                    stats.spawned = 1
                    async for outcome in js:  # each page the moment it is fetched
                        if outcome.cancelled():
                            continue
                        error = outcome.exception()
                        if error is None:
                            stats.finished += 1
                            stats.statuses["200"] += 1
                            for link in outcome.result():
                                if link not in seen:  # new work while we crawl
                                    seen.add(link)
                                    js.spawn(fetch, client, link, name=link)
                                    stats.spawned += 1
                        else:
                            stats.failed += 1
                            if isinstance(error, httpx.HTTPStatusError):
                                stats.statuses[str(error.response.status_code)] += 1
                            else:
                                stats.statuses[type(error).__name__] += 1
                        snapshot = js.stats()  # cheap enough for every outcome
                        progress.update(
                            bar,
                            total=snapshot.spawned,
                            completed=snapshot.joined,
                            finished=snapshot.joined - snapshot.failed - snapshot.cancelled,
                            failed=snapshot.failed,
                        )
            tg.cancel_scope.cancel()


def summary(stats: Stats, elapsed: float, concurrency: int) -> Table:
    table = Table(title="crawl interrupted (Ctrl-C)" if stats.interrupted else "crawl complete")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("pages spawned", str(stats.spawned))
    table.add_row("pages fetched", str(stats.finished))
    table.add_row("pages failed", str(stats.failed))
    for status, count in sorted(stats.statuses.items()):
        table.add_row(f"  HTTP {status}", str(count))
    table.add_row("concurrency limit", str(concurrency))
    table.add_row("seconds", f"{elapsed:.2f}")
    return table


async def main(pages: int, concurrency: int, max_latency: float, seed: int) -> Stats:
    site = Site(pages=pages, seed=seed, max_latency=max_latency)
    server, base_url = start_server(site)
    console = Console()
    stats = Stats()
    start = time.perf_counter()
    try:
        await crawl(base_url, concurrency, stats, console)
    finally:
        server.shutdown()
        server.server_close()
    console.print(summary(stats, time.perf_counter() - start, concurrency))
    print(
        f"result: {stats.finished} fetched, {stats.failed} failed, "
        f"{stats.spawned} spawned{' (interrupted)' if stats.interrupted else ''}"
    )
    return stats


if __name__ == "__main__":
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--backend", choices=list(BACKENDS), default="asyncio", help="event loop")
    cli.add_argument("--pages", type=int, default=200, help="pages on the site")
    cli.add_argument("--concurrency", type=int, default=16, help="fetches at once")
    cli.add_argument("--max-latency", type=float, default=0.02, help="seconds per page")
    cli.add_argument("--seed", type=int, default=1)
    args = cli.parse_args()
    run(main, args.pages, args.concurrency, args.max_latency, args.seed, backend=args.backend)
