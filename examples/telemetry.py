"""
What it shows: instrumentation hooks (`anyio_joinset.Instrument`) feeding
OpenTelemetry, a span per task with the set's span as its parent, and
Prometheus, counters of tasks spawned and finished (by how they ended) and a
histogram of their run times. It records into the SDKs' own in-memory span
exporter and a private CollectorRegistry, and prints what they hold.

Needs: pip install "anyio-joinset[telemetry]" (opentelemetry-sdk, prometheus-client)
Run it:
  python examples/telemetry.py --backend asyncio
  python examples/telemetry.py --backend trio
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, Status, StatusCode, Tracer
from prometheus_client import CollectorRegistry, Counter, Histogram

from anyio_joinset import Instrument, JoinHandle, JoinSet
from anyio_joinset.backends import BACKENDS, run


class Telemetry(Instrument):
    """A span per task under ``parent``; Prometheus metrics in ``registry``."""

    def __init__(self, tracer: Tracer, parent: Span, registry: CollectorRegistry) -> None:
        self.tracer = tracer
        self.parent = trace.set_span_in_context(parent)
        self.spans: dict[JoinHandle[Any], Span] = {}
        self.spawned = Counter("joinset_tasks_spawned", "Tasks spawned", registry=registry)
        self.finished = Counter(
            "joinset_tasks_finished", "Tasks finished, by how", ["kind"], registry=registry
        )
        self.run_time = Histogram(
            "joinset_task_run_seconds", "Run time of a task", registry=registry
        )

    def task_spawned(self, joinset: Any, handle: JoinHandle[Any]) -> None:  # noqa: ARG002
        self.spawned.inc()

    def task_started(self, joinset: Any, handle: JoinHandle[Any]) -> None:  # noqa: ARG002
        self.spans[handle] = self.tracer.start_span(
            handle.name, context=self.parent, attributes={"joinset.task.id": handle.id}
        )

    def task_finished(
        self,
        joinset: Any,  # noqa: ARG002
        handle: JoinHandle[Any],
        kind: str,
        run_time: float,
    ) -> None:
        self.finished.labels(kind).inc()
        self.run_time.observe(run_time)
        span = self.spans.pop(handle, None)
        if span is None:  # aborted before it started: a span of no length
            span = self.tracer.start_span(handle.name, context=self.parent)
        span.set_attribute("joinset.outcome", kind)
        if kind != "succeeded":
            span.set_status(Status(StatusCode.ERROR, kind))
        span.end()


async def work(seconds: float, fail: bool = False) -> float:
    await anyio.sleep(seconds)
    if fail:
        raise ConnectionError
    return seconds


async def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("anyio_joinset.example")
    registry = CollectorRegistry()

    with tracer.start_as_current_span("fetch all") as parent:
        async with JoinSet[float]() as js:
            js.add_instrument(Telemetry(tracer, parent, registry))
            for i in range(3):
                js.spawn(work, 0.01 * i, name=f"fetch-{i}")
            js.spawn(work, 0, True, name="broken")
            slow = js.spawn(work, 3600, name="slow")
            async for outcome in js:
                if outcome.name == "fetch-2":
                    slow.abort()

    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.name == "fetch all")
    tasks = sorted((s for s in spans if s is not root), key=lambda s: s.name)
    print(f"{len(tasks)} task spans, each a child of {root.name!r}: ", end="")
    assert root.context is not None  # a finished span has its context
    print(all(s.parent is not None and s.parent.span_id == root.context.span_id for s in tasks))
    for span in tasks:
        assert span.attributes is not None  # every task span has its outcome attribute
        kind = span.attributes["joinset.outcome"]
        assert isinstance(kind, str)
        print(f"  span {span.name}: {kind}")
    sample = registry.get_sample_value
    print(f"spawned: {sample('joinset_tasks_spawned_total'):.0f}")
    for kind in ("succeeded", "failed", "cancelled"):
        print(f"finished {kind}: {sample('joinset_tasks_finished_total', {'kind': kind}):.0f}")
    print(f"run times observed: {sample('joinset_task_run_seconds_count'):.0f}")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_argument("--backend", choices=list(BACKENDS), default="asyncio", help="event loop")
    run(main, backend=cli.parse_args().backend)
