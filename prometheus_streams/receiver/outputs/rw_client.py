"""The remote-write output's HTTP side: one request retried in place until the store takes it.

5xx, 429 (Retry-After honoured), 401/403 and no answer are retried with
backoff while the caller's messages stay in progress; any other 4xx is a
refusal for good, raised as `Refused` for the caller to split or drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
from yarl import URL

from prometheus_streams.config import RemoteWriteConfig
from prometheus_streams.receiver.outputs.rw_metrics import RemoteWriteMetrics
from prometheus_streams.receiver.remote_write import protocol
from prometheus_streams.secret import redact_text
from prometheus_streams.transport import http1

log = logging.getLogger(__name__)

# Requests in flight at once per output; one group is in at most one of them.
CONCURRENCY = 4
# Refusals of our credentials are retried like a 5xx, not dropped: during a
# rotation the store may already want the new secret while we still send the
# old one, and the stream keeps the scrapes until a reload brings the new one.
AUTH_REFUSALS = (401, 403)
# Of a store's answer only the start is shown (and searched for the refusal's
# reason); an answer past this is cut, not read to its end.
ANSWER_LIMIT = 1024 * 1024


class Refused(Exception):
    """The store refused a request for good (a 4xx other than 429)."""

    def __init__(self, status: int, answer: str) -> None:
        super().__init__(answer)  # it starts with "HTTP <status>:" already
        self.status = status
        self.answer = answer


class Abort(Exception):
    """Sending stopped: shutting down, or the lease was lost."""


def refusal_reason(status: int, answer: str) -> str:
    """A dropped_total reason for a store's refusal, from its status and answer."""
    text = answer.lower()
    for needle, reason in (
        ("out of order", "out_of_order"),
        ("out-of-order", "out_of_order"),
        ("duplicate sample", "duplicate"),
        ("out of bounds", "out_of_bounds"),
        ("too old", "out_of_bounds"),
    ):
        if needle in text:
            return reason
    return f"http_{status}"


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), or None."""
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


class StoreClient:
    """Posts write requests to one store, retrying in place; counts under the output's label."""

    def __init__(
        self,
        rw: RemoteWriteConfig,
        metrics: RemoteWriteMetrics,
        note: Callable[[str], None],
        spawn: Callable[[Coroutine[Any, Any, Any], str], object],
    ) -> None:
        self.rw = rw
        self.metrics = metrics
        self.label = rw.name
        # Kept, not looked up with labels() per request (a lock and a dict each).
        self._succeeded = metrics.requests.labels(self.label, "success")
        self._duration = metrics.duration.labels(self.label)
        self._note = note
        self._spawn = spawn
        self._session: aiohttp.ClientSession | http1.Client | None = None
        self._origin = http1.Origin("http", "", 0, "")
        self._target = "/"
        self._headers: dict[str, str] = {}
        self._auth_refused = False

    def open(self) -> None:
        """Open the HTTP session."""
        self._session = self._new_session()

    def _new_session(self) -> aiohttp.ClientSession | http1.Client:
        # The lean client unless the URL carries user info, which aiohttp turns
        # into basic auth (or refuses beside an Authorization header).
        url = URL(self.rw.url)
        ssl_context = self.rw.ssl_context()
        if url.user is None and url.password is None:
            host = url.raw_host or ""
            self._origin = http1.Origin(
                url.scheme,
                host,
                url.port or 0,
                url.host_port_subcomponent or host,
                ssl_context,
                self.rw.tls_server_name,
            )
            self._target = url.raw_path_qs
            # What aiohttp sent: its Accept default, then the user's and the protocol's.
            self._headers = {"Accept": "*/*", **self._request_headers()}
            return http1.Client(idle_per_origin=CONCURRENCY)
        connector = aiohttp.TCPConnector(
            ssl=ssl_context if ssl_context is not None else True, limit=CONCURRENCY
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.rw.remote_timeout),
            auto_decompress=False,
        )

    async def post(
        self,
        series: list[bytes],
        samples: int,
        stop: asyncio.Event,
        may_write: Callable[[], bool],
        touch: Callable[[], Awaitable[None]],
        touch_every: float,
    ) -> None:
        """Write `series` (`samples` samples) in one request, retried in place until 2xx.

        Raises Refused or Abort.

        `touch` keeps the caller's messages in progress every `touch_every` seconds.
        """
        body = protocol.compress(protocol.write_request(series))
        delay = self.rw.min_backoff
        touched = time.monotonic()
        while True:
            if stop.is_set() or not may_write():
                raise Abort()
            if time.monotonic() - touched > touch_every:
                await touch()
                touched = time.monotonic()
            status, answer, wait = await self._request(body)
            if 200 <= status < 300:
                self._succeeded.inc()
                if self._auth_refused:
                    self._auth_refused = False
                    log.info("remote write %s: the store accepts our credentials again", self.label)
                return
            if status in AUTH_REFUSALS:
                self._auth_refused_once(answer)
            elif status and status != 429 and status < 500:
                self.metrics.requests.labels(self.label, "refused").inc()
                raise Refused(status, answer)
            self.metrics.requests.labels(self.label, "retried").inc()
            self.metrics.retried.labels(self.label).inc(samples)
            self._note(f"{self.label}: {answer}")
            pause = wait if wait is not None else delay
            delay = min(self.rw.max_backoff, delay * 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(pause, 0.001))

    def _auth_refused_once(self, answer: str) -> None:
        """Log the first refusal of our credentials until the store accepts them again."""
        if self._auth_refused:
            return
        self._auth_refused = True
        log.error(
            "remote write %s: the store refused our credentials (%s); retrying with backoff,"
            " nothing is dropped while the stream keeps the scrapes (max_age): check %s,"
            " and reload (SIGHUP) after rotating them",
            self.label,
            answer,
            self.rw.describe_auth(),
        )

    async def _request(self, body: bytes) -> tuple[int, str, float | None]:
        """POST one request: (status or 0 for no answer, what it said, Retry-After)."""
        assert self._session is not None
        if isinstance(self._session, http1.Client):
            return await self._fast_request(self._session, body)
        headers = self._request_headers()
        started = time.monotonic()
        try:
            async with self._session.post(
                self.rw.url, data=body, headers=headers, server_hostname=self.rw.tls_server_name
            ) as response:
                text = (await response.content.read(512)).decode("utf-8", "replace").strip()
                # Some stores quote the credentials they refused (vmauth: the token).
                text = redact_text(text, self._secrets())
                wait = retry_after(response.headers.get("Retry-After"))
                return response.status, f"HTTP {response.status}: {text}", wait
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return 0, f"no answer: {exc or type(exc).__name__}", None
        finally:
            self._duration.observe(time.monotonic() - started)

    def _request_headers(self) -> dict[str, str]:
        # Identity: the answer is logged and searched for the refusal's reason, and
        # VictoriaMetrics gzips it for a client that accepts gzip (aiohttp's default).
        return {**self.rw.request_headers(), **protocol.HEADERS, "Accept-Encoding": "identity"}

    async def _fast_request(
        self, client: http1.Client, body: bytes
    ) -> tuple[int, str, float | None]:
        """`_request` through the lean client: the same answers, errors and timing."""
        started = time.monotonic()
        try:
            answer = await client.request(
                "POST",
                self._origin,
                self._target,
                self._headers,
                body,
                body_limit=ANSWER_LIMIT,
                within=self.rw.remote_timeout,
            )
        except (http1.HTTPError, TimeoutError, OSError, ValueError) as exc:
            return 0, f"no answer: {exc or type(exc).__name__}", None
        finally:
            self._duration.observe(time.monotonic() - started)
        text = answer.body[:512].decode("utf-8", "replace").strip()
        text = redact_text(text, self._secrets())
        wait = retry_after(answer.headers.get("retry-after"))
        return answer.status, f"HTTP {answer.status}: {text}", wait

    def _secrets(self) -> tuple[str, ...]:
        """The credentials we send, never to be shown."""
        given = [s.reveal() for s in (self.rw.password, self.rw.bearer_token) if s is not None]
        # Basic auth's user:password in base64, as it went into the header.
        given.append(self.rw.request_headers().get("Authorization", "").partition(" ")[2])
        return tuple(sorted({s for s in given if s}, key=len, reverse=True))

    def reload(self, rw: RemoteWriteConfig) -> None:
        """Take new settings; requests under way finish on the old session."""
        self.rw = rw
        old, self._session = self._session, self._new_session()
        if old is not None:
            self._spawn(self._close_later(old), "close old session")

    async def _close_later(self, session: aiohttp.ClientSession | http1.Client) -> None:
        """Close a replaced session once the requests under way on it have ended."""
        try:
            await asyncio.sleep(self.rw.remote_timeout)
        finally:
            await session.close()

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
