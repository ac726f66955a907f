"""NATS connections and JetStream stream provisioning."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.errors import Error as NATSError
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry, Counter, Gauge

from prometheus_streams.config import NatsAuth, StreamConfig
from prometheus_streams.errors import StreamMismatchError
from prometheus_streams.secret import redact_url
from prometheus_streams.security.tls import client_context
from prometheus_streams.security.tls import explain as explain_tls

log = logging.getLogger(__name__)


class Connection:
    """One NATS connection that reconnects by itself and reports its state."""

    def __init__(
        self,
        config: StreamConfig,
        where: str,
        name: str,
        registry: CollectorRegistry | None,
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self._where = where
        self.name = name
        # A second connection (management on its own brokers) keeps its figures apart.
        registry = registry if registry is not None else CollectorRegistry()
        self._on_reconnect = on_reconnect
        self.nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self.connected = asyncio.Event()
        self._closing = False
        self._connected_gauge = Gauge(
            "prometheus_streams_nats_connected",
            "1 while the NATS connection is up",
            registry=registry,
        )
        self._reconnects = Counter(
            "prometheus_streams_nats_reconnects_total",
            "Times the NATS connection was re-established",
            registry=registry,
        )
        self._errors = Counter(
            "prometheus_streams_nats_errors_total",
            "Errors reported by the NATS client",
            registry=registry,
        )

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context; only valid after connect()."""
        assert self.nc is not None, "connect() first"
        if self._js is None:
            # One context for the connection: it owns the reply subscription
            # that asynchronous publishes share.
            self._js = self.nc.jetstream()
        return self._js

    @property
    def max_payload(self) -> int:
        """The server's message size limit."""
        return self.nc.max_payload if self.nc is not None else 1024 * 1024

    async def connect(self) -> None:
        """Connect, retrying for ever; the client library handles later reconnects."""
        tls = client_context(self.config.tls, self._where) if self.config.tls else None
        auth = self.config.auth
        log.info(
            "connecting to NATS %s (auth: %s)",
            ", ".join(redact_url(url) for url in self.config.urls),
            auth.describe() if auth else "none",
        )
        self.nc = await nats.connect(
            servers=list(self.config.urls),
            name=self.name,
            tls=tls,
            **nats_auth_options(auth),
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            connect_timeout=5,
            error_cb=self._error,
            disconnected_cb=self._disconnected,
            reconnected_cb=self._reconnected,
            closed_cb=self._closed,
        )
        self._set_connected(True)
        url = self.nc.connected_url
        log.info("connected to NATS %s", redact_url(url.geturl()) if url else "")

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
                log.warning("could not flush to NATS before closing: %s", exc)
        await self.nc.close()
        self._set_connected(False)

    def _set_connected(self, up: bool) -> None:
        self._connected_gauge.set(1 if up else 0)
        if up:
            self.connected.set()
        else:
            self.connected.clear()

    async def _error(self, exc: Exception) -> None:
        self._errors.inc()
        text = str(exc) or type(exc).__name__
        if "authorization violation" in text.lower() or "authentication" in text.lower():
            auth = self.config.auth
            log.error(
                "NATS refused the credentials of %s (auth: %s): %s",
                self._where,
                auth.describe() if auth else "none configured",
                text,
            )
            return
        explained = explain_tls(exc, self.config.tls)
        if explained is not None:
            log.error("%s: %s", self._where, explained)
            return
        log.warning("NATS: %s", text)

    async def _disconnected(self) -> None:
        if self.connected.is_set() and not self._closing:
            log.warning("disconnected from NATS; the client keeps reconnecting")
        self._set_connected(False)

    async def _reconnected(self) -> None:
        self._reconnects.inc()
        self._set_connected(True)
        log.warning("reconnected to NATS")
        if self._on_reconnect is not None:
            await self._on_reconnect()

    async def _closed(self) -> None:
        self._set_connected(False)


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


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> js_api.StreamInfo:
    """Create the stream if missing; check it, and bring its limits in line, if present."""
    storage = js_api.StorageType.FILE if config.storage == "file" else js_api.StorageType.MEMORY
    wanted = js_api.StreamConfig(
        name=config.stream,
        subjects=[config.subjects],
        storage=storage,
        retention=js_api.RetentionPolicy.LIMITS,
        discard=js_api.DiscardPolicy.OLD,
        max_age=config.stream_max_age,
        max_bytes=config.stream_max_bytes,
        max_msgs_per_subject=config.max_msgs_per_subject,
        num_replicas=config.replicas,
        duplicate_window=min(120.0, config.stream_max_age),
        allow_direct=True,
    )
    try:
        info = await js.stream_info(config.stream)
    except NotFoundError:
        info = await js.add_stream(wanted)
        log.info(
            "created JetStream stream %s for %s (max_age %gs, max_bytes %d, %d per subject)",
            config.stream,
            config.subjects,
            config.stream_max_age,
            config.stream_max_bytes,
            config.max_msgs_per_subject,
        )
        return info
    have = info.config
    subjects = have.subjects or []
    if config.subjects not in subjects and ">" not in subjects:
        raise StreamMismatchError(
            f"stream {config.stream} exists but does not take {config.subjects} "
            f"(its subjects: {', '.join(subjects) or 'none'}); set `stream` to another name "
            "or add the subject to the stream"
        )
    if have.storage != storage:
        raise StreamMismatchError(
            f"stream {config.stream} uses {have.storage} storage, the config asks for "
            f"{config.storage}; storage cannot be changed on an existing stream"
        )
    changes = {}
    for key in ("max_age", "max_bytes", "max_msgs_per_subject", "num_replicas"):
        current, desired = getattr(have, key), getattr(wanted, key)
        if key == "max_age" and current is not None and desired is not None:
            if abs(current - desired) < 0.001:
                continue
        elif current == desired:
            continue
        changes[key] = (current, desired)
    if changes:
        updated = js_api.StreamConfig.from_response(have.as_dict())
        for key, (_, desired) in changes.items():
            setattr(updated, key, desired)
        info = await js.update_stream(updated)
        log.warning(
            "updated stream %s to match the config: %s",
            config.stream,
            ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changes.items()),
        )
    return info
