"""The package's own API against a real node: auth, the client calls, and
how task outcomes map to job results."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any, Awaitable, Callable

import pytest

import jobmesh
from conftest import LIMIT, Cluster, run, wait_kind


def test_client_token_is_the_hmac_of_the_label() -> None:
    expected = hmac.new(b"s3cret", b"jobmesh client token v1", hashlib.sha256).hexdigest()
    assert jobmesh.client_token("s3cret") == expected
    assert len(expected) == 64
    with pytest.raises(ValueError):
        jobmesh.Worker("ws://x", secret="a", token="b")


def test_wrong_secret_is_refused(cluster: Cluster) -> None:
    cluster.start(1)
    with pytest.raises(jobmesh.AuthError):
        run(jobmesh.AsyncClient.connect(cluster.url(0), secret="not the secret"))


def test_sync_client_submit_get_cancel_attach(cluster: Cluster) -> None:
    cluster.start(2)
    with jobmesh.Client(cluster.url(0), secret_file=cluster.secret_file) as client:
        assert client.node == "node-a"
        result = client.submit("echo", "hello", id="sync-1")
        assert result.ok and result.value() == "hello" and result.attempt == 1
        again = client.submit("echo", "other data", id="sync-1")
        assert again.value() == "hello", "a known id is not run again"
        many = client.submit_many([{"kind": "echo", "data": f"m{i}"} for i in range(50)])
        assert [r.value() for r in many] == [f"m{i}" for i in range(50)]
        # More than one submit_batch frame (4,096 jobs each), a known id among them.
        bulk = [{"kind": "echo", "data": f"b{i}"} for i in range(5000)] + [{"kind": "echo", "id": "sync-1"}]
        answers = client.submit_many(bulk)
        assert [r.value() for r in answers[:5000]] == [f"b{i}" for i in range(5000)]
        assert answers[5000].value() == "hello", "a known id in a batch is not run again"
        with pytest.raises(jobmesh.RemoteError, match="at least 1"):
            client.submit_many([{"kind": "echo", "data": "fine"}, {"kind": "echo", "max_attempts": 0}])
        records = client.get("sync-1", "no-such-job")
        assert records["unknown"] == ["no-such-job"]
        assert records["records"][0]["state"] == "succeeded"
        assert client.cancel("sync-1")["final"] == ["sync-1"]
        assert client.attach("sync-1").value() == "hello"
        with pytest.raises(jobmesh.UnknownJob):
            client.attach("no-such-job")
        failed = client.submit("nope-kind", "x")
        assert not failed.ok and failed.error is not None
        with pytest.raises(jobmesh.JobFailed):
            failed.value()
        with pytest.raises(jobmesh.RemoteError):
            client.submit("echo", "x", max_attempts=0)
    # A job submitted on node-a is attachable through node-b (its owner).
    with jobmesh.Client(cluster.url(1), secret_file=cluster.secret_file) as other:
        assert other.attach("sync-1").value() == "hello"


async def _with_worker(
    cluster: Cluster,
    setup: Callable[[jobmesh.Worker], None],
    kinds: list,
    body: Callable[[jobmesh.AsyncClient, jobmesh.Worker], Awaitable[None]],
) -> None:
    app = jobmesh.Worker(cluster.url(0), secret_file=cluster.secret_file)
    setup(app)
    serving = asyncio.ensure_future(app.run_async())
    await app.wait_registered(LIMIT)
    client = await cluster.client(0)
    for kind in kinds:
        await wait_kind(client, kind, "node-a")
    try:
        await body(client, app)
    finally:
        await client.close()
        app.stop()
        await serving


def test_task_outcomes_map_to_results(cluster: Cluster) -> None:
    cluster.start(1)

    def setup(app: jobmesh.Worker) -> None:
        @app.task("py-flaky")
        async def flaky(data: Any, ctx: jobmesh.TaskContext) -> str:
            if ctx.attempt == 1:
                raise jobmesh.Retry("first attempt always fails")
            return f"ok on attempt {ctx.attempt}"

        @app.task("py-bad")
        async def bad(data: Any, ctx: jobmesh.TaskContext) -> str:
            raise jobmesh.BadData("not an image")

        @app.task("py-broken")
        async def broken(data: Any, ctx: jobmesh.TaskContext) -> str:
            raise KeyError("w")

        @app.task("py-json")
        async def as_json(data: Any, ctx: jobmesh.TaskContext) -> Any:
            return {"w": data["w"] * 2, "kind": ctx.kind}

        @app.task("py-raw", raw=True)
        async def raw(data: str, ctx: jobmesh.TaskContext) -> str:
            return type(data).__name__ + ":" + data

        @app.task("py-sync", concurrency=2)
        def blocking(data: Any, ctx: jobmesh.TaskContext) -> str:
            ctx.progress(0.5, "half")
            time.sleep(0.05)
            return "slept"

        @app.task("py-slow")
        async def slow(data: Any, ctx: jobmesh.TaskContext) -> str:
            await asyncio.sleep(30)
            return "late"

    async def body(client: jobmesh.AsyncClient, app: jobmesh.Worker) -> None:
        flaky = await client.submit("py-flaky", "x")
        assert (flaky.value(), flaky.attempt) == ("ok on attempt 2", 2)
        bad = await client.submit("py-bad", "x")
        assert bad.error is not None and (bad.error.cause, bad.error.retryable) == ("bad_data", False)
        assert bad.attempt == 1
        broken = await client.submit("py-broken", "x")
        assert broken.error is not None and broken.error.cause == "handler"
        assert not broken.error.retryable and "KeyError" in broken.error.message
        doubled = await client.submit("py-json", {"w": 21})
        assert doubled.value() == '{"w":42,"kind":"py-json"}'
        assert (await client.submit("py-raw", '{"w":1}')).value() == 'str:{"w":1}'
        seen = []
        sync = await client.submit("py-sync", "", on_progress=seen.append)
        assert sync.value() == "slept"
        assert seen and seen[0].fraction == 0.5 and seen[0].note == "half"
        slow = await client.submit("py-slow", "", timeout=0.3, max_attempts=1)
        assert slow.error is not None and slow.error.cause == "timeout"
        # The timed-out task was told to stop (cancelled on the worker).
        deadline = time.monotonic() + LIMIT
        while app.stats.cancelled < 1:
            assert time.monotonic() < deadline, "the timed-out task was never cancelled"
            await asyncio.sleep(0.02)

    kinds = ["py-flaky", "py-bad", "py-broken", "py-json", "py-raw", "py-sync", "py-slow"]
    run(_with_worker(cluster, setup, kinds, body))


def test_worker_tags_route_tagged_jobs(cluster: Cluster) -> None:
    cluster.start(1)

    def setup(app: jobmesh.Worker) -> None:
        @app.task("py-tagged", tags=["gpu"])
        async def tagged(data: Any, ctx: jobmesh.TaskContext) -> str:
            return ",".join(ctx.tags)

    async def body(client: jobmesh.AsyncClient, app: jobmesh.Worker) -> None:
        members = await client.members()
        assert "gpu" in members[0]["tags"]
        result = await client.submit("py-tagged", "", tags=["gpu"])
        assert result.value() == "gpu"
        nowhere = await client.submit("py-tagged", "", tags=["tpu"])
        assert nowhere.error is not None and nowhere.error.cause == "no_eligible_node"

    run(_with_worker(cluster, setup, ["py-tagged"], body))


def test_registration_errors_are_reported(cluster: Cluster) -> None:
    cluster.start(1)

    async def main() -> None:
        app = jobmesh.Worker(cluster.url(0), secret_file=cluster.secret_file)

        @app.task("echo")
        async def steal(data: Any, ctx: jobmesh.TaskContext) -> str:
            return "stolen"

        with pytest.raises(jobmesh.RemoteError, match="served by node-a's own handlers"):
            await app.run_async()
        with pytest.raises(ValueError):
            app.task("x", concurrency=0)

    run(main())


def test_graceful_stop_unadvertises_and_finishes_running_jobs(cluster: Cluster) -> None:
    cluster.start(1)

    async def main() -> None:
        app = jobmesh.Worker(cluster.url(0), secret_file=cluster.secret_file)
        release = asyncio.Event()
        started = asyncio.Event()

        @app.task("py-gentle")
        async def gentle(data: Any, ctx: jobmesh.TaskContext) -> str:
            started.set()
            await release.wait()
            return "finished"

        serving = asyncio.ensure_future(app.run_async())
        await app.wait_registered(LIMIT)
        client = await cluster.client(0)
        await wait_kind(client, "py-gentle", "node-a")
        handle = await client.submit_nowait("py-gentle", "")
        await asyncio.wait_for(started.wait(), LIMIT)
        app.stop()
        await wait_kind(client, "py-gentle", "node-a", present=False)
        release.set()
        assert (await handle.result(LIMIT)).value() == "finished"
        await asyncio.wait_for(serving, LIMIT)
        await client.close()

    run(main())


def test_priority_and_delay_reach_the_coordinator(cluster: Cluster) -> None:
    cluster.start(1)
    with jobmesh.Client(cluster.url(0), secret_file=cluster.secret_file) as client:
        before = time.time()
        result = client.submit("echo", "later", id="delayed-1", delay=1.0, priority=5)
        assert result.value() == "later"
        # The job did not start before its delay (a lower bound only).
        assert time.time() - before >= 1.0
        record = client.get("delayed-1")["records"][0]
        assert record["started_ms"] - record["submitted_ms"] >= 900, record
        # The fields are sent as the job's: out of range is refused.
        with pytest.raises(jobmesh.RemoteError):
            client.submit("echo", "x", priority=2**31)
        with pytest.raises(jobmesh.RemoteError):
            client.submit("echo", "x", delay=400 * 24 * 3600.0)


def test_raw_payload_helpers() -> None:
    from jobmesh._conn import envelope_payload, with_raw_payloads

    assert with_raw_payloads("ws://127.0.0.1:7700") == "ws://127.0.0.1:7700/?payloads=raw"
    assert with_raw_payloads("wss://h:1/edge?x=1") == "wss://h:1/edge?x=1&payloads=raw"
    # Raw: a payload without a format is the value; text stays text.
    assert envelope_payload({"payload": {"a": 1}}, raw=True) == {"a": 1}
    assert envelope_payload({"payload": "a reason"}, raw=True) == "a reason"
    assert envelope_payload({"payload": "NaN", "format": "text"}, raw=True) == "NaN"
    assert envelope_payload({"payload": "[1, NaN]", "format": "text"}, raw=True) == "[1, NaN]"
    # JSON nested too deep to go raw comes as text and is still decoded.
    deep = "[" * 150 + "]" * 150
    assert envelope_payload({"payload": deep, "format": "text"}, raw=True) == json.loads(deep)
    assert envelope_payload({"payload": "[1]", "format": "binary"}, raw=True) == [1]
    # Strings: the text, decoded when it is JSON.
    assert envelope_payload({"payload": '{"a":1}'}, raw=False) == {"a": 1}
    assert envelope_payload({"payload": "plain"}, raw=False) == "plain"


def test_sessions_get_raw_payloads_unless_they_opt_out(cluster: Cluster) -> None:
    from jobmesh._conn import Session

    cluster.start(1)
    token = jobmesh.client_token(cluster.secret_file.read_text().strip())

    async def answers(session: Session) -> Any:
        queue = await session.send(f"coordinator@{session.node}", {"cmd": "submit_batch", "jobs": jobs})
        try:
            seen: list[Any] = []
            count = 0
            while count < len(jobs):
                env = await asyncio.wait_for(queue.get(), LIMIT)
                seen.append(env["payload"])
                count += len(session.payload(env)["results"])
            return seen
        finally:
            session.forget(queue)

    jobs = [{"id": f"py-raw-{i}", "kind": "echo", "data": f'{i} "q" \\ é'} for i in range(2000)]

    async def main() -> None:
        raw = await Session.open(cluster.url(0), token)
        plain = await Session.open(cluster.url(0), token, raw_payloads=False)
        try:
            assert raw.raw and not plain.raw
            raw_seen = await answers(raw)
            plain_seen = await answers(plain)
            assert all(isinstance(p, dict) for p in raw_seen)
            assert all(isinstance(p, str) for p in plain_seen)
            by_id = {r["id"]: r["result"] for p in raw_seen for r in p["results"]}
            assert by_id == {j["id"]: j["data"] for j in jobs}
            # The same jobs again: known ids, the same results, as strings.
            again = {r["id"]: r["result"] for p in plain_seen for r in json.loads(p)["results"]}
            assert again == by_id
            # The package's API reads both forms alike.
            assert (await raw.request(f"system@{raw.node}", {"cmd": "ping"}, LIMIT)) == {"pong": raw.node}
            assert (await plain.request(f"system@{plain.node}", {"cmd": "ping"}, LIMIT)) == {"pong": plain.node}
        finally:
            await raw.close()
            await plain.close()

    run(main())
