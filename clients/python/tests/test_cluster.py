"""External Python workers in a cluster of real job-node processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Dict, List

import jobmesh
from conftest import LIMIT, Cluster, run, stray_answers, wait_kind


def test_worker_on_one_node_serves_jobs_submitted_through_another(cluster: Cluster) -> None:
    cluster.start(2)

    async def main() -> None:
        app = jobmesh.Worker(cluster.url(0), secret_file=cluster.secret_file)

        @app.task("py-upper", concurrency=8)
        async def upper(data: str, ctx: jobmesh.TaskContext) -> str:
            return data.upper()

        serving = asyncio.ensure_future(app.run_async())
        await app.wait_registered(LIMIT)
        client = await cluster.client(1)
        await wait_kind(client, "py-upper", "node-a")
        # Bulk: tens of thousands, more than the node's client window.
        jobs = 20_000
        handles = [await client.submit_nowait("py-upper", f"job {i}") for i in range(jobs)]
        results = [await h.result(LIMIT) for h in handles]
        assert [r.value() for r in results] == [f"JOB {i}" for i in range(jobs)]
        assert {r.worker_node for r in results} == {"node-a"}
        # Built-in kinds run beside it.
        echo = await client.submit("echo", "plain")
        assert echo.value() == "plain"
        assert stray_answers(client) == 0
        await client.close()
        app.stop()
        await serving

    run(main())


def test_worker_killed_mid_job_is_retried_elsewhere_without_loss_or_duplicates(cluster: Cluster) -> None:
    cluster.start(2)
    first = cluster.worker_process(0, "py-slow", "4", "1.0")
    second = cluster.worker_process(1, "py-slow", "4", "0.05")
    jobs = 40

    async def main() -> None:
        client = await cluster.client(1)
        await wait_kind(client, "py-slow", "node-a")
        await wait_kind(client, "py-slow", "node-b")
        started_on_first = asyncio.Event()

        def on_progress(p: jobmesh.Progress) -> None:
            if p.note == str(first.pid):
                started_on_first.set()

        handles = [
            await client.submit_nowait("py-slow", {"n": i}, on_progress=on_progress, max_attempts=5)
            for i in range(jobs)
        ]
        await asyncio.wait_for(started_on_first.wait(), LIMIT)
        os.kill(first.pid, signal.SIGKILL)
        results = [await h.result(LIMIT) for h in handles]
        outputs = [json.loads(r.value()) for r in results]
        assert [o["data"] for o in outputs] == [{"n": i} for i in range(jobs)], "every job, once, in order"
        retried = [r for r in results if r.attempt > 1]
        assert retried, "the jobs running on the killed worker ran again"
        assert all(o["pid"] == second.pid for r, o in zip(results, outputs) if r.attempt > 1)
        records = await client.get(*[h.id for h in handles])
        assert not records["unknown"]
        assert {rec["state"] for rec in records["records"]} == {"succeeded"}
        failed_attempts = [a for rec in records["records"] for a in rec["attempts"] if a.get("cause")]
        causes = {a["cause"] for a in failed_attempts}
        # node_down: running on the killed worker; refused: queued for it on
        # node-a when it left (re-placed without counting an attempt).
        assert "node_down" in causes and causes <= {"node_down", "refused"}, failed_attempts
        assert stray_answers(client) == 0, "no job answered twice"
        await client.close()

    run(main())


def test_slow_worker_never_gets_more_than_its_concurrency(cluster: Cluster) -> None:
    cluster.start(2)

    async def main() -> None:
        app = jobmesh.Worker(cluster.url(0), secret_file=cluster.secret_file)
        running = 0
        most = 0

        @app.task("py-sleepy", concurrency=3)
        async def sleepy(data: int, ctx: jobmesh.TaskContext) -> int:
            nonlocal running, most
            running += 1
            most = max(most, running)
            try:
                await asyncio.sleep(0.05)
                return data
            finally:
                running -= 1

        serving = asyncio.ensure_future(app.run_async())
        await app.wait_registered(LIMIT)
        client = await cluster.client(1)
        await wait_kind(client, "py-sleepy", "node-a")
        handles = [await client.submit_nowait("py-sleepy", i) for i in range(60)]
        results = [await h.result(LIMIT) for h in handles]
        assert [int(r.value()) for r in results] == list(range(60))
        assert most == 3, f"at most (and here exactly) 3 at once, saw {most}"
        assert app.stats.max_running == 3
        await client.close()
        app.stop()
        await serving

    run(main())


def test_cancellation_reaches_a_running_task(cluster: Cluster) -> None:
    cluster.start(2)

    async def main() -> None:
        app = jobmesh.Worker(cluster.url(0), secret_file=cluster.secret_file)
        saw_cancel = asyncio.Event()

        @app.task("py-forever", concurrency=2)
        async def forever(data: str, ctx: jobmesh.TaskContext) -> str:
            ctx.progress(0.1, "started")
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                assert ctx.cancelled
                saw_cancel.set()
                raise
            return "never"

        serving = asyncio.ensure_future(app.run_async())
        await app.wait_registered(LIMIT)
        client = await cluster.client(1)
        await wait_kind(client, "py-forever", "node-a")
        started = asyncio.Event()
        handle = await client.submit_nowait("py-forever", "x", on_progress=lambda p: started.set())
        await asyncio.wait_for(started.wait(), LIMIT)
        report = await client.cancel(handle.id)
        assert report["cancelled"] == [handle.id]
        result = await handle.result(LIMIT)
        assert result.error is not None and result.error.cause == "cancelled"
        await asyncio.wait_for(saw_cancel.wait(), LIMIT)
        assert app.stats.cancelled == 1
        await client.close()
        app.stop()
        await serving

    run(main())


def test_stalled_worker_is_dropped_and_its_jobs_retried(cluster: Cluster) -> None:
    cluster.start(1)
    stalled = cluster.worker_process(0, "py-stall", "2", "0.5")
    healthy_started = False

    async def main() -> None:
        nonlocal healthy_started
        client = await cluster.client(0)
        await wait_kind(client, "py-stall", "node-a")
        started = asyncio.Event()

        def on_progress(p: jobmesh.Progress) -> None:
            if p.note == str(stalled.pid):
                started.set()

        handles = [await client.submit_nowait("py-stall", i, on_progress=on_progress) for i in range(2)]
        await asyncio.wait_for(started.wait(), LIMIT)
        # Frozen: its socket stays open, but it sends nothing any more.
        os.kill(stalled.pid, signal.SIGSTOP)
        try:
            healthy = cluster.worker_process(0, "py-stall", "2", "0.01")
            healthy_started = True
            results = [await h.result(LIMIT) for h in handles]
            assert all(json.loads(r.value())["pid"] == healthy.pid for r in results)
            records = await client.get(*[h.id for h in handles])
            causes = [a.get("cause") for rec in records["records"] for a in rec["attempts"]]
            assert "node_down" in causes, causes
            stalled_msgs = [a for rec in records["records"] for a in rec["attempts"]
                            if a.get("cause") == "node_down"]
            assert stalled_msgs
        finally:
            os.kill(stalled.pid, signal.SIGCONT)
        assert stray_answers(client) == 0
        await client.close()

    run(main())
    assert healthy_started
