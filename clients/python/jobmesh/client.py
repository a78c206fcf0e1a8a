"""Submitting and following jobs: :class:`AsyncClient` and its blocking
twin :class:`Client`.

Both talk to ``coordinator@<node>`` of the node they are connected to, in
the client JSON form of ``docs/wire.md`` and the commands of
``docs/jobs.md`` (submit, get, cancel, attach).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Coroutine, Dict, Iterable, List, Optional, TypeVar, Union

from ._conn import Session, resolve_token
from .errors import JobFailed, RemoteError, UnknownJob

T = TypeVar("T")

#: Most jobs per ``submit_batch`` frame (the coordinator's bound).
MAX_BATCH_JOBS = 4096

_JOB_KEYS = frozenset(("kind", "data", "id", "tags", "timeout", "max_attempts", "priority", "delay"))


@dataclass(frozen=True)
class Failure:
    """Why an attempt (or the job) failed."""

    #: ``timeout``, ``node_down``, ``handler``, ``bad_data``, ``cancelled``, ...
    cause: str
    #: A human-readable explanation.
    message: str
    #: Whether the coordinator could retry after it.
    retryable: bool


@dataclass(frozen=True)
class JobResult:
    """The one final result of a job (``docs/jobs.md``, "JobResult")."""

    id: str
    #: The task's output text on success, else ``None``.
    result: Optional[str]
    #: Why it failed, else ``None``.
    error: Optional[Failure]
    #: The node that produced the outcome.
    worker_node: str
    #: The attempt that produced it.
    attempt: int
    #: Processing time on the worker, in milliseconds.
    elapsed_ms: float
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """Whether the job succeeded."""
        return self.error is None

    def value(self) -> str:
        """The output; raises :class:`JobFailed` if the job failed."""
        if self.error is not None or self.result is None:
            raise JobFailed(self)
        return self.result

    @classmethod
    def from_json(cls, obj: Dict[str, Any]) -> "JobResult":
        """Builds a result from its JSON form."""
        error = obj.get("error")
        return cls(
            id=obj["id"],
            result=obj.get("result"),
            error=Failure(error["cause"], error.get("message", ""), bool(error.get("retryable")))
            if error
            else None,
            worker_node=obj.get("worker_node", ""),
            attempt=int(obj.get("attempt", 0)),
            elapsed_ms=float(obj.get("elapsed_ms", 0.0)),
            raw=obj,
        )


@dataclass(frozen=True)
class Progress:
    """A progress report of a running job."""

    id: str
    attempt: int
    fraction: float
    note: str


ProgressCallback = Callable[[Progress], Any]


def _job(
    kind: str,
    data: Any,
    id: Optional[str],
    tags: Optional[Iterable[str]],
    timeout: Optional[float],
    max_attempts: Optional[int],
    priority: Optional[int] = None,
    delay: Optional[float] = None,
) -> Dict[str, Any]:
    job: Dict[str, Any] = {"kind": kind, "id": id or f"py-{uuid.uuid4().hex}"}
    if data is not None:
        job["data"] = data
    if tags:
        job["tags"] = list(tags)
    if timeout is not None:
        job["timeout_ms"] = max(1, int(timeout * 1000))
    if max_attempts is not None:
        job["max_attempts"] = max_attempts
    if priority is not None:
        job["priority"] = priority
    if delay is not None:
        job["delay_ms"] = max(0, int(delay * 1000))
    return job


class JobHandle:
    """A submitted job whose result has not been awaited yet."""

    def __init__(self, id: str, task: "asyncio.Task[JobResult]") -> None:
        #: The job's id.
        self.id = id
        self._task = task

    async def result(self, timeout: Optional[float] = None) -> JobResult:
        """Waits for the job's one final result."""
        return await asyncio.wait_for(asyncio.shield(self._task), timeout)

    def done(self) -> bool:
        """Whether the result has arrived."""
        return self._task.done()


