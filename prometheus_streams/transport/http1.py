"""A lean keep-alive HTTP/1.1 client for the two hot request paths: scrapes and remote writes.

aiohttp's client was the largest Python cost of the poller's scrapes and of
the remote-write POSTs (docs/performance.md, "Issue 16, third pass"). Here
a pool of keep-alive connections per origin, each an asyncio Protocol that
parses the answer as it arrives (transport/http1_answer.py) and wakes the
request once, when the whole answer is in. Not spoken (the callers keep
aiohttp for these): proxies, redirects, compression, upgrades. A malformed
answer is an HTTPError.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_streams.transport.http1_answer import (
    Answer,
    BodyError,
    HTTPConnection,
    HTTPError,
)

__all__ = ["Answer", "BodyError", "Client", "ConnectError", "HTTPError", "Origin"]

KEEPALIVE = 15.0  # seconds an idle connection is kept (aiohttp's default)

_NO_DEADLINE = contextlib.nullcontext()


class ConnectError(OSError):
    """No connection could be made (refused, no such host, TLS handshake failed)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request goes: the pool key, with the Host header it implies."""

    scheme: str
    host: str
    port: int
    host_header: str
    ssl: ssl.SSLContext | None = None
    server_hostname: str | None = None


class Client:
    """Keep-alive connections per origin; at most `idle_per_origin` idle ones kept each."""

    def __init__(self, *, idle_per_origin: int = 4, keepalive: float = KEEPALIVE) -> None:
        self._idle: dict[Origin, list[HTTPConnection]] = {}
        self._idle_per_origin = idle_per_origin
        self._keepalive = keepalive
        self._swept = time.monotonic()
        self._closed = False

    async def request(
        self,
        method: str,
        origin: Origin,
        target: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        body_limit: int,
        within: float | None = None,
    ) -> Answer:
        """Send one request and read its answer (a body past `body_limit` bytes: truncated).

        Raises ConnectError, OSError, HTTPError (BodyError for the body), TimeoutError
        past `within` seconds (the whole request), ValueError for a header we would not send.
        A kept connection the server closed while idle is retried once on a new one,
        if not a byte of the answer came.
        """
        lines = [f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"]
        for name, value in headers.items():
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                raise ValueError(f"header {name!r}: a line break in a header")
            lines.append(f"{name}: {value}\r\n")
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        message = "".join(lines).encode("latin-1") + body
        stale = False
        # No deadline (a scrape's is its caller's): no Timeout to enter and leave.
        async with asyncio.timeout(within) if within is not None else _NO_DEADLINE:
            while True:
                conn = None if stale else self._take(origin)
                reused = conn is not None
                if conn is None:
                    conn = await self._connect(origin)
                try:
                    answer = await conn.start(message, method, body_limit)
                except ConnectionResetError:
                    conn.close()
                    if reused and not conn.received:
                        stale = True  # closed while idle, nothing answered: ask a new one
                        continue
                    raise
                except BaseException:
                    conn.close()
                    raise
                break
        if not conn.closed:
            self._put(origin, conn)
        return answer

    def _take(self, origin: Origin) -> HTTPConnection | None:
        now = time.monotonic()
        if now - self._swept > self._keepalive:
            self._sweep(now)
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            alive = conn.transport is not None and not conn.transport.is_closing()
            if alive and not conn.closed and now - conn.idle_since < self._keepalive:
                return conn
            conn.close()
        return None

    def _put(self, origin: Origin, conn: HTTPConnection) -> None:
        idle = self._idle.setdefault(origin, [])
        if self._closed or len(idle) >= self._idle_per_origin:
            conn.close()
            return
        conn.waiter = None
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def _sweep(self, now: float) -> None:
        """Close connections idle past the keep-alive time (targets come and go)."""
        self._swept = now
        for origin, idle in list(self._idle.items()):
            for conn in idle:
                if conn.closed or now - conn.idle_since >= self._keepalive:
                    conn.close()
            idle[:] = [conn for conn in idle if not conn.closed]
            if not idle:
                del self._idle[origin]

    async def _connect(self, origin: Origin) -> HTTPConnection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                HTTPConnection,
                origin.host,
                origin.port,
                ssl=origin.ssl,
                server_hostname=(origin.server_hostname or origin.host) if origin.ssl else None,
            )
        except OSError as exc:  # refused, DNS, TLS (ssl.SSLError is an OSError)
            # In aiohttp's words, which logs and the status page showed until now.
            raise ConnectError(
                f"Cannot connect to host {origin.host}:{origin.port}"
                f" ssl:{'default' if origin.ssl else 'False'} [{exc.strerror or exc}]"
            ) from exc
        return conn

    async def close(self) -> None:
        """Close every idle connection; requests in flight close theirs when done."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()
        await asyncio.sleep(0)  # let the transports' close callbacks run
