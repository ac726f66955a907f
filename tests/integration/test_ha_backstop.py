"""The receiver's HA backstop and expected publishers, through real nats-server, receiver,
Pushgateway and VictoriaMetrics: two replicas of one publisher publish at once."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import yaml
from harness import (
    TOPIC,
    group_samples,
    metric,
    new_receiver,
    publish_scrape,
    running,
    write_config,
)
from nats.js import JetStreamContext
from servers import NatsServer, Pushgateway, async_wait_for, free_port, http_request
from stores import VictoriaMetricsStore
from test_cli import Daemon, cli
from test_status_page import render

from prometheus_streams import config, wire
from prometheus_streams.monitor import MonitorServer
from prometheus_streams.receiver.app import Receiver

INTERVAL = 0.5  # seconds between the replicas' scrapes
FAILOVER = 3.0  # ha_backstop.failover_timeout


def receiver_data(tmp_path: Path, nats_url: str, pushgateway_url: str, **extra: Any) -> Path:
    data: dict[str, Any] = {
        "identity": "central",
        "receiver_stream": {
            "urls": nats_url,
            "topic": TOPIC,
            "client_id": "central",
            "fetch_batch": 16,
            "ack_wait": "5s",
        },
        "push_gateway": {"url": pushgateway_url, "publisher_label": True, "timeout": "2s"},
        "shutdown_grace": "5s",
        **extra,
    }
    return write_config(tmp_path, data, "receiver.yaml")


def body(replica: str) -> bytes:
    return f'# TYPE demo_sent_by gauge\ndemo_sent_by{{sent_by="{replica}"}} 1\n'.encode()


@asynccontextmanager
async def jetstream(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


_last_ms = 0


def unique_ms() -> int:
    """Now in ms, later than any time this gave before.

    Replicas keep the publisher's Msg-Id (target and scrape time), so two
    scrapes of one target in the same millisecond are one message to the
    stream: the second is dropped as a duplicate. Two publishes back to back
    here fall in one millisecond at times, and b's scrape then never reached
    the receiver (a flaky refusal count).
    """
    global _last_ms
    _last_ms = max(int(time.time() * 1000), _last_ms + 1)
    return _last_ms


async def publish_as(js: JetStreamContext, replica: str | None, publisher: str = "dc1") -> int:
    """One scrape of node/web-1 as HA replica `replica` (None: a plain poller); its time (ms)."""
    ms = unique_ms()
    scrape = wire.Scrape(publisher, "node", "web-1", ms, body(replica or "-"))
    subject, payload, headers = wire.encode(TOPIC, scrape)
    if replica is not None:
        headers[wire.H_REPLICA] = replica
    await js.publish(subject, payload, headers=headers, stream="PROMETHEUS")
    return ms


def sent_by(pushgateway: Pushgateway) -> set[str]:
    """Whose data the Pushgateway's group of dc1's node/web-1 holds."""
    pushed = group_samples(pushgateway.metrics_text(), "node", "web-1")
    return {key.split('sent_by="', 1)[1].split('"', 1)[0] for key in pushed if "sent_by=" in key}


async def ready(receiver: Receiver) -> None:
    await async_wait_for(lambda: receiver.readiness.ok, timeout=60, message="receiver never ready")


async def test_two_replicas_at_once_only_one_reaches_the_outputs_until_it_falls_silent(
    tmp_path: Path,
    nats_server: NatsServer,
    pushgateway: Pushgateway,
    victoria_store: VictoriaMetricsStore,
) -> None:
    path = receiver_data(
        tmp_path,
        nats_server.url,
        pushgateway.url,
        remote_write=[{"url": victoria_store.write_url, "name": "vm", "remote_timeout": "5s"}],
        ha_backstop={"failover_timeout": f"{FAILOVER}s"},
    )
    receiver, registry = new_receiver(config.load(path))
    start = time.time()
    async with running(receiver), jetstream(nats_server.url) as js:
        await ready(receiver)
        await publish_as(js, "a")
        await async_wait_for(lambda: sent_by(pushgateway) == {"a"}, message="a never pushed")
        # Split brain: both replicas publish every interval; b is refused all along.
        seen: set[str] = set()
        last_a = 0
        sent_b: list[int] = []
        while (
            metric(registry, "receiver_ha_refused_total", publisher="dc1", reason="other_replica")
            < 8
        ):
            last_a = await publish_as(js, "a")
            sent_b.append(await publish_as(js, "b"))
            await asyncio.sleep(INTERVAL)
            seen |= sent_by(pushgateway)
            assert seen == {"a"}, "b's data reached the Pushgateway"
            assert time.time() - start < 120, "the refusals were never counted"
        assert seen == {"a"}
        assert metric(registry, "receiver_ha_accepted_replica", publisher="dc1", replica="a") == 1
        # a falls silent: b is accepted once a was silent for failover_timeout.
        while sent_by(pushgateway) != {"b"}:
            sent_b.append(await publish_as(js, "b"))
            await asyncio.sleep(INTERVAL)
            assert time.time() * 1000 - last_a < 60_000, "b was never accepted"
        # Not before a was silent for failover_timeout.
        assert time.time() * 1000 > last_a + FAILOVER * 1000
        assert metric(registry, "receiver_ha_replica_switches_total", publisher="dc1") == 1
        assert metric(registry, "receiver_ha_accepted_replica", publisher="dc1", replica="b") == 1
        # A plain poller (no replica header) is not the backstop's business.
        await publish_as(js, None, publisher="dc2")
        await async_wait_for(
            lambda: (
                {"job": "node", "instance": "web-1", "publisher": "dc2"}
                in pushgateway.group_labels()
            ),
            message="the plain poller's scrape was held back",
        )
        # A replica name no label could hold is bad input: terminated and counted.
        scrape = wire.Scrape("dc1", "node", "web-1", unique_ms(), body("c"))
        subject, payload, headers = wire.encode(TOPIC, scrape)
        await js.publish(
            subject, payload, headers={**headers, wire.H_REPLICA: "c" * 300}, stream="PROMETHEUS"
        )
        await async_wait_for(
            lambda: metric(registry, "receiver_dropped_total", reason="bad_header") >= 1,
            message="the bad replica header was not counted",
        )
        # So is a lease term that is no positive number.
        scrape = wire.Scrape("dc1", "node", "web-1", unique_ms(), body("b"))
        subject, payload, headers = wire.encode(TOPIC, scrape)
        bad_term = {**headers, wire.H_REPLICA: "b", wire.H_TERM: "-3"}
        await js.publish(subject, payload, headers=bad_term, stream="PROMETHEUS")
        await async_wait_for(
            lambda: metric(registry, "receiver_dropped_total", reason="bad_header") >= 2,
            message="the bad term header was not counted",
        )
        # The store got a's scrapes, then b's, never both for one stretch of time.
        found: dict[str, list[int]] = {}

        async def both_in_store() -> bool:
            found.clear()
            for labels, points in (await victoria_store.samples("demo_sent_by", start)).items():
                found.setdefault(dict(labels)["sent_by"], []).extend(t for t, _ in points)
            return "a" in found and "b" in found

        await async_wait_for(both_in_store, timeout=60, message="the store lacks a or b")
        status = receiver.status()
        monitor = MonitorServer(registry, "127.0.0.1", 0, receiver)
        await monitor.start()
        try:
            url = f"http://127.0.0.1:{monitor.bound_port}/"
            dom = await asyncio.to_thread(render, url, tmp_path / "chromium", 3000)
        finally:
            await monitor.stop()
    section = dom.split('id="ha-section"', 1)[1].split("</section>", 1)[0]
    assert "hidden" not in section.split(">", 1)[0]
    assert "<td>dc1</td><td>b</td>" in section
    assert max(found["a"]) + FAILOVER * 1000 < min(found["b"]), found
    # Counted once per message although two outputs consumed it.
    refused = metric(registry, "receiver_ha_refused_total", publisher="dc1", reason="other_replica")
    assert refused == len([t for t in sent_b if t <= last_a + FAILOVER * 1000])
    [row] = [r for r in status["ha_backstop"] if r["publisher"] == "dc1"]
    assert row["replica"] == "b" and row["switches"] == 1


async def test_required_publisher_missing_is_flagged_optional_shown_unexpected_shown(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    interval = 1.0
    path = receiver_data(
        tmp_path,
        nats_server.url,
        pushgateway.url,
        expected_publishers=["dc1", "dc-gone", {"name": "dc-lab", "optional": True}],
        publisher_stale_after=f"{2 * interval}s",
    )
    receiver, registry = new_receiver(config.load(path))
    monitor = MonitorServer(registry, "127.0.0.1", 0, receiver)

    def reporting(name: str, optional: str = "false") -> float | None:
        return registry.get_sample_value(
            "prometheus_streams_receiver_expected_publisher_reporting",
            {"publisher": name, "optional": optional},
        )

    async def pollers() -> None:
        """dc1 (expected) and dc-extra (not) report every interval; dc-gone never does."""
        while True:
            await publish_scrape(nats_server.url, b"demo 1\n", publisher="dc1")
            await publish_scrape(nats_server.url, b"demo 1\n", publisher="dc-extra")
            await asyncio.sleep(interval)

    async with running(receiver):
        await ready(receiver)
        started = time.monotonic()
        await async_wait_for(lambda: reporting("dc-gone") == 0, message="dc-gone not flagged")
        # The required publisher that never reports is flagged within two intervals.
        assert time.monotonic() - started <= 2 * interval
        publishing = asyncio.create_task(pollers())
        await monitor.start()
        try:
            await async_wait_for(lambda: reporting("dc1") == 1, message="dc1 never reported")
            assert reporting("dc-gone") == 0
            assert reporting("dc-lab", "true") == 0
            rows = {r["publisher"]: r["state"] for r in receiver.status()["expected_publishers"]}
            assert rows == {
                "dc1": "reporting",
                "dc-gone": "missing",
                "dc-lab": "missing (optional)",
                "dc-extra": "unexpected",
            }
            assert metric(registry, "receiver_unexpected_publishers") == 1
            url = f"http://127.0.0.1:{monitor.bound_port}/"
            dom = await asyncio.to_thread(render, url, tmp_path / "chromium", 3000)
            # A reload takes a new list: dc-gone is no longer expected.
            receiver.reload(
                config.load(
                    receiver_data(
                        tmp_path,
                        nats_server.url,
                        pushgateway.url,
                        expected_publishers=["dc1"],
                        publisher_stale_after="1h",
                    )
                )
            )
            assert reporting("dc-gone") is None
            assert [r["publisher"] for r in receiver.status()["expected_publishers"]] == [
                "dc1",
                "dc-extra",
            ]
        finally:
            publishing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publishing
            await monitor.stop()
    section = dom.split('id="expected-section"', 1)[1].split("</section>", 1)[0]
    assert "hidden" not in section.split(">", 1)[0]
    assert '<td class="bad">missing</td>' in section
    assert '<td class="muted">missing (optional)</td>' in section
    assert '<td class="good">reporting</td>' in section
    assert '<td class="warn">unexpected</td>' in section


async def test_check_config_shows_the_list_and_sighup_takes_a_new_one(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    port = free_port()
    common = {"monitor_port": port, "monitor_address": "127.0.0.1", "publisher_stale_after": "1h"}
    path = receiver_data(
        tmp_path,
        nats_server.url,
        pushgateway.url,
        expected_publishers=["dc1", {"name": "dc-gone", "optional": True}],
        **common,
    )
    shown = cli("check-config", "--config", str(path))
    assert shown.returncode == 0, shown.stderr
    printed = yaml.safe_load(shown.stdout)["publishers"]
    assert printed["expected_publishers"] == [
        {"name": "dc1", "optional": False},
        {"name": "dc-gone", "optional": True},
    ]
    assert printed["ha_backstop"] == {
        "enabled": True,
        "failover_timeout_seconds": 30.0,
        "shared": True,
    }
    receiver = Daemon(tmp_path / "receiver.err", "--config", str(path), "receiver")
    metrics_url = f"http://127.0.0.1:{port}/metrics"

    def exposed() -> str:
        try:
            status, text = http_request("GET", metrics_url)
        except OSError:  # not listening yet
            return ""
        return text.decode() if status == 200 else ""

    def line(publisher: str, optional: str) -> str:
        return (
            "prometheus_streams_receiver_expected_publisher_reporting"
            f'{{optional="{optional}",publisher="{publisher}"}}'
        )

    try:
        await publish_scrape(nats_server.url, b"demo 1\n", publisher="dc1")
        await async_wait_for(
            lambda: line("dc1", "false") + " 1.0" in exposed(), timeout=60, message="dc1 unseen"
        )
        assert line("dc-gone", "true") + " 0.0" in exposed()
        receiver_data(
            tmp_path,
            nats_server.url,
            pushgateway.url,
            expected_publishers=["dc1", "dc-new"],
            **common,
        )
        receiver.proc.send_signal(signal.SIGHUP)
        await async_wait_for(
            lambda: line("dc-new", "false") + " 0.0" in exposed(), timeout=60, message="no reload"
        )
        assert line("dc-gone", "true") not in exposed()
        assert line("dc1", "false") + " 1.0" in exposed()
    finally:
        code, log = receiver.stop()
    assert code == 0, log[-2000:]
