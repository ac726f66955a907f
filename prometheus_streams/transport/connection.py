"""A NATS connection: our own loop until the first connect, then nats-py's reconnects."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as NATS
from nats.errors import Error as NATSError
from nats.errors import NoServersError
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry, Counter, Gauge

from prometheus_streams.config import NatsAuth, StreamConfig
from prometheus_streams.errors import ConfigError
from prometheus_streams.secret import redact_url
from prometheus_streams.security.tls import client_context
from prometheus_streams.security.tls import explain as explain_tls
from prometheus_streams.transport.headers import Client
from prometheus_streams.transport.retry import Backoff, ThrottledLog

log = logging.getLogger(__name__)


# Each step of one try (TCP connect, the server's INFO, the TLS handshake) gets this long.
CONNECT_TIMEOUT = 5
RECONNECT_WAIT = 1
# A failed client's close() may never return (see _discard); the socket is gone by then.
CLOSE_BOUND = 1.0


class ConnectionMetrics:
    """The NATS figures of a role, one series per connection (`stream`, `management`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.connected = Gauge(
            "prometheus_streams_nats_connected",
            "1 while the NATS connection is up",
            ["connection"],
            registry=registry,
        )
        self.reconnects = Counter(
            "prometheus_streams_nats_reconnects_total",
            "Times the NATS connection was re-established",
            ["connection"],
            registry=registry,
        )
        self.errors = Counter(
            "prometheus_streams_nats_errors_total",
            "Errors reported by the NATS client, failed connect attempts included",
            ["connection"],
            registry=registry,
        )


class Connection:
    """One NATS connection: our own loop until the first connect, then nats-py reconnects."""

    def __init__(
        self,
        config: StreamConfig,
        where: str,
        name: str,
        registry: CollectorRegistry | None,
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
        *,
        kind: str = "stream",
        metrics: ConnectionMetrics | None = None,
    ) -> None:
        self.config = config
        self._where = where
        self.name = name
        self.kind = kind
        self.label = f"NATS ({kind})"
        if metrics is None:
            metrics = ConnectionMetrics(registry if registry is not None else CollectorRegistry())
        self.metrics = metrics
        self._on_reconnect = on_reconnect
        self.nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self.connected = asyncio.Event()
        self._closing = False
        self.attempts = 0
        self.last_error = ""
        self._reported: BaseException | None = None
        # While a failed attempt's client is closed, what it reports (the socket the
        # server already reset, say) is a consequence, not the reason to show.
        self._discarding = False
        self._failures = ThrottledLog(log, self.label)
        self._connected_gauge = metrics.connected.labels(kind)
        self._connected_gauge.set(0)
        self._reconnects = metrics.reconnects.labels(kind)
        self._errors = metrics.errors.labels(kind)

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context; only valid after connect()."""
        assert self.nc is not None, "connect() first"
        if self._js is None:
            # One context for the connection: it owns the reply subscription
            # that asynchronous publishes share.
            # With a domain, every API call (streams, consumers, pulls) goes to
            # that domain's JetStream, a leaf node's say, whatever server we reach.
            self._js = self.nc.jetstream(domain=self.config.domain)
        return self._js

    @property
    def max_payload(self) -> int:
        """The server's message size limit."""
        return self.nc.max_payload if self.nc is not None else 1024 * 1024

    def write_room(self) -> int:
        """Bytes a publish may still queue in this loop turn before nats-py forces a flush.

        The forced flush waits for the socket to drain, and nats-py swallows a
        cancellation that comes meanwhile: a scrape's own task must not go there.
        """
        nc = self.nc
        if nc is None or not nc.is_connected:
            return 0
        return int(nc._max_pending_size - nc._pending_data_size)

    def why_not_connected(self) -> str:
        """The reason for /-/ready while down: the connection and its latest error."""
        if not self.last_error:
            return "not connected to NATS"
        return f"not connected to NATS ({self.kind}): {self.last_error}"

    async def connect(self) -> None:
        """Connect, retrying for ever with backoff; once up, nats-py reconnects by itself."""
        tls = client_context(self.config.tls, self._where) if self.config.tls else None
        auth = self.config.auth
        log.info(
            "%s: connecting to %s (auth: %s)",
            self.label,
            ", ".join(redact_url(url) for url in self.config.urls),
            auth.describe() if auth else "none",
        )
        backoff = Backoff()
        while True:
            self.attempts += 1
            if self.attempts > 1:
                tls = self._reload_tls(tls)
            try:
                self.nc = await self._attempt(tls)
                break
            except (OSError, NATSError, TimeoutError) as exc:
                if exc is not self._reported and not isinstance(exc, NoServersError):
                    self._errors.inc()
                    self._note_failure(*self._explain(exc))
            await asyncio.sleep(backoff.next())
        self._set_connected(True)
        failures = self._failures.recovered()
        url = self.nc.connected_url
        address = redact_url(url.geturl()) if url else ""
        if self.attempts == 1:
            log.info("%s: connected to %s", self.label, address)
        else:
            log.info(
                "%s: connected to %s after %d attempts (%d errors)",
                self.label,
                address,
                self.attempts,
                failures,
            )

    def _reload_tls(self, current: ssl.SSLContext | None) -> ssl.SSLContext | None:
        """Read the CA, certificate and key again, so fixing them needs no restart."""
        if self.config.tls is None:
            return current
        try:
            return client_context(self.config.tls, self._where)
        except ConfigError as exc:
            # Half-written files, say: keep what worked at start-up and say why.
            self._note_failure(logging.ERROR, "; ".join(exc.problems))
            return current

    async def _attempt(self, tls: ssl.SSLContext | None) -> NATS:
        """One bounded try with a fresh client: every server once or twice, then give up."""
        nc = Client()
        # No reconnect inside the first connect: with it, nats-py closes a client whose
        # TLS handshake failed and waits for ever for that close (nats.py issue 718).
        bound = len(self.config.urls) * 2 * (3 * CONNECT_TIMEOUT + RECONNECT_WAIT)
        try:
            async with asyncio.timeout(bound + CONNECT_TIMEOUT):
                await nc.connect(
                    servers=list(self.config.urls),
                    name=self.name,
                    tls=tls,
                    **nats_auth_options(self.config.auth),
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    reconnect_time_wait=RECONNECT_WAIT,
                    connect_timeout=CONNECT_TIMEOUT,
                    error_cb=self._error,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                    closed_cb=self._closed,
                )
        except BaseException:
            self._discarding = True
            try:
                await _discard(nc)
            finally:
                self._discarding = False
            raise
        # nats-py reads these afresh at every later disconnect: from now on it
        # reconnects by itself, for ever, keeping subscriptions and buffered publishes.
        nc.options["allow_reconnect"] = True
        nc.options["max_reconnect_attempts"] = -1
        return nc

    async def close(self) -> None:
        """Flush what we sent (acks, publishes) to the server, then close."""
        if self.nc is None or self.nc.is_closed:
            return
        self._closing = True
        # Not drain(): it waits for fetch inboxes that will never be read again.
        # Work in flight was finished by the caller; what is left is to flush.
        if self.nc.is_connected:
            try:
                await self.nc.flush(timeout=5)
            except (NATSError, TimeoutError) as exc:
                log.warning("%s: could not flush before closing: %s", self.label, exc)
        try:
            await self.nc.close()
        except Exception as exc:
            # Closing a TLS client in the middle of a reconnect fails inside nats-py
            # (AttributeError from the torn-down SSL transport); we are exiting anyway.
            log.warning("%s: could not close cleanly: %s", self.label, _describe(exc))
        self._set_connected(False)

    def _set_connected(self, up: bool) -> None:
        self._connected_gauge.set(1 if up else 0)
        if up:
            self.last_error = ""
            self.connected.set()
        else:
            self.connected.clear()

    def _note_failure(self, level: int, message: str) -> None:
        self.last_error = message
        self._failures.failure(level, message)

    async def _error(self, exc: Exception) -> None:
        if self._discarding:
            log.debug("%s: while closing a failed client: %s", self.label, _describe(exc))
            return
        self._errors.inc()
        self._reported = exc
        self._note_failure(*self._explain(exc))

    def _explain(self, exc: BaseException) -> tuple[int, str]:
        """The level and the words for an error: a refusal of credentials says so."""
        text = _describe(exc)
        if "authorization violation" in text.lower() or "authentication" in text.lower():
            auth = self.config.auth
            return (
                logging.ERROR,
                f"NATS refused the credentials of {self._where} "
                f"(auth: {auth.describe() if auth else 'none configured'}): {text}",
            )
        explained = explain_tls(exc, self.config.tls)
        if explained is not None:
            return logging.ERROR, f"{self._where}: {explained}"
        return logging.WARNING, text

    async def _disconnected(self) -> None:
        if self.connected.is_set() and not self._closing:
            log.warning("%s: disconnected; the client keeps reconnecting", self.label)
        self._set_connected(False)

    async def _reconnected(self) -> None:
        self._reconnects.inc()
        self._set_connected(True)
        failures = self._failures.recovered()
        url = self.nc.connected_url if self.nc is not None else None
        log.warning(
            "%s: reconnected to %s%s",
            self.label,
            redact_url(url.geturl()) if url else "the server",
            f" after {failures} errors" if failures else "",
        )
        if self._on_reconnect is not None:
            await self._on_reconnect()

    async def _closed(self) -> None:
        self._set_connected(False)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return "no answer in time"
    return str(exc) or type(exc).__name__


async def _discard(nc: NATS) -> None:
    """Close a client whose connect failed, without waiting for ever."""
    # After a failed TLS handshake the stream writer that nats-py waits on never
    # hears that its socket (already closed by asyncio) is gone, so its close hangs.
    try:
        async with asyncio.timeout(CLOSE_BOUND):
            await nc.close()
    except (OSError, NATSError, TimeoutError) as exc:
        log.debug("closing a failed NATS client: %s", _describe(exc))


def nats_auth_options(auth: NatsAuth | None) -> dict[str, Any]:
    """The nats.connect() keyword arguments for one auth method."""
    if auth is None:
        return {}
    if auth.credentials_file:
        return {"user_credentials": auth.credentials_file}
    if auth.nkey_seed_file:
        return {"nkeys_seed": auth.nkey_seed_file}
    if auth.user is not None and auth.password is not None:
        return {"user": auth.user, "password": auth.password.reveal()}
    if auth.token is not None:
        return {"token": auth.token.reveal()}
    return {}
