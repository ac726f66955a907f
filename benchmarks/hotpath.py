"""The receiver's work per node page, in-process and without network: where its CPU goes.

The drain's ratio depends on a Pushgateway whose CPU per push varies by a
third between identical rounds on a shared machine; these figures do not.
Each is the fastest of several repeats of many calls, in this process.
"""

from __future__ import annotations

import asyncio
import gzip
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry

from benchmarks import clients
from benchmarks.context import NODE_PAGE, NODE_SAMPLES, Context
from prometheus_streams import config, wire
from prometheus_streams.exposition import (
    _strip_final_values,
    body_limits,
    body_shape,
    index_samples,
    strip_final_values,
)
from prometheus_streams.receiver.app import Receiver
from prometheus_streams.receiver.consistency import check_body
from prometheus_streams.receiver.pushgateway import PushResult

TOPIC = "prometheus"
LIMITS = body_limits(config.DEFAULT_MAX_LINE_LENGTH, config.DEFAULT_MAX_LABEL_COUNT)


# As the poller forwards a page: the target's own gzip (level 6, Go's default)
# and the health series as a second member.
PAYLOAD = gzip.compress(NODE_PAGE, 6, mtime=0) + gzip.compress(
    clients.health_lines(NODE_SAMPLES), 1, mtime=0
)


def _message(index: int, client: Any) -> Msg:
    scrape = wire.Scrape("bench", "node", f"t{index}", int(time.time() * 1000), b"")
    subject, _, headers = wire.encode(TOPIC, scrape, payload=b"-")
    reply = f"$JS.ACK.PROMETHEUS.c.1.{index + 1}.{index + 1}.1700000000000000000.0"
    data = bytes(bytearray(PAYLOAD))  # a copy each, as messages arrive: not one hot buffer
    return Msg(_client=client, subject=subject, reply=reply, data=data, headers=headers)


class _NoNats:
    """Takes the acks a Msg publishes."""

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        return None


def _micro(fn: Callable[[], object], number: int) -> float:
    """Microseconds per call: the fastest of five repeats."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def _checks(body: bytes) -> None:
    samples = index_samples(body)
    assert LIMITS.violation(body, samples) is None
    check_body(body, samples)


async def _receiver_per_message(count: int) -> float:
    """CPU microseconds per message through a lane's _handle_batch, pushes answered at once."""
    work = Path(tempfile.mkdtemp(prefix="prometheus-streams-hotpath-"))
    path = work / "receiver.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "identity": "bench",
                "receiver_stream": {"urls": "nats://127.0.0.1:1", "topic": TOPIC},
                "push_gateway": {"url": "http://127.0.0.1:1", "publisher_label": True},
            }
        )
    )
    receiver = Receiver(config.load(str(path)), CollectorRegistry())

    async def answered(path: str, body: bytes) -> PushResult:
        return PushResult(202)

    # Reaching inside on purpose: the push and the stream are what this leaves out.
    receiver.gateway.put = answered  # type: ignore[method-assign]
    receiver.consumer.per_subject = 1
    nc = _NoNats()
    batch = receiver.stream.fetch_batch
    warm = [_message(i, nc) for i in range(batch)]
    await receiver.lanes[0]._handle_batch(warm)  # the shape is known from here on
    msgs = [_message(batch + i, nc) for i in range(count)]
    started = time.process_time()
    for i in range(0, count, batch):
        await receiver.lanes[0]._handle_batch(msgs[i : i + batch])
    await receiver.acks.flush()
    return (time.process_time() - started) / count * 1e6


def hotpath(ctx: Context) -> None:
    """Time the receiver's per-page steps on the node page."""
    p = ctx.profile
    payload = PAYLOAD
    msg = _message(0, _NoNats())
    body = wire.decode(TOPIC, msg.subject, payload, msg.headers, 10 << 20).body
    number = 50 if p.name == "smoke" else 300
    for run in range(p.runs):
        steps = {
            "decode": (
                "decode and inflate a message",
                lambda: wire.decode(TOPIC, msg.subject, payload, msg.headers, 10 << 20),
            ),
            "shape": ("body_shape (values out, SHA-256)", lambda: body_shape(body)),
            "values_out": ("its pass taking values out", lambda: strip_final_values(body)),
            "values_out_regex": (
                "the same pass as a regex (the fallback without C)",
                lambda: _strip_final_values(body),
            ),
            "checks": ("checks of a new shape (index, limits, consistency)", lambda: _checks(body)),
        }
        for key, (label, fn) in steps.items():
            ctx.record("hotpath", f"hotpath_{key}_us", label, "us", _micro(fn, number))
        count = 240 if p.name == "smoke" else 2400
        ctx.record(
            "hotpath",
            "hotpath_receiver_us",
            "receiver per message, known shape, push answered at once",
            "CPU us",
            asyncio.run(_receiver_per_message(count)),
        )
        ctx.log(f"hot path run {run + 1}/{p.runs} done")
