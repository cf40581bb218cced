"""A real Dask cluster (distributed.LocalCluster) behind the same JoinSet code."""

from __future__ import annotations

import anyio
import pytest

import offload_work
from anyio_joinset import JoinSet
from offload_work import fail, square

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

pytestmark = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])


@pytest.fixture(scope="module")
def dask_client():  # type: ignore[no-untyped-def]
    """One single-threaded worker, so a second task stays pending behind the first.

    worker-saturation 1.0 keeps that pending task queued on the scheduler (as on
    any busy cluster) instead of prefetched by the worker. The scheduler's HTTP
    server listens on a free loopback port, dashboard off: ``dashboard_address=None``
    still binds 8787, and fails (a warning, an error here) when that port is taken.
    """
    with (
        dask.config.set({"distributed.scheduler.worker-saturation": 1.0}),
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=False,
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


async def test_cluster_results_as_completed(dask_client) -> None:  # type: ignore[no-untyped-def]
    """Tasks submitted to the cluster come back through the set, failures as values."""
    executor = dask_client.get_executor(pure=False)
    async with JoinSet[int]() as js:
        for i in range(4):
            js.spawn_submit(executor, square, i)
        js.spawn_future(executor.submit(fail, "on the cluster"), name="failing")
        outcomes = [o async for o in js]
    assert sorted(o.result() for o in outcomes if o.exception() is None) == [0, 1, 4, 9]
    failed = [o for o in outcomes if o.exception() is not None]
    assert [o.name for o in failed] == ["failing"]
    assert isinstance(failed[0].exception(), ValueError)


async def test_abort_pending_cluster_task(dask_client) -> None:  # type: ignore[no-untyped-def]
    """Aborting a task whose cluster future is still pending cancels it: it never runs."""
    # pure=False: a fresh cluster task per call, never a result cached by key.
    executor = dask_client.get_executor(pure=False)
    for event in (offload_work.STARTED, offload_work.GATE):
        event.clear()
    offload_work.RAN.clear()
    try:
        await _abort_pending(dask_client, executor)
    finally:
        offload_work.GATE.set()  # never leave the worker's thread blocked
    assert offload_work.RAN == []


async def _abort_pending(dask_client, executor) -> None:  # type: ignore[no-untyped-def]
    async with JoinSet[str]() as js:
        js.spawn_submit(executor, offload_work.blocker)
        # The worker's only thread is busy from now on: the next task must wait.
        assert await anyio.to_thread.run_sync(offload_work.STARTED.wait, 30)
        scheduler = dask_client.cluster.scheduler
        workers = list(dask_client.cluster.workers.values())

        def pending_keys() -> set[str]:
            # Where the task may still be: on the scheduler, or already sent to the
            # worker, which runs it once its thread is free unless the
            # cancellation reached it first. Both live in the cluster's own thread.
            while True:
                try:
                    keys = [*scheduler.tasks, *(k for w in workers for k in w.state.tasks)]
                except RuntimeError:  # changed size while we read it: read again
                    continue
                return {str(key) for key in keys if str(key).startswith("must_not_run")}

        earlier = pending_keys()
        pending = js.spawn_future(executor.submit(offload_work.must_not_run), name="pending")
        # Submission and cancellation both travel asynchronously: abort once the
        # cluster holds the new task, release the busy worker once the
        # cancellation has dropped it from the scheduler and the worker alike.
        with anyio.fail_after(10):
            while not pending_keys() - earlier:
                await anyio.sleep(0.01)
        (key,) = pending_keys() - earlier
        pending.abort()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.name == "pending"
        assert outcome.cancelled()
        with anyio.fail_after(10):
            while key in pending_keys():
                await anyio.sleep(0.01)
        offload_work.GATE.set()
        outcome = await js.join_next()
        assert outcome is not None
        assert outcome.result() == "blocker"
