"""jobmesh: a Python client and external workers for the jobmesh
distributed job queue.

- :class:`Client` / :class:`AsyncClient`: submit jobs, get their records,
  cancel them, attach to them.
- :class:`Worker`: serve job kinds from Python (``@app.task("resize")``).

See the package README and the repository's ``docs/wire.md``.
"""

from ._conn import DEVELOPMENT_SECRET, client_token
from .client import AsyncClient, Client, Failure, JobHandle, JobResult, Progress
from .errors import (
    AuthError,
    BadData,
    ConnectionClosed,
    JobFailed,
    JobmeshError,
    RemoteError,
    Retry,
    TaskError,
    UnknownJob,
)
from .worker import TaskContext, Worker, WorkerStats

__all__ = [
    "AsyncClient",
    "AuthError",
    "BadData",
    "Client",
    "ConnectionClosed",
    "DEVELOPMENT_SECRET",
    "Failure",
    "JobFailed",
    "JobHandle",
    "JobResult",
    "JobmeshError",
    "Progress",
    "RemoteError",
    "Retry",
    "TaskContext",
    "TaskError",
    "UnknownJob",
    "Worker",
    "WorkerStats",
    "client_token",
]

__version__ = "0.1.0"
