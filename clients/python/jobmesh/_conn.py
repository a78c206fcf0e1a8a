"""One authenticated WebSocket session with a node (internal).

The session speaks the client JSON form of ``docs/wire.md``: it asks for
raw payloads (``?payloads=raw`` on the URL: a payload that is JSON arrives
as the JSON value, not as a string holding its text, so it is parsed once,
not twice), authenticates with the client token, learns its address from
the welcome envelope, tags every envelope it sends with a fresh number and routes each
answer (``correlation_id``) back to whoever waits for that tag. Envelopes
without a correlation (pushes: jobs for an external worker) go to a push
handler.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import urllib.parse
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Optional, Union

from .errors import AuthError, ConnectionClosed, JobmeshError, RemoteError

try:  # websockets >= 13
    from websockets.asyncio.client import connect as _ws_connect
except ImportError:  # pragma: no cover - older websockets
    from websockets import connect as _ws_connect  # type: ignore[no-redef,unused-ignore]

log = logging.getLogger("jobmesh")

#: The label the client token is derived with (``docs/wire.md``, "Client auth").
TOKEN_LABEL = b"jobmesh client token v1"
#: The secret a node uses without ``--secret-file`` (loopback only).
DEVELOPMENT_SECRET = "jobmesh-development-secret-not-for-production"
#: Largest frame a node accepts by default (16 MiB).
MAX_FRAME = 16 * 1024 * 1024


def client_token(secret: Union[str, bytes]) -> str:
    """The client token of a cluster secret.

    ``hex(HMAC-SHA256(secret, "jobmesh client token v1"))``: 64 lowercase hex
    characters. The secret itself never crosses the wire.
    """
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, TOKEN_LABEL, hashlib.sha256).hexdigest()


def resolve_token(
    secret: Optional[str] = None,
    secret_file: Optional[Union[str, Path]] = None,
    token: Optional[str] = None,
) -> str:
    """The token to authenticate with: ``token`` as given, else derived from
    ``secret`` or from the (trimmed) contents of ``secret_file``, else from
    the development secret."""
    given = [x is not None for x in (secret, secret_file, token)]
    if sum(given) > 1:
        raise ValueError("pass at most one of secret, secret_file and token")
    if token is not None:
        return token
    if secret_file is not None:
        text = Path(secret_file).read_text().strip()
        if not text:
            raise ValueError(f"secret file {secret_file} is empty")
        secret = text
    return client_token(secret if secret is not None else DEVELOPMENT_SECRET)


def decode_payload(payload: Any) -> Any:
    """A payload sent as a JSON string (every payload of a session without
    raw payloads): its text is usually JSON."""
    if not isinstance(payload, str):
        return payload
    try:
        return json.loads(payload)
    except ValueError:
        return payload


def envelope_payload(env: Dict[str, Any], raw: bool) -> Any:
    """The payload of envelope ``env``, decoded: with raw payloads (``raw``)
    one without a ``format`` is the JSON value itself; every other payload
    is a string read as without raw payloads (``"format":"text"`` marks
    text that is not JSON, or a JSON value nested too deep to go raw)."""
    payload = env.get("payload")
    fmt = env.get("format")
    if raw and fmt is None:
        return payload
    if raw and fmt == "text" and isinstance(payload, str):
        # The node found it not to be JSON (Python's parser would take
        # NaN or Infinity), unless it was JSON nested too deep to go raw.
        try:
            return json.loads(payload, parse_constant=_not_json)
        except (ValueError, RecursionError):
            return payload
    return decode_payload(payload)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def with_raw_payloads(url: str) -> str:
    """``url`` with ``payloads=raw`` added to its query."""
    parts = urllib.parse.urlsplit(url)
    query = f"{parts.query}&payloads=raw" if parts.query else "payloads=raw"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, parts.fragment))


Answer = Dict[str, Any]
PushHandler = Callable[[Dict[str, Any]], Awaitable[None]]


class Session:
    """An authenticated connection; use :meth:`open`."""

    def __init__(self, ws: Any, address: str, raw: bool = False) -> None:
        self._ws = ws
        #: The node sends JSON payloads raw (it confirmed ``payloads=raw``).
        self.raw = raw
        #: This client's address, ``client-<id>@<node>``.
        self.address = address
        #: The node the session is connected to.
        self.node = address.split("@", 1)[1]
        self._tags = itertools.count(1)
        self._waiters: Dict[int, asyncio.Queue[Answer]] = {}
        self._push: Optional[PushHandler] = None
        self._closed: Optional[BaseException] = None
        self._reader = asyncio.ensure_future(self._read())
        self._send_lock = asyncio.Lock()
        #: Answers that arrived for a tag nobody waited for any more.
        self.stray_answers = 0

    @classmethod
    async def open(cls, url: str, token: str, timeout: float = 10.0, raw_payloads: bool = True) -> "Session":
        """Connects to ``url``, authenticates with ``token`` and waits for
        the welcome. With ``raw_payloads`` (the default) it asks for JSON
        payloads as JSON values; a node that does not confirm sends strings,
        which are read as well.

        Raises :class:`AuthError` if the node refuses the token and
        :class:`ConnectionError`/:class:`OSError` if it cannot be reached.
        """
        target = with_raw_payloads(url) if raw_payloads else url
        ws = await asyncio.wait_for(
            _ws_connect(target, max_size=MAX_FRAME + 1024, ping_interval=None, open_timeout=timeout),
            timeout,
        )
        try:
            await ws.send(json.dumps({"auth": token}))
            first = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            if first.get("auth") != "ok":
                raise AuthError(str(first.get("error", first)))
            raw = first.get("payloads") == "raw"
            welcome = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            greeting = envelope_payload(welcome, raw)
            address = greeting.get("welcome") if isinstance(greeting, dict) else None
            if not isinstance(address, str) or "@" not in address:
                raise JobmeshError(f"unexpected first envelope: {welcome}")
        except BaseException:
            await ws.close()
            raise
        return cls(ws, address, raw)

    def payload(self, env: Dict[str, Any]) -> Any:
        """The decoded payload of an envelope this session received."""
        return envelope_payload(env, self.raw)

    def on_push(self, handler: PushHandler) -> None:
        """Envelopes that answer nothing (pushes) go to ``handler``."""
        self._push = handler

    @property
    def closed(self) -> bool:
        """Whether the connection has ended."""
        return self._closed is not None

    async def wait_closed(self) -> None:
        """Returns when the connection has ended."""
        await asyncio.shield(self._reader)

    async def send(self, to: str, payload: Any) -> "asyncio.Queue[Answer]":
        """Sends ``payload`` to ``to`` with a fresh tag; returns the queue its
        answers arrive on (call :meth:`forget` when done with it)."""
        if self._closed is not None:
            raise ConnectionClosed(str(self._closed))
        tag = next(self._tags)
        queue: asyncio.Queue[Answer] = asyncio.Queue()
        queue.tag = tag  # type: ignore[attr-defined]
        self._waiters[tag] = queue
        frame = json.dumps({"to": to, "id": tag, "payload": payload})
        try:
            async with self._send_lock:
                await self._ws.send(frame)
        except Exception as err:
            self._waiters.pop(tag, None)
            raise ConnectionClosed(str(err)) from err
        return queue

    def forget(self, queue: "asyncio.Queue[Answer]") -> None:
        """Stops routing answers to ``queue``."""
        self._waiters.pop(getattr(queue, "tag", -1), None)

    async def next_answer(self, queue: "asyncio.Queue[Answer]", timeout: Optional[float] = None) -> Any:
        """The next answer on ``queue``, decoded; raises :class:`RemoteError`
        for an ``error``/``undeliverable`` envelope and
        :class:`ConnectionClosed` if the connection ends first."""
        answer = await asyncio.wait_for(queue.get(), timeout)
        if "closed" in answer:
            raise ConnectionClosed(answer["closed"])
        payload = self.payload(answer)
        kind = answer.get("kind")
        if kind in ("error", "undeliverable"):
            raise RemoteError(str(payload), kind=kind, sender=answer.get("from", ""))
        return payload

    async def request(self, to: str, payload: Any, timeout: Optional[float] = None) -> Any:
        """Sends ``payload`` and returns its one answer."""
        queue = await self.send(to, payload)
        try:
            return await self.next_answer(queue, timeout)
        finally:
            self.forget(queue)

    async def close(self) -> None:
        """Closes the connection."""
        await self._ws.close()
        try:
            await self._reader
        except Exception:  # noqa: BLE001 - already reported
            pass

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                if isinstance(frame, bytes):
                    continue
                try:
                    env = json.loads(frame)
                except ValueError:
                    log.warning("undecodable frame from %s: %.200s", self.node, frame)
                    continue
                await self._route(env)
            self._closed = ConnectionClosed("the node closed the connection")
        except Exception as err:  # noqa: BLE001 - the connection is over
            self._closed = err
        finally:
            if self._closed is None:
                self._closed = ConnectionClosed("closed")
            for queue in list(self._waiters.values()):
                queue.put_nowait({"closed": str(self._closed)})
            self._waiters.clear()

    async def _route(self, env: Dict[str, Any]) -> None:
        if "error" in env and "to" not in env:
            log.warning("node %s refused a frame: %s", self.node, env["error"])
            return
        tag = env.get("correlation_id")
        if tag is not None:
            queue = self._waiters.get(tag)
            if queue is not None:
                queue.put_nowait(env)
            else:
                self.stray_answers += 1
                log.debug("answer for a forgotten tag %s: %.200s", tag, env)
            return
        if self._push is not None:
            await self._push(env)
        else:
            log.debug("push ignored: %.200s", env)
