"""Every example runs alone as a script on every event loop of BACKENDS, and says what it should."""

from __future__ import annotations

import ast
import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from anyio_joinset.backends import BACKENDS as LOOPS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# The one list of event loops (asyncio, asyncio+uvloop, asyncio+eager, Trio), as
# far as this machine has them: the same list each example's --backend offers.
BACKENDS = list(LOOPS)


def run_example(name: str, backend: str, *args: str) -> list[str]:
    result = subprocess.run(  # noqa: S603 - our own examples
        [sys.executable, str(EXAMPLES / name), "--backend", backend, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_every_example_is_tested_and_documented() -> None:
    """Each example opens with a docstring saying what it shows and how to run it."""
    tested = {
        "abort.py", "as_completed.py", "crawl.py", "errors.py", "join_all_vs_joinset.py",
        "keyed.py", "offload.py", "quickstart.py", "server.py", "shutdown_signal.py",
        "stuck.py", "telemetry.py", "with_context.py", "worker_pool.py",
    }  # fmt: skip
    found = {p.name for p in EXAMPLES.glob("*.py")}
    assert found == tested
    for name in found:
        doc = ast.get_docstring(ast.parse((EXAMPLES / name).read_text(encoding="utf-8")))
        assert doc is not None, name
        assert doc.startswith("What it shows:"), name
        assert f"python examples/{name}" in doc, name
        assert "--backend trio" in doc, name


def test_examples_import_nothing_private() -> None:
    """An example copied out of examples/ runs alone: no import from a sibling module."""
    siblings = {p.stem for p in EXAMPLES.glob("*.py")}
    for path in EXAMPLES.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in siblings, (path.name, name)
                assert not name.startswith("anyio_joinset._"), (path.name, name)


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_help_says_what_the_example_is_for(name: str) -> None:
    """--help prints the example's purpose and offers every event loop by name."""
    result = subprocess.run(  # noqa: S603 - our own examples
        [sys.executable, str(EXAMPLES / name), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "What it shows:" in result.stdout
    assert "--backend {" + ",".join(BACKENDS) + "}" in result.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_as_completed(backend: str) -> None:
    """as_completed.py: spawn order vs completion order (chained, so on every run).

    The milliseconds are shown, not compared: a busy machine can stall either run.
    """
    lines = run_example("as_completed.py", backend)
    assert re.fullmatch(
        r"gather in spawn order: \[0, 1, 2, 3, 4\]  \(first result handled after \d+ ms\)",
        lines[0],
    )
    assert re.fullmatch(
        r"JoinSet as completed:  \[4, 3, 2, 1, 0\]  \(first result handled after \d+ ms\)",
        lines[1],
    )
    assert len(lines) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_worker_pool(backend: str) -> None:
    """worker_pool.py: every job handled once, then the pool exits on its own."""
    lines = run_example("worker_pool.py", backend, "--jobs", "15", "--workers", "3")
    assert lines[-1] == "pool finished: 15 of 15 jobs"
    done = sorted(int(re.match(r"job (\d+) done", line)[1]) for line in lines[:-1])  # type: ignore[index]
    assert done == list(range(15))


@pytest.mark.parametrize("backend", BACKENDS)
def test_abort(backend: str) -> None:
    """abort.py: block exit, abort_all and handle.abort each abort and clean up."""
    lines = run_example("abort.py", backend)
    assert lines == [
        "1. leaving the block aborts what still runs",
        "   after the block: ['a cleaned up', 'b cleaned up']",
        "2. abort_all() aborts everything, the set stays usable",
        "   cancelled: ['c', 'd']; cleanups: ['c cleaned up', 'd cleaned up']",
        "   spawned afterwards, ran normally: e",
        "3. handle.abort() aborts one task",
        "   g: returned 'g'",
        "   f: aborted",
        "   cleanups: ['f cleaned up']",
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_errors(backend: str) -> None:
    """errors.py: failed and cancelled told apart, the others unaffected."""
    lines = run_example("errors.py", backend)
    assert lines == ["a: ok: A", "b: ok: B", "broken: failed: ConnectionError", "slow: cancelled"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_shutdown_signal_by_timer(backend: str) -> None:
    """shutdown_signal.py: every worker is accounted for after the stop signal."""
    lines = run_example("shutdown_signal.py", backend, "--workers", "6", "--stop-after", "0.1")
    match = re.fullmatch(
        r"shutdown complete: (\d+) finished, (\d+) aborted, (\d+) units of work done", lines[-1]
    )
    assert match is not None
    assert int(match[1]) + int(match[2]) == 6
    assert int(match[3]) > 0


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_shutdown_signal_by_ctrl_c(backend: str) -> None:
    """shutdown_signal.py: SIGINT (Ctrl-C) shuts the workers down cleanly."""
    with subprocess.Popen(  # noqa: S603
        [sys.executable, str(EXAMPLES / "shutdown_signal.py"), "--backend", backend],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "5 workers running"
        proc.send_signal(signal.SIGINT)
        rest = proc.stdout.read().splitlines()
        assert proc.wait(timeout=60) == 0
    assert rest[0] == "received SIGINT, shutting down"
    assert rest[-1].startswith("shutdown complete: ")


@pytest.mark.parametrize("backend", BACKENDS)
def test_with_context(backend: str) -> None:
    """with_context.py: results put back in input order through outcome ids.

    The lines come in completion order, which sleeps a few ms apart do not fix
    (Trio starts a batch of tasks in any order; a busy machine stalls any of
    them): the test checks each line, not their order.
    """
    lines = run_example("with_context.py", backend)
    assert sorted(lines[:-1]) == [
        "'alpha' (input #0) -> 5",
        "'beta' (input #1) -> 4",
        "'delta' (input #3) -> 5",
        "'epsilon' (input #4) -> 7",
        "'gamma' (input #2) -> 5",
    ]
    assert lines[-1] == "by input order: [5, 4, 5, 5, 7]"


@pytest.mark.parametrize("backend", BACKENDS)
def test_join_all_vs_joinset(backend: str) -> None:
    """join_all_vs_joinset.py: the four differences, each shown live.

    The first is measured in milliseconds: shown, not compared, as a busy machine
    can stall either run.
    """
    lines = run_example("join_all_vs_joinset.py", backend)
    assert re.fullmatch(
        r"1\. first result usable after \d+ ms with gather-style joining, "
        r"after \d+ ms as completed \((NOT )?sooner\)",
        lines[0],
    )
    assert lines[1] == "2. tasks spawned while joining: [1, 2, 3, 4]"
    assert lines[2] == "3. first answer: 7; slow task cleaned up at block exit"
    assert lines[3] == (
        "4. one task cancelled, the other untouched: {'drop': 'cancelled', 'keep': 'finished'}"
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_crawl(backend: str) -> None:
    """crawl.py: the whole local site crawled over real HTTP, failures counted."""
    lines = run_example("crawl.py", backend, "--pages", "60", "--max-latency", "0.005")
    assert lines[-1] == "result: 57 fetched, 9 failed, 66 spawned"
    text = "\n".join(lines)
    assert "crawl complete" in text
    assert re.search(r"HTTP 500\s*│\s*3 │", text)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_crawl_ctrl_c(backend: str) -> None:
    """crawl.py: Ctrl-C aborts the fetches still running and prints the summary."""
    args = ["--pages", "100000", "--max-latency", "0.05", "--concurrency", "8"]
    with subprocess.Popen(  # noqa: S603
        [sys.executable, str(EXAMPLES / "crawl.py"), "--backend", backend, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        # Printed once Ctrl-C is the crawl's to handle: a fixed wait could send it
        # before then on a busy machine (a KeyboardInterrupt traceback instead).
        first = proc.stdout.readline()
        assert first.startswith("crawling http://127.0.0.1:"), first
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.splitlines()[-1].endswith("(interrupted)")
    assert "crawl interrupted (Ctrl-C)" in out


@pytest.mark.parametrize("backend", BACKENDS)
def test_keyed(backend: str) -> None:
    """keyed.py: a replaced key never shows up; shutdown(grace) aborts the straggler."""
    lines = run_example("keyed.py", backend)
    assert lines[0] == "refreshing ['archive', 'orders', 'stock', 'users']"
    # In completion order: sleeps 10 ms apart can finish in any order on a busy machine.
    assert sorted(lines[1:4]) == [
        "orders refreshed after 20 ms",
        "stock refreshed after 30 ms",
        "users refreshed after 10 ms",
    ]
    assert lines[4:] == [
        "spawned 5, joined 5, cancelled 2 (the replaced task and the one aborted at shutdown)",
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_offload(backend: str) -> None:
    """offload.py: threads, a process and executor futures in one set."""
    lines = sorted(run_example("offload.py", backend))
    assert lines == [
        "adopted future: sum(range(10)) = 45 in an executor",
        "blocking_io: aborted",
        "blocking_io: slept 0.05s in a thread",
        "cpu_work: hashed 20000 rounds in a process: 21effe9e",
        "executor_work: sum(range(1000)) = 499500 in an executor",
    ]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_offload_on_a_dask_cluster(backend: str) -> None:
    """offload.py --dask: the same code against a real local Dask cluster."""
    pytest.importorskip("distributed")
    lines = sorted(run_example("offload.py", backend, "--dask"))
    assert "executor_work: sum(range(1000)) = 499500 in an executor" in lines
    assert len(lines) == 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_demo(backend: str) -> None:
    """server.py --demo: a few hundred connections served, then a graceful shutdown (S24, S21)."""
    lines = run_example("server.py", backend, "--demo")
    assert re.fullmatch(r"listening on 127\.0\.0\.1:\d+", lines[0])
    assert lines[1:] == [
        "300 clients served: 900 answers",
        "5 clients still talking: shutting down",
        "5 clients finished during the grace period: 10 answers",
        "shutdown complete: 305 connections, 910 lines answered, 0 aborted",
    ]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_server_ctrl_c(backend: str) -> None:
    """server.py: on Ctrl-C a connection still open is aborted once the grace period is over."""
    with subprocess.Popen(  # noqa: S603
        [sys.executable, str(EXAMPLES / "server.py"), "--backend", backend, "--grace", "0.1"],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        match = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)", proc.stdout.readline().strip())
        assert match is not None
        with socket.create_connection(("127.0.0.1", int(match[1])), timeout=30) as client:
            client.sendall(b"still here\n")
            assert client.makefile("rb").readline() == b"STILL HERE\n"
            proc.send_signal(signal.SIGINT)  # the connection stays open: aborted after 0.1 s
            rest = proc.stdout.read().splitlines()
            assert proc.wait(timeout=60) == 0
    assert rest == [
        "received SIGINT, shutting down",
        "shutdown complete: 1 connections, 1 lines answered, 1 aborted",
    ]


def stuck_line(marker: str) -> int:
    """The line of examples/stuck.py that carries ``marker``."""
    lines = (EXAMPLES / "stuck.py").read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stuck(backend: str) -> None:
    """stuck.py: the dump names each stuck task's function and line, grouped (S28, S29)."""
    text = "\n".join(run_example("stuck.py", backend, "--timeout", "0.3"))
    stuck = EXAMPLES / "stuck.py"
    other, lock = stuck_line("await theirs.wait()"), stuck_line("async with lock:")
    assert re.search(
        r"^JoinSet #1 \[[\w+]+\] open, len=3, limit=None, 3 task\(s\)", text, re.MULTILINE
    )
    assert re.search(r"^  join_next waiting for \d+\.\d s$", text, re.MULTILINE)
    assert re.search(
        r"^  2 tasks \(ids 1-2\) running, the oldest spawned .* at hand_over -> ",
        text,
        re.MULTILINE,
    )
    assert f"      hand_over ({stuck}:{other})" in text
    assert "      waits on 2 different anyio.Event" in text
    assert re.search(
        r"^  task 3 'update_cache' running, spawned .* at update_cache -> ", text, re.MULTILINE
    )
    assert f"      update_cache ({stuck}:{lock})" in text


def test_stuck_json() -> None:
    """stuck.py --json: the same dump for tools (S29)."""
    data = json.loads("\n".join(run_example("stuck.py", "asyncio", "--timeout", "0.3", "--json")))
    (stuck,) = data["sets"]
    assert [task["name"] for task in stuck["tasks"]] == ["ping", "pong", "update_cache"]
    assert {task["stack"][0]["line"] for task in stuck["tasks"]} == {
        stuck_line("await theirs.wait()"),
        stuck_line("async with lock:"),
    }
    assert [waiter["kind"] for waiter in stuck["waiters"]] == ["join_next"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_stuck_dump_on_sigusr1() -> None:
    """stuck.py: kill -USR1 prints the dump while the set hangs (S29)."""
    with subprocess.Popen(  # noqa: S603
        [sys.executable, str(EXAMPLES / "stuck.py"), "--timeout", "60"],
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        hint = proc.stderr.readline()
        assert hint == f"stuck on purpose; for the dump now: kill -USR1 {proc.pid}\n"
        proc.send_signal(signal.SIGUSR1)
        lines = [proc.stderr.readline() for _ in range(3)]
        proc.kill()
    assert lines[0].startswith("JoinSet #1 [asyncio] open, len=3, limit=None, 3 task(s)")


def howto_dump() -> list[str]:
    """The dump shown in docs/howto/debugging.md, between its markers."""
    page = (EXAMPLES.parent / "docs" / "howto" / "debugging.md").read_text(encoding="utf-8")
    block = page.split("<!-- dump -->\n```text\n", 1)[1].split("```", 1)[0]
    return block.splitlines()


def normalized(line: str) -> str:
    line = re.sub(r"\(\S*/(\w+\.py):\d+\)", r"(\1:N)", line)
    line = re.sub(r"0x[0-9a-f]+", "0x...", line)
    return re.sub(r"\d+\.\d s", "N s", line)


def test_the_howto_shows_the_real_dump() -> None:
    """docs/howto/debugging.md: its dump is what stuck.py prints (lines of stuck.py exact)."""
    real = "\n".join(run_example("stuck.py", "asyncio", "--timeout", "0.3"))
    shown = howto_dump()
    stuck = str(EXAMPLES / "stuck.py")
    for line in shown:
        if "stuck.py:" in line:
            assert line.replace("examples/stuck.py", stuck) in real, line
    mine = [
        normalized(line) for line in shown if not line.startswith("      ") or "stuck.py" in line
    ]
    real_lines = {normalized(line) for line in real.splitlines()}
    assert set(mine) <= real_lines, set(mine) - real_lines
    page = (EXAMPLES.parent / "docs" / "howto" / "debugging.md").read_text(encoding="utf-8")
    assert f"line {stuck_line('await theirs.wait()')} of `stuck.py`" in page
    assert f"waits at line {stuck_line('async with lock:')}, `async with lock:`" in page


@pytest.mark.parametrize("backend", BACKENDS)
def test_telemetry(backend: str) -> None:
    """telemetry.py: OpenTelemetry spans and Prometheus metrics from the hooks (S31)."""
    pytest.importorskip("opentelemetry.sdk")
    pytest.importorskip("prometheus_client")
    assert run_example("telemetry.py", backend) == [
        "5 task spans, each a child of 'fetch all': True",
        "  span broken: failed",
        "  span fetch-0: succeeded",
        "  span fetch-1: succeeded",
        "  span fetch-2: succeeded",
        "  span slow: cancelled",
        "spawned: 5",
        "finished succeeded: 3",
        "finished failed: 1",
        "finished cancelled: 1",
        "run times observed: 5",
    ]
