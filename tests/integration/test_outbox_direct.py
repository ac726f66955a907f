"""A scrape published by its own task: acked by a callback, expired when no ack comes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import nats
import pytest
from nats.js import JetStreamContext
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


@dataclass
class Direct:
    """An outbox publishing to stream DIRECT, connected, its stream checked, and around it."""

    box: Outbox
    conn: Connection
    registry: CollectorRegistry
    js: JetStreamContext  # another client's, to look at the stream
    supervisor: Supervisor

    def value(self, name: str, **labels: str) -> float:
        return _value(self.registry, f"prometheus_streams_poller_{name}", **labels)

    async def stored(self) -> list[bytes]:
        """The bodies of the messages in stream DIRECT, in order."""
        info = await self.js.stream_info("DIRECT")
        return [
            (await self.js.get_msg("DIRECT", seq=seq)).data or b""
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]


@asynccontextmanager
async def direct_outbox(nats_server: NatsServer) -> AsyncIterator[Direct]:
    admin = await nats.connect(nats_server.url)
    js = admin.jetstream()
    await js.add_stream(name="DIRECT", subjects=["direct.>"])
    registry = CollectorRegistry()
    stream = StreamConfig((nats_server.url,), "direct", "DIRECT", "poller", "durable")
    conn = Connection(stream, "poller_stream", "test", registry)
    readiness = Readiness(conn)
    box = Outbox(conn, stream, PollerMetrics(registry), readiness, 0.0)
    supervisor = Supervisor("test")
    try:
        await conn.connect()
        readiness.stream_checked = True
        yield Direct(box, conn, registry, js, supervisor)
    finally:
        await supervisor.cancel_all()
        await conn.close()
        await admin.close()


def _scrape(offset_ms: int = 0) -> wire.Scrape:
    return wire.Scrape("p", "job", "host:9100", int(time.time() * 1000) + offset_ms, b"")


async def test_an_unanswered_direct_publish_expires_and_a_worker_publishes_it_again(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "PUBLISH_TIMEOUT", 0.5)
    monkeypatch.setattr(outbox_module, "EXPIRE_INTERVAL", 0.1)
    async with direct_outbox(nats_server) as d:
        box, right = d.box, d.box.stream
        # The stream refuses a publish expecting another stream by name, and that
        # refusal never reaches the ack (nats-py raises it inside its reply callback):
        # a publish that is never answered, from a real server.
        box.stream = StreamConfig((nats_server.url,), "direct", "OTHER", "poller", "durable")
        box.start(d.supervisor, workers=2)
        scrape = _scrape()
        await box.send(scrape, wire.encode("direct", scrape, payload=b"x")[1])
        assert len(box._direct) == 1 and not len(box)  # sent by the caller, no worker
        await _until(
            lambda: d.value("publish_errors_total", reason="TimeoutError") >= 1,
            "the publish expired",
        )
        assert not box._direct
        box.stream = right  # the workers' next try is answered
        await _until(lambda: d.value("published_total") == 1, "published by a worker")
        assert len(await d.stored()) == 1
        # With nothing waiting, the next scrape goes out directly and is acked.
        later = wire.Scrape("p", "job", "host:9100", scrape.scrape_time_ms + 1000, b"")
        await box.send(later, b"y")
        await _until(lambda: d.value("published_total") == 2, "the second acked")
        assert not box._direct and not len(box)


async def test_a_page_that_would_fill_the_write_buffer_goes_to_a_worker(
    nats_server: NatsServer,
) -> None:
    """Sent by the scrape's task, such a page made nats-py flush by force: the task
    waited for the socket to drain, and a cancellation then was swallowed."""
    async with direct_outbox(nats_server) as d:
        assert d.conn.write_room() > 1_000_000  # nats-py's 2 MiB, nothing queued
        assert d.conn.nc is not None
        d.conn.nc._max_pending_size = 10_000  # as if large pages were queued in this turn
        await d.box.send(_scrape(), b"z" * 20_000)
        assert not d.box._direct and len(d.box) == 1  # queued for a worker, not sent here
        d.box.start(d.supervisor, workers=1)
        await _until(lambda: d.value("published_total") == 1, "published by a worker")
        assert await d.stored() == [b"z" * 20_000]


async def test_a_direct_publish_cancelled_midway_is_left_to_a_worker(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scrape's task cancelled inside the publish (a reload, the exit): its scrape is
    queued, and the outbox does not count it in flight for ever (flush would wait)."""
    entered = asyncio.Event()

    async def stuck(*args: object) -> None:
        # Fake: the socket does not drain, which a real server here cannot show.
        entered.set()
        await asyncio.Event().wait()

    async with direct_outbox(nats_server) as d:
        real_send = d.box._send
        monkeypatch.setattr(d.box, "_send", stuck)
        task = asyncio.ensure_future(d.box.send(_scrape(), b"x"))
        await asyncio.wait_for(entered.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert d.box._in_flight == 0 and len(d.box) == 1
        monkeypatch.setattr(d.box, "_send", real_send)
        d.box.start(d.supervisor, workers=1)
        await d.box.flush(30.0)
        assert d.value("published_total") == 1
        assert d.value("dropped_total", reason="shutdown") == 0
        assert await d.stored() == [b"x"]


async def test_a_failed_scrape_is_not_published_after_a_newer_one_of_its_target(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scrape N goes unanswered, N+1 of the same target is sent and stored meanwhile:
    N must not follow it into the stream (it was: two messages, the older last)."""
    monkeypatch.setattr(outbox_module, "PUBLISH_TIMEOUT", 0.5)
    monkeypatch.setattr(outbox_module, "EXPIRE_INTERVAL", 0.1)
    async with direct_outbox(nats_server) as d:
        right = d.box.stream
        d.box.start(d.supervisor, workers=2)
        # Expecting another stream by name: never answered (see the first test).
        d.box.stream = StreamConfig((nats_server.url,), "direct", "OTHER", "poller", "durable")
        await d.box.send(_scrape(), b"older")
        d.box.stream = right
        await d.box.send(_scrape(1000), b"newer")
        await _until(lambda: d.value("published_total") == 1, "the newer scrape acked")
        await _until(
            lambda: d.value("publish_errors_total", reason="TimeoutError") >= 1,
            "the older expired",
        )
        await d.box.flush(30.0)
        assert d.value("dropped_total", reason="superseded") == 1
        assert await d.stored() == [b"newer"]
