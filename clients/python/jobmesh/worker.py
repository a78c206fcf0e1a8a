"""External workers: serve job kinds from Python.

::

    import jobmesh

    app = jobmesh.Worker("ws://127.0.0.1:7700", secret_file="secret")

    @app.task("resize", concurrency=4)
    async def resize(data, ctx):
        ctx.progress(0.5, "half way")
        return {"w": data["w"] // 2}

    app.run()

The worker connects to one node as a client, registers each task at
``external@<node>`` (``docs/wire.md``, "External workers") and runs the jobs
the node pushes, never more than a task's ``concurrency`` at once. The node
advertises the kinds to the cluster, so jobs submitted anywhere reach it.
If the connection drops, the worker reconnects and registers again; the
node has by then failed the jobs it was running retryably, and the
coordinators run them elsewhere.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Union

from ._conn import Session, resolve_token
from .errors import BadData, ConnectionClosed, JobmeshError, RemoteError, Retry

log = logging.getLogger("jobmesh.worker")

#: The actor external workers register with on their node.
EXTERNAL = "external"

TaskFn = Callable[[Any, "TaskContext"], Any]


class TaskContext:
    """What a task gets besides its data: the job, progress reports and
    cancellation."""

    def __init__(self, job: Dict[str, Any], report: Callable[[float, str], None]) -> None:
        self._job = job
        self._report = report
        self._cancelled = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    @property
    def id(self) -> str:
        """The job's id."""
        return str(self._job["id"])

    @property
    def kind(self) -> str:
        """The job's kind."""
        return str(self._job["kind"])

    @property
    def attempt(self) -> int:
        """The 1-based attempt number."""
        return int(self._job.get("attempt", 1))

    @property
    def raw_data(self) -> str:
        """The job's data as sent (a string)."""
        return str(self._job.get("data", ""))

    @property
    def timeout(self) -> float:
        """The attempt's timeout in seconds."""
        return float(self._job.get("timeout_ms", 30000)) / 1000.0

    @property
    def tags(self) -> List[str]:
        """The tags the job requires."""
        return list(self._job.get("tags", []))

    def progress(self, fraction: float, note: str = "") -> None:
        """Reports progress (``fraction`` in 0..1). Best effort; callable
        from the event loop and from the thread of a synchronous task."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._report(fraction, note)
        else:
            self._loop.call_soon_threadsafe(self._report, fraction, note)

    @property
    def cancelled(self) -> bool:
        """Whether the job was cancelled (or timed out). A synchronous task
        should poll this and return early; an async task is also cancelled
        (``asyncio.CancelledError``) at its next ``await``."""
        return self._cancelled.is_set()

    async def wait_cancelled(self) -> None:
        """Returns once the job is cancelled."""
        await self._cancelled.wait()


@dataclass
class _Task:
    kind: str
    fn: TaskFn
    concurrency: int
    tags: Sequence[str]
    raw: bool
    worker_id: Optional[int] = None


@dataclass
class _Running:
    ctx: TaskContext
    future: "asyncio.Future[Any]"
    cancel_reason: Optional[str] = None


@dataclass
class WorkerStats:
    """Counters of a :class:`Worker` (for tests and monitoring)."""

    received: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    max_running: int = 0
    running: int = 0
    connections: int = 0
    kinds: Dict[str, int] = field(default_factory=dict)


class Worker:
    """A process that serves job kinds for a jobmesh cluster.

    ``url`` is the node to connect to; authenticate with ``secret``,
    ``secret_file`` or ``token`` (see :class:`~jobmesh.AsyncClient`).
    ``heartbeat`` is the interval in seconds between heartbeats; the node
    drops the worker (and retries its jobs elsewhere) after three silent
    intervals.
    """

    def __init__(
        self,
        url: str,
        *,
        secret: Optional[str] = None,
        secret_file: Optional[Union[str, Path]] = None,
        token: Optional[str] = None,
        heartbeat: float = 2.0,
        reconnect: bool = True,
    ) -> None:
        self.url = url
        self._token = resolve_token(secret, secret_file, token)
        self.heartbeat = heartbeat
        self.reconnect = reconnect
        self._tasks: Dict[str, _Task] = {}
        self._running: Dict[int, _Running] = {}
        self._session: Optional[Session] = None
        self._stop: Optional[asyncio.Event] = None  # created in run_async
        self._registered: Optional[asyncio.Event] = None
        #: Counters, updated as jobs come and go.
        self.stats = WorkerStats()

    def task(
        self,
        kind: str,
        *,
        concurrency: int = 1,
        tags: Sequence[str] = (),
        raw: bool = False,
    ) -> Callable[[TaskFn], TaskFn]:
        """Registers the decorated function as the handler of ``kind``.

        The function is called as ``fn(data, ctx)``: ``data`` is the job's
        data decoded from JSON (the string itself when it is not JSON, or
        always with ``raw=True``), ``ctx`` a :class:`TaskContext`. It may be
        ``async def`` (runs on the event loop; must not block it) or a plain
        function (runs in a thread). Its return value is the job's result:
        a string as is, anything else as JSON. Raising :class:`~jobmesh.Retry`
        fails the attempt retryably, :class:`~jobmesh.BadData` fails the job
        as undecodable, any other exception fails it for good.

        At most ``concurrency`` jobs of this kind run at once; ``tags`` are
        tags the worker offers (jobs that require them may come here).
        """
        if not 1 <= concurrency <= 512:
            raise ValueError("concurrency must be 1..=512")
        if kind in self._tasks:
            raise ValueError(f"kind {kind!r} is already registered")

        def decorate(fn: TaskFn) -> TaskFn:
            self._tasks[kind] = _Task(kind, fn, concurrency, tuple(tags), raw)
            return fn

        return decorate

    @property
    def kinds(self) -> List[str]:
        """The registered kinds."""
        return list(self._tasks)

    def run(self) -> None:
        """Runs the worker until SIGINT/SIGTERM (or :meth:`stop`), then
        unregisters and lets running jobs finish."""
        asyncio.run(self.run_async(install_signals=True))

    def stop(self) -> None:
        """Asks a running worker to stop gracefully (from its event loop)."""
        if self._stop is not None:
            self._stop.set()

    async def wait_registered(self, timeout: Optional[float] = None) -> None:
        """Returns once every task is registered with the node."""
        async def registered() -> None:
            while self._registered is None:  # run_async has not started yet
                await asyncio.sleep(0.01)
            await self._registered.wait()

        await asyncio.wait_for(registered(), timeout)

    async def run_async(self, install_signals: bool = False, grace: float = 30.0) -> None:
        """The worker's main loop (see :meth:`run`): connects, registers,
        serves, and reconnects with backoff when the connection drops."""
        if not self._tasks:
            raise JobmeshError("no task registered: decorate a function with @worker.task(kind)")
        self._stop = asyncio.Event()
        self._registered = asyncio.Event()
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, self._stop.set)
                except (NotImplementedError, RuntimeError):  # pragma: no cover
                    pass
        delay = 0.1
        while not self._stop.is_set():
            try:
                await self._serve_once(grace)
                delay = 0.1
            except (OSError, ConnectionClosed, asyncio.TimeoutError) as err:
                if not self.reconnect:
                    raise
                log.warning("connection to %s lost (%s); reconnecting in %.1fs", self.url, err, delay)
            except RemoteError as err:
                log.error("the node refused the registration: %s", err)
                raise
            self._registered.clear()
            if self._stop.is_set() or not self.reconnect:
                break
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, 5.0)

    async def _serve_once(self, grace: float) -> None:
        session = await Session.open(self.url, self._token)
        self._session = session
        self.stats.connections += 1
        session.on_push(self._on_push)
        heartbeat: Optional[asyncio.Task[None]] = None
        try:
            for task in self._tasks.values():
                await self._register(session, task)
            assert self._registered is not None and self._stop is not None
            self._registered.set()
            log.info("serving %s on %s as %s", self.kinds, session.node, session.address)
            heartbeat = asyncio.ensure_future(self._heartbeats(session))
            stop = asyncio.ensure_future(self._stop.wait())
            closed = asyncio.ensure_future(session.wait_closed())
            await asyncio.wait({stop, closed}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if session.closed:
                raise ConnectionClosed(f"connection to {session.node} closed")
            await self._shutdown(session, grace)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            # Jobs of a lost connection were failed by the node already.
            for running in list(self._running.values()):
                running.cancel_reason = "connection lost"
                running.future.cancel()
            self._running.clear()
            self._session = None
            await session.close()

    async def _register(self, session: Session, task: _Task) -> None:
        answer = await session.request(
            f"{EXTERNAL}@{session.node}",
            {
                "op": "register",
                "kinds": [task.kind],
                "concurrency": task.concurrency,
                "tags": list(task.tags),
                "heartbeat_ms": int(self.heartbeat * 1000),
            },
            timeout=10,
        )
        task.worker_id = int(answer["worker"])

    async def _shutdown(self, session: Session, grace: float) -> None:
        """Graceful stop: unregister, let running jobs finish (up to
        ``grace`` seconds, then cancel them)."""
        for task in self._tasks.values():
            if task.worker_id is not None:
                try:
                    await session.request(
                        f"{EXTERNAL}@{session.node}", {"op": "unregister", "worker": task.worker_id}, timeout=10
                    )
                except JobmeshError as err:
                    log.warning("unregister %s: %s", task.kind, err)
        pending = [r.future for r in self._running.values()]
        if pending:
            done, late = await asyncio.wait(pending, timeout=grace)
            for future in late:
                future.cancel()
            if late:
                await asyncio.wait(late, timeout=5)

    async def _heartbeats(self, session: Session) -> None:
        while not session.closed:
            await asyncio.sleep(self.heartbeat)
            try:
                queue = await session.send(f"{EXTERNAL}@{session.node}", {"op": "heartbeat"})
                session.forget(queue)
            except ConnectionClosed:
                return

    async def _on_push(self, env: Dict[str, Any]) -> None:
        session = self._session
        if session is None:
            return
        message = session.payload(env)
        if not isinstance(message, dict):
            return
        op = message.get("op")
        if op == "job":
            self._start(int(message["task"]), message["job"])
        elif op == "cancel":
            running = self._running.get(int(message["task"]))
            if running is not None:
                running.cancel_reason = str(message.get("reason", "cancelled"))
                running.ctx._cancelled.set()
                running.future.cancel()
        elif op == "closed":
            # The node dropped a registration (missed heartbeats): start over.
            log.warning("node %s dropped worker %s: %s", env.get("from"), message.get("worker"), message.get("reason"))
            if self._session is not None:
                await self._session.close()

    def _start(self, task_id: int, job: Dict[str, Any]) -> None:
        task = self._tasks.get(job.get("kind", ""))
        session = self._session
        if session is None:
            return
        self.stats.received += 1
        self.stats.kinds[job.get("kind", "")] = self.stats.kinds.get(job.get("kind", ""), 0) + 1

        def report(fraction: float, note: str) -> None:
            if not session.closed:
                asyncio.ensure_future(self._send(session, {"op": "progress", "task": task_id, "fraction": fraction, "note": note}))

        ctx = TaskContext(job, report)
        future = asyncio.ensure_future(self._run_task(task, job, ctx))
        self._running[task_id] = _Running(ctx, future)
        self.stats.running = len(self._running)
        self.stats.max_running = max(self.stats.max_running, self.stats.running)
        future.add_done_callback(lambda f: asyncio.ensure_future(self._finish(session, task_id, f)))

    async def _run_task(self, task: Optional[_Task], job: Dict[str, Any], ctx: TaskContext) -> Any:
        if task is None:
            raise BadData(f"this worker has no task for kind {job.get('kind')!r}")
        data: Any = job.get("data", "")
        if not task.raw:
            try:
                data = json.loads(data)
            except ValueError:
                pass
        if inspect.iscoroutinefunction(task.fn):
            return await task.fn(data, ctx)
        return await asyncio.to_thread(task.fn, data, ctx)

    async def _finish(self, session: Session, task_id: int, future: "asyncio.Future[Any]") -> None:
        running = self._running.pop(task_id, None)
        self.stats.running = len(self._running)
        if running is None or running.cancel_reason == "connection lost":
            # The node failed the job already when the connection dropped.
            return
        message: Dict[str, Any]
        if future.cancelled():
            self.stats.cancelled += 1
            reason = running.cancel_reason if running else "cancelled"
            message = {"op": "error", "task": task_id, "message": f"task {reason}", "retryable": False}
        elif future.exception() is not None:
            err = future.exception()
            self.stats.failed += 1
            message = {
                "op": "error",
                "task": task_id,
                "message": f"{type(err).__name__}: {err}",
                "retryable": isinstance(err, Retry),
                "bad_data": isinstance(err, BadData),
            }
        else:
            value = future.result()
            try:
                text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            except (TypeError, ValueError) as err:
                self.stats.failed += 1
                message = {"op": "error", "task": task_id, "message": f"result is not JSON: {err}"}
            else:
                self.stats.succeeded += 1
                message = {"op": "result", "task": task_id, "result": text}
        await self._send(session, message)

    async def _send(self, session: Session, message: Dict[str, Any]) -> None:
        try:
            queue = await session.send(f"{EXTERNAL}@{session.node}", message)
        except ConnectionClosed:
            return
        asyncio.ensure_future(self._check_ack(session, queue, message))

    async def _check_ack(self, session: Session, queue: Any, message: Dict[str, Any]) -> None:
        try:
            await session.next_answer(queue, timeout=60)
        except RemoteError as err:
            log.warning("node refused %s of task %s: %s", message.get("op"), message.get("task"), err)
        except (ConnectionClosed, asyncio.TimeoutError):
            pass
        finally:
            session.forget(queue)
