"""The stale-group sweep deletes only our own groups, in time, at a bounded cost —
through real nats-server and Pushgateway."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from harness import TOPIC, metric, new_receiver, publish_scrape, receiver_config, running
from servers import NatsServer, Pushgateway, async_wait_for, http_request

from prometheus_streams.receiver.pushgateway import PushGateway

BODY = b"# TYPE v gauge\nv 1\n"


def _sweep_config(tmp_path: Path, nats_url: str, pushgateway_url: str, **push: Any) -> Any:
    settings = {
        "url": pushgateway_url,
        "publisher_label": True,
        "stale_after": "1s",
        "stale_check_interval": "300ms",
        **push,
    }
    return receiver_config(tmp_path, nats_url, pushgateway_url, push_gateway=settings)


async def _put(pushgateway: Pushgateway, path: str, body: bytes = BODY) -> int:
    status, _ = await asyncio.to_thread(http_request, "PUT", pushgateway.url + path, body)
    return status


def _has_group(pushgateway: Pushgateway, **labels: str) -> bool:
    return labels in pushgateway.group_labels()


async def _sweeps_after(registry: Any, count: int) -> None:
    """Wait until `count` more sweeps have listed the Pushgateway."""
    start = metric(registry, "receiver_stale_sweeps_total")
    await async_wait_for(
        lambda: metric(registry, "receiver_stale_sweeps_total") >= start + count,
        message=f"{count} sweeps did not run",
    )


async def test_foreign_publishers_groups_are_never_deleted(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    # Another deployment on the same Pushgateway, with the same grouping labels.
    foreign = {"job": "node", "instance": "web-9", "publisher": "other-dc"}
    assert await _put(pushgateway, "/metrics/job/node/instance/web-9/publisher/other-dc") == 200
    assert await _put(pushgateway, "/metrics/job/batch/instance/x/publisher/tool") == 200
    await publish_scrape(nats_server.url, BODY, publisher="dc1", instance="gone")
    receiver, rreg = new_receiver(_sweep_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(receiver):
        await async_wait_for(
            lambda: not _has_group(pushgateway, job="node", instance="gone", publisher="dc1"),
            message="our stale group was not deleted",
        )
        sweeps = metric(rreg, "receiver_stale_sweeps_total")
        await async_wait_for(
            lambda: (
                not _has_group(pushgateway, **foreign)
                or metric(rreg, "receiver_stale_sweeps_total") >= sweeps + 4
            ),
            message="neither deleted nor swept 4 more times",
        )
        assert _has_group(pushgateway, **foreign), "another deployment's group was deleted"
        assert receiver.status()["stale_sweep"]["foreign_groups"] == 2
    assert metric(rreg, "receiver_stale_groups_deleted_total") == 1
    assert _has_group(pushgateway, **foreign)
    assert _has_group(pushgateway, job="batch", instance="x", publisher="tool")
    assert metric(rreg, "receiver_stale_foreign_groups") == 2


async def test_listed_publishers_groups_are_deleted(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    assert await _put(pushgateway, "/metrics/job/node/instance/web-9/publisher/old-dc") == 200
    assert await _put(pushgateway, "/metrics/job/node/instance/web-8/publisher/other-dc") == 200
    cfg = _sweep_config(tmp_path, nats_server.url, pushgateway.url, stale_publishers=["old-dc"])
    receiver, rreg = new_receiver(cfg)
    async with running(receiver):
        await async_wait_for(
            lambda: not _has_group(pushgateway, job="node", instance="web-9", publisher="old-dc"),
            message="group of a listed publisher not deleted",
        )
        await _sweeps_after(rreg, 2)
    assert _has_group(pushgateway, job="node", instance="web-8", publisher="other-dc")


async def test_publisher_seen_before_a_restart_is_still_ours(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    await publish_scrape(nats_server.url, BODY, publisher="dc2", instance="old")
    first, freg = new_receiver(
        _sweep_config(tmp_path, nats_server.url, pushgateway.url, stale_after="1h")
    )
    async with running(first):
        await async_wait_for(lambda: metric(freg, "receiver_pushes_total", result="success") == 1)
    assert _has_group(pushgateway, job="node", instance="old", publisher="dc2")
    # The same durable consumer: the scrape is not delivered again, the
    # publisher is known from the stream alone.
    second, sreg = new_receiver(_sweep_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(second):
        await async_wait_for(
            lambda: not _has_group(pushgateway, job="node", instance="old", publisher="dc2"),
            message="group of a publisher seen before the restart not deleted",
        )
    assert metric(sreg, "receiver_received_total") == 0
    assert "dc2" in second.status()["stale_sweep"]["stream_publishers"]


FLOW = """
import asyncio, sys, time
import nats
from prometheus_streams import wire