class AsyncClient:
    """An asyncio client of a jobmesh cluster.

    ::

        async with await AsyncClient.connect("ws://127.0.0.1:7700", secret_file="secret") as c:
            result = await c.submit("echo", "hi")
            print(result.value())

    Authentication: pass the cluster ``secret``, a ``secret_file`` holding
    it, or the client ``token`` itself; with none of them the development
    secret of a loopback node is used.
    """

    def __init__(self, session: Session) -> None:
        self._session = session

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        secret: Optional[str] = None,
        secret_file: Optional[Union[str, Path]] = None,
        token: Optional[str] = None,
        timeout: float = 10.0,
    ) -> "AsyncClient":
        """Connects and authenticates; raises :class:`~jobmesh.AuthError`
        for a wrong secret and :class:`OSError` when the node is
        unreachable."""
        token = resolve_token(secret, secret_file, token)
        return cls(await Session.open(url, token, timeout))

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def node(self) -> str:
        """The node this client is connected to."""
        return self._session.node

    @property
    def address(self) -> str:
        """This client's address (``client-<id>@<node>``)."""
        return self._session.address

    def _coordinator(self, node: Optional[str] = None) -> str:
        return f"coordinator@{node or self._session.node}"

    async def submit(
        self,
        kind: str,
        data: Any = None,
        *,
        id: Optional[str] = None,
        tags: Optional[Iterable[str]] = None,
        timeout: Optional[float] = None,
        max_attempts: Optional[int] = None,
        priority: Optional[int] = None,
        delay: Optional[float] = None,
        on_progress: Optional[ProgressCallback] = None,
    ) -> JobResult:
        """Submits a job and waits for its one final result.

        ``data`` is a string, or any JSON value (sent as its JSON text).
        ``timeout`` is the per-attempt timeout in seconds. ``priority``
        (higher first, default 0) orders jobs waiting for a worker; a job
        with ``delay`` (seconds) does not start before then. A job id that the
        cluster already knows is not run again: the result is that job's.
        ``on_progress`` is called with each :class:`Progress` report.

        Raises :class:`~jobmesh.RemoteError` when the submission is refused
        (invalid job, coordinator at capacity).
        """
        handle = await self.submit_nowait(
            kind,
            data,
            id=id,
            tags=tags,
            timeout=timeout,
            max_attempts=max_attempts,
            priority=priority,
            delay=delay,
            on_progress=on_progress,
        )
        return await handle.result()

    async def submit_nowait(
        self,
        kind: str,
        data: Any = None,
        *,
        id: Optional[str] = None,
        tags: Optional[Iterable[str]] = None,
        timeout: Optional[float] = None,
        max_attempts: Optional[int] = None,
        priority: Optional[int] = None,
        delay: Optional[float] = None,
        on_progress: Optional[ProgressCallback] = None,
    ) -> JobHandle:
        """Sends a job and returns at once with a :class:`JobHandle` (the
        job's id; its result later). Arguments as :meth:`submit`."""
        job = _job(kind, data, id, tags, timeout, max_attempts, priority, delay)
        command = {"cmd": "submit", "job": job, "progress": on_progress is not None}
        queue = await self._session.send(self._coordinator(), command)
        task = asyncio.ensure_future(self._follow(queue, on_progress))
        return JobHandle(job["id"], task)

    async def submit_many(self, jobs: Iterable[Dict[str, Any]]) -> List[JobResult]:
        """Submits many jobs (each a dict of :meth:`submit`'s arguments,
        ``kind`` and ``data`` included) in ``submit_batch`` frames of up to
        4,096 jobs, and returns their results in the order given.

        Each job is taken or refused on its own (``docs/jobs.md``, "Batch
        submission"); results of a batch come back a few per envelope. A
        known id is not run again. Raises :class:`~jobmesh.RemoteError`
        naming the first refused job once every answer is in (the other
        jobs still ran).
        """
        jobs = list(jobs)
        for job in jobs:
            unknown = set(job) - _JOB_KEYS
            if unknown:
                raise TypeError(f"submit_many: unknown job field(s) {sorted(unknown)}")
        built = [
            _job(
                job["kind"],
                job.get("data"),
                job.get("id"),
                job.get("tags"),
                job.get("timeout"),
                job.get("max_attempts"),
                job.get("priority"),
                job.get("delay"),
            )
            for job in jobs
        ]
        results: Dict[str, JobResult] = {}
        refused: List[str] = []
        batches = [built[i : i + MAX_BATCH_JOBS] for i in range(0, len(built), MAX_BATCH_JOBS)]
        queues = [
            (await self._session.send(self._coordinator(), {"cmd": "submit_batch", "jobs": batch}), batch)
            for batch in batches
        ]
        for queue, batch in queues:
            try:
                left = len(batch)
                while left > 0:
                    answer = await self._session.next_answer(queue)
                    for result in answer.get("results", []):
                        results[result["id"]] = JobResult.from_json(result)
                    for refusal in answer.get("refused", []):
                        refused.append(f"job {refusal.get('id', refusal.get('index'))}: {refusal['reason']}")
                    left -= len(answer.get("results", [])) + len(answer.get("refused", []))
            finally:
                self._session.forget(queue)
        if refused:
            raise RemoteError(refused[0] + (f" (and {len(refused) - 1} more refused)" if len(refused) > 1 else ""))
        return [results[job["id"]] for job in built]

    async def _follow(self, queue: Any, on_progress: Optional[ProgressCallback]) -> JobResult:
        try:
            while True:
                answer = await self._session.next_answer(queue)
                if isinstance(answer, dict) and "progress" in answer:
                    if on_progress is not None:
                        p = answer["progress"]
                        on_progress(
                            Progress(p["id"], int(p["attempt"]), float(p["fraction"]), p.get("note", ""))
                        )
                    continue
                return JobResult.from_json(answer)
        finally:
            self._session.forget(queue)

    async def get(self, *ids: str) -> Dict[str, Any]:
        """The records of jobs anywhere in the cluster:
        ``{"records": [JobRecord, ...], "unknown": [id, ...]}``
        (``docs/jobs.md``, "Job records")."""
        answer: Dict[str, Any] = await self._session.request(self._coordinator(), {"cmd": "get", "ids": list(ids)})
        return answer

    async def cancel(self, *ids: str) -> Dict[str, Any]:
        """Cancels jobs anywhere in the cluster:
        ``{"cancelled": [..], "final": [..], "unknown": [..]}``. A running
        task is told to stop; the job's result is ``cancelled``."""
        answer: Dict[str, Any] = await self._session.request(
            self._coordinator(), {"cmd": "cancel", "ids": list(ids)}
        )
        return answer

    async def attach(self, id: str, timeout: Optional[float] = None) -> JobResult:
        """Waits for the final result of a job submitted by anyone (at
        once if it is final). Raises :class:`~jobmesh.UnknownJob` if no
        coordinator knows it."""
        found = await self.get(id)
        records = found.get("records") or []
        if not records:
            raise UnknownJob(f"no coordinator knows job {id}")
        owner = records[0].get("owner") or self.node
        queue = await self._session.send(self._coordinator(owner), {"cmd": "attach", "ids": [id]})
        try:
            first = await self._session.next_answer(queue, timeout)
            if id not in first.get("attached", []):
                raise UnknownJob(f"coordinator@{owner} does not hold job {id}")
            answer = await self._session.next_answer(queue, timeout)
            return JobResult.from_json(answer)
        finally:
            self._session.forget(queue)

    async def command(self, to: str, payload: Any, timeout: Optional[float] = None) -> Any:
        """Sends any JSON ``payload`` to the actor ``to`` (e.g.
        ``system@node-a`` with ``{"cmd": "members"}``) and returns its
        answer."""
        return await self._session.request(to, payload, timeout)

    async def members(self) -> List[Dict[str, Any]]:
        """The member table as the connected node sees it."""
        answer = await self.command(f"system@{self.node}", {"cmd": "members"})
        return list(answer["members"])

    async def close(self) -> None:
        """Closes the connection."""
        await self._session.close()


