"""What a Python worker costs: jobs/s and one-in-flight latency through an
external Python worker, next to the built-in ``echo`` kind, in the same run,
end to end (one ``job-node`` process, a Python worker process, a Python
client process submitting).

    cargo build --release -p job-node
    python clients/python/bench/bench_worker.py --bin target/release/job-node

Both kinds are submitted by the same Python client, so the client's own cost
is in both figures; the difference is the external worker's round trip
(node -> worker process -> node) and the worker's Python.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import jobmesh

REPO = Path(__file__).resolve().parents[3]

WORKER = r"""
import sys, jobmesh
app = jobmesh.Worker(sys.argv[1], secret_file=sys.argv[2])
@app.task("py-noop", concurrency=int(sys.argv[3]), raw=True)
async def noop(data, ctx):
    return data
app.run()
"""


def start_node(binary: str, secret: Path, workers: int) -> "tuple[subprocess.Popen[bytes], str]":
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBMESH_")}
    env.setdefault("RUST_LOG", "warn")
    proc = subprocess.Popen(
        [binary, "start", "--name", "bench-a", "--listen", "127.0.0.1:0", "--supervised",
         "--secret-file", str(secret), "--workers", str(workers)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            report = json.loads(line)
        except ValueError:
            continue
        if report.get("event") == "ready":
            return proc, report["url"]
    raise SystemExit("job-node exited before it was ready")


async def throughput(client: jobmesh.AsyncClient, kind: str, jobs: int, window: int) -> float:
    semaphore = asyncio.Semaphore(window)

    async def one(i: int) -> None:
        async with semaphore:
            handle = await client.submit_nowait(kind, "x", id=f"{kind}-t-{i}-{time.monotonic_ns()}")
            (await handle.result()).value()

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(jobs)))
    return jobs / (time.perf_counter() - start)


async def latency(client: jobmesh.AsyncClient, kind: str, jobs: int) -> List[float]:
    samples = []
    for i in range(jobs):
        start = time.perf_counter()
        (await client.submit(kind, "x", id=f"{kind}-l-{i}-{time.monotonic_ns()}")).value()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def pct(samples: List[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100.0 * len(ordered)))]


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="jobmesh-bench-"))
    secret = tmp / "secret"
    secret.write_text("bench-secret")
    node, url = start_node(args.bin, secret, args.node_workers)
    worker = subprocess.Popen([sys.executable, "-c", WORKER, url, str(secret), str(args.concurrency)])
    try:
        client = await jobmesh.AsyncClient.connect(url, secret_file=secret)
        deadline = time.monotonic() + 30
        while not any("kind:py-noop" in m["tags"] for m in await client.members()):
            if time.monotonic() > deadline:
                raise SystemExit("the Python worker never registered")
            await asyncio.sleep(0.05)
        print(f"# {args.jobs} jobs per kind (window {args.window}), then {args.latency_jobs} "
              f"one in flight; node --workers {args.node_workers}, Python worker concurrency "
              f"{args.concurrency}; end to end, one machine")
        print(f"{'kind':<24} {'jobs/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
        for label, kind in (("echo (built-in, Rust)", "echo"), ("py-noop (Python worker)", "py-noop")):
            await throughput(client, kind, min(1000, args.jobs), args.window)  # warm up
            rates = [await throughput(client, kind, args.jobs, args.window) for _ in range(args.runs)]
            samples = await latency(client, kind, args.latency_jobs)
            print(f"{label:<24} {statistics.median(rates):>10.0f} {pct(samples, 50):>8.2f} "
                  f"{pct(samples, 99):>8.2f}   (runs: {', '.join(f'{r:.0f}' for r in rates)})")
        await client.close()
    finally:
        worker.terminate()
        worker.wait(30)
        node.kill()
        node.wait(30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.environ.get("JOBMESH_NODE_BIN")
                        or str(REPO / "target" / "release" / "job-node"))
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--latency-jobs", type=int, default=2000)
    parser.add_argument("--window", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--node-workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
