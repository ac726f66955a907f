"""A scrape published by its own task: acked by a callback, expired when no ack comes."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from prometheus_client import CollectorRegistry
from servers import NatsServer

from prometheus_streams import wire
from prometheus_streams.config import StreamConfig
from prometheus_streams.poller import outbox as outbox_module
from prometheus_streams.poller.metrics import PollerMetrics
from prometheus_streams.poller.outbox import Outbox
from prometheus_streams.runtime import Readiness
from prometheus_streams.service import Supervisor
from prometheus_streams.transport import Connection


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def _until(condition: object, what: str, bound: float = 30.0) -> None:
    deadline = time.monotonic() + bound
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_an_unanswered_direct_publish_expires_and_a_worker_publishes_it_again(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "PUBLISH_TIMEOUT", 0.5)
    monkeypatch.setattr(outbox_module, "EXPIRE_INTERVAL", 0.1)
    admin = await nats.connect(nats_server.url)
    await admin.jetstream().add_stream(name="DIRECT", subjects=["direct.>"])
    # The stream refuses a publish expecting another stream by name, and that
    # refusal never reaches the ack (nats-py raises it inside its reply callback):
    # a publish that is never answered, from a real server.
    wrong = StreamConfig((nats_server.url,), "direct", "OTHER", "poller", "durable")
    right = StreamConfig((nats_server.url,), "direct", "DIRECT", "poller", "durable")
    registry = CollectorRegistry()
    conn = Connection(wrong, "poller_stream", "test", registry)
    readiness = Readiness(conn)
    box = Outbox(conn, wrong, PollerMetrics(registry), readiness, 0.0)
    supervisor = Supervisor("test")
    try:
        await conn.connect()
        readiness.stream_checked = True
        box.start(supervisor, workers=2)
        scrape = wire.Scrape("p", "job", "host:9100", int(time.time() * 1000), b"")
        await box.send(scrape, wire.encode("direct", scrape, payload=b"x")[1])
        assert len(box._direct) == 1 and not len(box)  # sent by the caller, no worker
        errors = "prometheus_streams_poller_publish_errors_total"
        await _until(
            lambda: _value(registry, errors, reason="TimeoutError") >= 1, "the publish expired"
        )
        assert not box._direct
        box.stream = right  # the workers' next try is answered
        published = "prometheus_streams_poller_published_total"
        await _until(lambda: _value(registry, published) == 1, "published by a worker")
        info = await admin.jetstream().stream_info("DIRECT")
        assert info.state.messages == 1
        # With nothing waiting, the next scrape goes out directly and is acked.
        later = wire.Scrape("p", "job", "host:9100", scrape.scrape_time_ms + 1000, b"")
        await box.send(later, b"y")
        await _until(lambda: _value(registry, published) == 2, "the second acked")
        assert not box._direct and not len(box)
    finally:
        await supervisor.cancel_all()
        await conn.close()
        await admin.close()