class Client:
    """The blocking form of :class:`AsyncClient`, for scripts and REPLs.

    It runs an event loop on a background thread; every method blocks until
    its answer arrives. ::

        with jobmesh.Client("ws://127.0.0.1:7700", secret_file="secret") as c:
            print(c.submit("echo", "hi").value())
    """

    def __init__(
        self,
        url: str,
        *,
        secret: Optional[str] = None,
        secret_file: Optional[Union[str, Path]] = None,
        token: Optional[str] = None,
        timeout: float = 10.0,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="jobmesh-client", daemon=True)
        self._thread.start()
        try:
            self._client: AsyncClient = self._run(
                AsyncClient.connect(url, secret=secret, secret_file=secret_file, token=token, timeout=timeout)
            )
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coro: Coroutine[Any, Any, T], timeout: Optional[float] = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def node(self) -> str:
        """The node this client is connected to."""
        return self._client.node

    def submit(self, kind: str, data: Any = None, **options: Any) -> JobResult:
        """Submits a job and blocks until its result; see :meth:`AsyncClient.submit`."""
        return self._run(self._client.submit(kind, data, **options))

    def submit_many(self, jobs: Iterable[Dict[str, Any]]) -> List[JobResult]:
        """Submits several jobs in batches and blocks until their results,
        in order; see :meth:`AsyncClient.submit_many`."""

        return self._run(self._client.submit_many(jobs))

    def get(self, *ids: str) -> Dict[str, Any]:
        """See :meth:`AsyncClient.get`."""
        return self._run(self._client.get(*ids))

    def cancel(self, *ids: str) -> Dict[str, Any]:
        """See :meth:`AsyncClient.cancel`."""
        return self._run(self._client.cancel(*ids))

    def attach(self, id: str, timeout: Optional[float] = None) -> JobResult:
        """See :meth:`AsyncClient.attach`."""
        return self._run(self._client.attach(id, timeout))

    def members(self) -> List[Dict[str, Any]]:
        """See :meth:`AsyncClient.members`."""
        return self._run(self._client.members())

    def close(self) -> None:
        """Closes the connection and stops the background loop."""
        if self._loop.is_closed():
            return
        try:
            self._run(self._client.close(), timeout=10)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