async def main(url, topic, instances):
    nc = await nats.connect(url)
    js = nc.jetstream()
    n = 0
    while True:
        n += 1
        ms = int(time.time() * 1000)
        scrape = wire.Scrape("dc1", "node", f"busy-{n % instances}", ms, b"v 1\\n")
        subject, payload, headers = wire.encode(topic, scrape)
        await js.publish(subject, payload, headers=headers)
        await asyncio.sleep(0.002)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


@contextlib.asynccontextmanager
async def _steady_flow(nats_url: str, instances: int) -> AsyncIterator[None]:
    """Publish scrapes of the busy targets every few ms while the block runs.

    From a process of its own, so the flow goes on whatever the test's event
    loop is doing, as a datacenter's pollers would.
    """
    flow = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FLOW, nats_url, TOPIC, str(instances)
    )
    try:
        yield
    finally:
        flow.kill()
        await flow.wait()


async def test_stale_group_deleted_in_time_under_steady_flow(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    stale_after, interval = 2.0, 1.0
    cfg = _sweep_config(
        tmp_path,
        nats_server.url,
        pushgateway.url,
        stale_after=f"{stale_after}s",
        stale_check_interval=f"{interval}s",
    )
    receiver, rreg = new_receiver(cfg)
    async with running(receiver):
        await async_wait_for(lambda: receiver.ready()[0])  # the stream is the receiver's
        async with _steady_flow(nats_server.url, 20):
            await async_wait_for(
                lambda: metric(rreg, "receiver_pushes_total", result="success") > 50
            )
            await publish_scrape(nats_server.url, BODY, publisher="dc1", instance="quiet")
            await async_wait_for(
                lambda: _has_group(pushgateway, job="node", instance="quiet", publisher="dc1")
            )
            last_push = time.monotonic()
            # Generous for a shared machine, and far below what waiting for an idle
            # consumer took (it never is idle here).
            await async_wait_for(
                lambda: not _has_group(pushgateway, job="node", instance="quiet", publisher="dc1"),
                timeout=stale_after + interval + 10,
                interval=0.2,
                message="stale group not deleted within stale_after + one sweep (+10 s slack)",
            )
            waited = time.monotonic() - last_push
            busy = metric(rreg, "receiver_pushes_total", result="success")
            # The busy groups stay: they are pushed all the time.
            assert _has_group(pushgateway, job="node", instance="busy-1", publisher="dc1")
    assert busy > 100, "the flow was not steady"
    assert waited > stale_after - 1  # never before its time


async def test_backlog_keeps_groups_whose_newer_scrape_waits(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    """A group pushed long ago but with a newer scrape unfinished in the stream stays."""
    cfg = _sweep_config(tmp_path, nats_server.url, pushgateway.url)
    assert cfg.receiver_stream is not None
    receiver, rreg = new_receiver(cfg)
    async with running(receiver):
        await async_wait_for(lambda: receiver.ready()[0])  # the stream is the receiver's
        await publish_scrape(nats_server.url, BODY, publisher="dc1", instance="t1")
        await async_wait_for(lambda: metric(rreg, "receiver_pushes_total", result="success") == 1)
        receiver.pause("test")  # the newer scrape stays in the stream, unfinished
        await publish_scrape(nats_server.url, BODY, publisher="dc1", instance="t1")
        await async_wait_for(lambda: time.time() - _push_time(pushgateway, "t1") > 1.5)
        floor = await _ack_floor(nats_server.url, cfg.receiver_stream.durable)
        assert await receiver.sweep_stale_groups(floor) == 0
        assert metric(rreg, "receiver_stale_groups_skipped_total", reason="waiting_in_stream") == 1
        receiver.resume("test")
    assert _has_group(pushgateway, job="node", instance="t1", publisher="dc1")


async def _ack_floor(nats_url: str, durable: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info("PROMETHEUS", durable)
        assert info.ack_floor is not None
        return int(info.ack_floor.stream_seq)
    finally:
        await nc.close()


def _push_time(pushgateway: Pushgateway, instance: str) -> float:
    for group in pushgateway.groups():
        if group["labels"].get("instance") == instance:
            return float(group["push_time_seconds"]["metrics"][0]["value"])
    return 0.0


async def test_group_without_a_push_time_is_reported_as_such(
    tmp_path: Path,
    nats_server: NatsServer,
    pushgateway: Pushgateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A push the Pushgateway refuses as inconsistent leaves a group behind
    # with push_time_seconds 0.
    assert await _put(pushgateway, "/metrics/job/node/instance/ok/publisher/dc1") == 200
    nopush = "/metrics/job/node/instance/nopush/publisher/dc1"
    assert await _put(pushgateway, nopush, b"# TYPE v counter\nv 1\n") == 400
    foreign = "/metrics/job/node/instance/nopush/publisher/other-dc"
    assert await _put(pushgateway, foreign, b"# TYPE v counter\nv 1\n") == 400
    assert _has_group(pushgateway, job="node", instance="nopush", publisher="dc1")
    await publish_scrape(nats_server.url, BODY, publisher="dc1", instance="live")
    caplog.set_level(logging.INFO, logger="prometheus_streams")
    cfg = _sweep_config(tmp_path, nats_server.url, pushgateway.url, stale_after="1h")
    receiver, rreg = new_receiver(cfg)
    async with running(receiver):
        await async_wait_for(
            lambda: (
                any("no successful push" in r.getMessage() for r in caplog.records)
                or not _has_group(pushgateway, job="node", instance="nopush", publisher="dc1")
            ),
            message="the group without a push time was neither reported nor deleted",
        )
        assert _has_group(pushgateway, job="node", instance="nopush", publisher="dc1"), (
            "deleted as if its last push were decades old: " + " | ".join(caplog.messages[-3:])
        )
        await _sweeps_after(rreg, 3)
        status = receiver.status()["stale_sweep"]
    assert status["without_push_time"] == [nopush]
    assert metric(rreg, "receiver_stale_groups_without_push_time") == 1
    reports = [r.getMessage() for r in caplog.records if "no successful push" in r.getMessage()]
    assert len(reports) == 1, reports
    assert nopush in reports[0] and "last failed push" in reports[0]
    assert not any(
        "ago" in r.getMessage() and "last push" in r.getMessage() for r in caplog.records
    )
    # Ours and never pushed successfully: gone once stale_after has passed
    # since its last failed push; the other deployment's stays.
    receiver, rreg = new_receiver(_sweep_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(receiver):
        await async_wait_for(
            lambda: not _has_group(pushgateway, job="node", instance="nopush", publisher="dc1"),
            message="our group without a push time was never deleted",
        )
        await _sweeps_after(rreg, 2)
    assert _has_group(pushgateway, job="node", instance="nopush", publisher="other-dc")


async def test_push_times_read_from_the_pushgateway_match_its_groups(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    from prometheus_streams.receiver.stale import PushTimeParser

    odd = 'we"b\\4/x\ny'
    encoded = base64.urlsafe_b64encode(odd.encode()).decode()
    assert await _put(pushgateway, f"/metrics/job/node/instance@base64/{encoded}/publisher/dc1")
    assert await _put(pushgateway, "/metrics/job/node/instance/plain/rack/r1/publisher/dc1")
    expected = {
        tuple(sorted(g["labels"].items())): float(g["push_time_seconds"]["metrics"][0]["value"])
        for g in pushgateway.groups()
    }
    cfg = _sweep_config(tmp_path, nats_server.url, pushgateway.url)
    assert cfg.push_gateway is not None
    gateway = PushGateway(cfg.push_gateway)
    await gateway.start()
    try:
        groups = await gateway.push_times()
    finally:
        await gateway.close()
    assert {tuple(sorted(g.labels.items())): g.pushed for g in groups} == expected
    # Whatever the chunk boundaries, the same answer.
    text = pushgateway.metrics_text().encode()
    for size in (1, 7, 4096):
        parser = PushTimeParser()
        for i in range(0, len(text), size):
            parser.feed(text[i : i + size])
        found = {tuple(sorted(g.labels.items())): g.pushed for g in parser.close()}
        assert found == expected
