"""The exceptions of the jobmesh package."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .client import JobResult


class JobmeshError(Exception):
    """Base class of every error this package raises."""


class AuthError(JobmeshError):
    """The node refused the client token (wrong secret)."""


class ConnectionClosed(JobmeshError):
    """The connection to the node ended before the answer arrived."""


class RemoteError(JobmeshError):
    """The node answered with an ``error`` or ``undeliverable`` envelope.

    ``str(err)`` is the node's reason; :attr:`kind` says which of the two.
    """

    def __init__(self, reason: str, kind: str = "error", sender: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.sender = sender


class UnknownJob(JobmeshError):
    """No coordinator of the cluster knows the job id."""


class JobFailed(JobmeshError):
    """:meth:`JobResult.value` of a job that failed."""

    def __init__(self, result: "JobResult") -> None:
        failure = result.error
        reason = f"{failure.cause}: {failure.message}" if failure else "failed"
        super().__init__(f"job {result.id} failed ({reason})")
        self.result = result


class TaskError(JobmeshError):
    """Raise from a task to fail the attempt without retries (a permanent
    handler error). Any other exception a task raises does the same; this
    one only carries no traceback noise."""


class Retry(JobmeshError):
    """Raise from a task to fail this attempt *retryably*: the coordinator
    runs the job again on another worker while attempts remain."""


class BadData(JobmeshError):
    """Raise from a task whose input cannot be decoded: the job fails with
    cause ``bad_data`` and is not retried."""
