"""The README's mixed-cluster example, run as written: built-in kinds and
the Python `resize` worker in one cluster, submitted from the CLI and from
Python."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import BIN, LIMIT, Cluster, run, wait_kind

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_mixed_cluster_example(cluster: Cluster) -> None:
    cluster.start(2)
    log = open(cluster.tmp / "resize-worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "resize_worker.py"), cluster.url(1), "--secret-file",
         str(cluster.secret_file)], stdout=log, stderr=subprocess.STDOUT)
    cluster.workers.append(worker)

    async def ready() -> None:
        client = await cluster.client(0)
        await wait_kind(client, "resize", "node-b")
        await client.close()

    run(ready())
    cli = subprocess.run(
        [BIN, "submit", "--cluster", cluster.url(0), "--secret-file", str(cluster.secret_file),
         "--kind", "resize", "--data", '{"w":1920,"h":1080,"box":256}', "--wait"],
        capture_output=True, timeout=LIMIT, check=True)
    line = json.loads(cli.stdout.decode().strip().splitlines()[-1])
    assert json.loads(line["result"]) == {"w": 256, "h": 144, "worker_attempt": 1}, line
    assert line["worker_node"] == "node-b"
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "submit_mixed.py"), cluster.url(0), "--secret-file",
         str(cluster.secret_file)], capture_output=True, timeout=LIMIT, check=True).stdout.decode()
    lines = out.strip().splitlines()
    assert lines[0].startswith("echo ") and lines[0].endswith(": hello from Python"), out
    assert lines[1].startswith("sha256 "), out
    assert lines[2] == 'resize  on node-b: {"w":256,"h":144,"worker_attempt":1}', out
    assert lines[3] == 'resize  on node-b: {"w":33,"h":100,"worker_attempt":1}', out
