"""Real `job-node` processes for the tests.

The binary is ``$JOBMESH_NODE_BIN`` or ``<repo>/target/debug/job-node``
(build it with ``cargo build -p job-node``). Every node listens on
127.0.0.1 port 0 and prints its ready line, from which the tests learn its
URL; every node is killed when its test ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Iterator, List, Optional, TypeVar

import pytest

import jobmesh

REPO = Path(__file__).resolve().parents[3]
BIN = os.environ.get("JOBMESH_NODE_BIN") or str(REPO / "target" / "debug" / "job-node")
HERE = Path(__file__).resolve().parent
#: Bound of every wait in the tests (generous: a loaded 2-core machine).
LIMIT = 60.0

T = TypeVar("T")


def run(coro: Awaitable[T], limit: float = 2 * LIMIT) -> T:
    """Runs ``coro`` to completion within ``limit`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, limit))  # type: ignore[arg-type]


class NodeProc:
    """A ``job-node start --supervised`` process."""

    def __init__(self, name: str, secret_file: Path, log_dir: Path, join: Optional[str] = None,
                 extra: List[str] = ()) -> None:  # type: ignore[assignment]
        if not Path(BIN).exists():
            pytest.fail(f"no job-node binary at {BIN}: run `cargo build -p job-node` or set JOBMESH_NODE_BIN")
        args = [BIN, "start", "--name", name, "--listen", "127.0.0.1:0", "--supervised",
                "--secret-file", str(secret_file), "--workers", "2", *extra]
        if join:
            args += ["--join", join]
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBMESH_")}
        env.setdefault("RUST_LOG", "warn")
        self.name = name
        self.log = open(log_dir / f"{name}.log", "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=env)
        lines: "queue.Queue[Optional[bytes]]" = queue.Queue()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + LIMIT
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError(f"{name} exited before it was ready (see {self.log.name})")
            try:
                report = json.loads(line)
            except ValueError:
                continue
            if report.get("event") == "ready":
                self.url: str = report["url"]
                break

    def kill(self) -> None:
        """Kills the node at once."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(LIMIT)
        self.log.close()


class Cluster:
    """Nodes of one cluster sharing a secret file."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.secret_file = tmp / "secret"
        self.secret_file.write_text("python-tests-secret\n")
        self.nodes: List[NodeProc] = []
        self.workers: List[subprocess.Popen] = []  # type: ignore[type-arg]

    def start(self, n: int, extra: List[str] = ()) -> "Cluster":  # type: ignore[assignment]
        for i in range(n):
            join = self.nodes[0].url if self.nodes else None
            self.nodes.append(NodeProc(f"node-{chr(ord('a') + len(self.nodes))}", self.secret_file,
                                       self.tmp, join, list(extra)))
        return self

    def url(self, i: int) -> str:
        return self.nodes[i].url

    async def client(self, i: int) -> jobmesh.AsyncClient:
        return await jobmesh.AsyncClient.connect(self.url(i), secret_file=self.secret_file)

    def worker_process(self, i: int, *args: str) -> "subprocess.Popen[bytes]":
        """Starts ``tests/worker_proc.py`` against node ``i`` (args after the URL
        and the secret file)."""
        log = open(self.tmp / f"worker-{len(self.workers)}.log", "wb")
        proc = subprocess.Popen([sys.executable, str(HERE / "worker_proc.py"), self.url(i),
                                 str(self.secret_file), *args], stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.kill()
            proc.wait(LIMIT)
        for node in self.nodes:
            node.kill()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


async def wait_kind(client: jobmesh.AsyncClient, kind: str, node: str, present: bool = True) -> None:
    """Waits until ``client``'s node sees ``node`` advertise ``kind``."""
    deadline = time.monotonic() + LIMIT
    while True:
        members = await client.members()
        seen = any(m["node"] == node and m["status"] == "up" and f"kind:{kind}" in m["tags"]
                   for m in members)
        if seen == present:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{client.node} never saw {node} {'serve' if present else 'drop'} {kind}: {members}")
        await asyncio.sleep(0.05)


def stray_answers(client: Any) -> int:
    """Answers the client got for tags nobody waited for (duplicates)."""
    return int(client._session.stray_answers)
