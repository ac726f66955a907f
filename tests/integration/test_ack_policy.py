"""The receiver's one ack policy: NATS refusing an ack, nak, term or progress note never raises."""

from __future__ import annotations

import logging

import nats
import pytest
from harness import metric
from nats.aio.msg import Msg
from nats.js import api as js_api
from prometheus_client import CollectorRegistry
from servers import NatsServer

from prometheus_streams.receiver.acks import Acks
from prometheus_streams.receiver.metrics import ReceiverMetrics
from prometheus_streams.receiver.output import failed, retry, skipped
from prometheus_streams.service import Supervisor


async def _fetched_then_closed(url: str, count: int) -> list[Msg]:
    """Messages fetched from a real consumer whose connection is closed since."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="ACKS", subjects=["acks.>"])
    for i in range(count):
        await js.publish(f"acks.{i}", b"x")
    sub = await js.pull_subscribe(
        "acks.>",
        durable="acks",
        config=js_api.ConsumerConfig(ack_policy=js_api.AckPolicy.EXPLICIT),
    )
    msgs = await sub.fetch(count, timeout=10)
    await nc.close()
    return msgs


@pytest.mark.asyncio
async def test_ack_errors_are_logged_and_counted_never_raised(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    msgs = await _fetched_then_closed(nats_server.url, 7)
    registry = CollectorRegistry()
    supervisor = Supervisor("test")
    errors: list[str] = []
    acks = Acks(supervisor, ReceiverMetrics(registry), errors.append)
    caplog.set_level(logging.WARNING)

    await acks.settle(msgs[0], skipped("superseded"))
    await acks.settle(msgs[1], retry("pushgateway_unavailable", 1.0, "push failed"))
    await acks.settle(msgs[2], failed("rejected", "refused"))
    await acks.in_progress(msgs[3])
    await acks.give_back([msgs[4]])
    acks.ack_soon(msgs[5])
    acks.ack_soon(msgs[6])
    await acks.flush()

    assert metric(registry, "receiver_ack_errors_total", action="ack") == 3
    assert metric(registry, "receiver_ack_errors_total", action="nak") == 2
    assert metric(registry, "receiver_ack_errors_total", action="term") == 1
    assert metric(registry, "receiver_ack_errors_total", action="in_progress") == 1
    # The outcomes are counted as before, whatever NATS said.
    assert metric(registry, "receiver_dropped_total", reason="superseded") == 1
    assert metric(registry, "receiver_dropped_total", reason="rejected") == 1
    assert metric(registry, "receiver_naks_total", reason="pushgateway_unavailable") == 1
    assert "cannot term message on acks.2" in caplog.text
    # The background flush ran under the supervisor and did not fail it.
    supervisor.raise_if_failed()
