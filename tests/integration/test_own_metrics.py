"""Each role's own /metrics as Prometheus scrapes it: standard families, series alerts need
from the start, and a backlog that shows while nothing is fetched."""

from __future__ import annotations

import functools
from pathlib import Path

import aiohttp
import nats
from harness import new_receiver, publish_scrape, receiver_config, running, write_config
from prometheus_client.parser import text_string_to_metric_families
from servers import NatsServer, Pushgateway, async_wait_for, free_port, http_request
from test_cli import Daemon
from test_operations import monitored

from prometheus_streams.receiver.breaker import STATES


def _parse(text: str) -> dict[str, float]:
    """`name{labels}` -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            found[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return found


def _scrape(port: int) -> dict[str, float]:
    """A role's /metrics in another process; empty while it does not answer."""
    try:
        status, body = http_request("GET", f"http://127.0.0.1:{port}/metrics")
    except OSError:
        return {}
    return _parse(body.decode()) if status == 200 else {}


async def _ascrape(session: aiohttp.ClientSession, port: int) -> dict[str, float]:
    """A role's /metrics served by this test's own event loop."""
    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        assert resp.status == 200
        return _parse(await resp.text())


async def _no_fetch_waiting(nats_url: str) -> bool:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info("PROMETHEUS", "receiver")
        return not info.num_waiting
    finally:
        await nc.close()


STANDARD = (
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
)


def _has_standard_families(metrics: dict[str, float]) -> None:
    for name in STANDARD:
        assert name in metrics, name
    assert any(k.startswith("python_info{") for k in metrics)
    assert 'python_gc_objects_collected_total{generation="0"}' in metrics


async def test_both_roles_export_standard_families_and_alerted_counters_at_zero(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    poller_port, receiver_port = free_port(), free_port()
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    poller_cfg = write_config(
        tmp_path,
        {
            "identity": "dc1",
            "monitor_port": poller_port,
            "monitor_address": "127.0.0.1",
            "poller_stream": {"urls": nats_server.url},
            # Scraped once a minute: its counters are read before anything happened.
            "jobs": {"node": {"scrape_interval": "60s", "targets": [{"url": dead}]}},
        },
        "poller.yaml",
    )
    receiver_cfg = write_config(
        tmp_path,
        {
            "identity": "central",
            "monitor_port": receiver_port,
            "monitor_address": "127.0.0.1",
            "receiver_stream": {"urls": nats_server.url},
            "push_gateway": {"url": pushgateway.url, "publisher_label": True},
        },
        "receiver.yaml",
    )
    poller = Daemon(tmp_path / "poller.err", "--config", str(poller_cfg), "poller")
    receiver = Daemon(tmp_path / "receiver.err", "--config", str(receiver_cfg), "receiver")
    try:
        await async_wait_for(functools.partial(_scrape, poller_port), message="poller /metrics")
        await async_wait_for(functools.partial(_scrape, receiver_port), message="receiver")
        polled, received = _scrape(poller_port), _scrape(receiver_port)
    finally:
        poller.stop()
        receiver.stop()
    _has_standard_families(polled)
    _has_standard_families(received)
    r = "prometheus_streams_receiver_"
    # docs/alerts.yaml: ReceiverDiscardingMessages rates dropped_total by reason.
    for reason in ("too_old", "rejected", "inconsistent", "type_conflict", "bad_header"):
        assert received[f'{r}dropped_total{{reason="{reason}"}}'] == 0
    for result in ("success", "failed", "rejected"):
        assert received[f'{r}pushes_total{{result="{result}"}}'] == 0
    for reason in ("breaker_open", "pushgateway_unavailable"):
        assert received[f'{r}naks_total{{reason="{reason}"}}'] == 0
    for state in STATES:
        assert f'{r}breaker_transitions_total{{state="{state}"}}' in received
    p = "prometheus_streams_poller_"
    for result in ("success", "refused", "timeout", "http_status", "too_large", "bad_body"):
        assert polled[f'{p}scrapes_total{{poller_job="node",result="{result}"}}'] == 0
    for reason in ("superseded", "too_old", "too_large", "shutdown"):
        assert polled[f'{p}dropped_total{{reason="{reason}"}}'] == 0
    assert polled[f'{p}missed_scrapes_total{{poller_job="node"}}'] == 0


async def test_consumer_pending_and_lag_follow_the_stream_while_paused(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    cfg = receiver_config(tmp_path, nats_server.url, pushgateway.url)
    receiver, registry = new_receiver(cfg)
    port = free_port()
    pending = "prometheus_streams_receiver_consumer_pending"
    lag = 'prometheus_streams_receiver_publisher_lag_seconds{publisher="dc1"}'
    async with (
        running(receiver),
        monitored(receiver, registry, port),
        aiohttp.ClientSession() as session,
    ):

        async def value(name: str) -> float:
            return (await _ascrape(session, port)).get(name, -1)

        async def at_least(name: str, low: float) -> bool:
            return await value(name) >= low

        await async_wait_for(lambda: receiver.ready()[0], message="receiver never ready")
        await publish_scrape(nats_server.url, b"a 1\n", instance="web-0")
        await async_wait_for(lambda: at_least(lag, 0), message="first message never pushed")
        async with session.post(f"http://127.0.0.1:{port}/api/v1/pause") as resp:
            assert resp.status == 200
        # A fetch that was waiting when the pause came would take one message.
        await async_wait_for(
            functools.partial(_no_fetch_waiting, nats_server.url), message="a fetch still waits"
        )
        for i in range(1, 6):
            await publish_scrape(nats_server.url, b"a 1\n", instance=f"web-{i}")
        # Nothing is fetched, yet the backlog shows on /metrics, and the lag keeps growing.
        await async_wait_for(lambda: at_least(pending, 5), message="consumer_pending froze")
        assert await value(pending) == 5
        await async_wait_for(lambda: at_least(lag, 2), message="publisher lag froze")
        async with session.post(f"http://127.0.0.1:{port}/api/v1/resume") as resp:
            assert resp.status == 200

        async def caught_up() -> bool:
            metrics = await _ascrape(session, port)
            return metrics.get(pending) == 0 and metrics.get(lag, 99) < 2

        await async_wait_for(caught_up, message="the backlog was not taken after resuming")


async def test_consumer_pending_follows_the_stream_while_the_breaker_is_open(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    pushgateway.stop()
    cfg = receiver_config(
        tmp_path,
        nats_server.url,
        pushgateway.url,
        push_gateway={
            "url": pushgateway.url,
            "publisher_label": True,
            "breaker_failures": 1,
            "breaker_cooldown": "10m",
        },
    )
    receiver, registry = new_receiver(cfg)
    port = free_port()
    pending = "prometheus_streams_receiver_consumer_pending"
    async with (
        running(receiver),
        monitored(receiver, registry, port),
        aiohttp.ClientSession() as session,
    ):

        async def value(name: str) -> float:
            return (await _ascrape(session, port)).get(name, -1)

        async def breaker_open() -> bool:
            return await value('prometheus_streams_receiver_breaker_state{state="open"}') == 1

        await async_wait_for(lambda: receiver.ready()[0], message="receiver never ready")
        await publish_scrape(nats_server.url, b"a 1\n", instance="web-0")
        await async_wait_for(breaker_open, message="breaker never opened")
        await async_wait_for(
            functools.partial(_no_fetch_waiting, nats_server.url), message="a fetch still waits"
        )
        for i in range(1, 6):
            await publish_scrape(nats_server.url, b"a 1\n", instance=f"web-{i}")

        async def backlog_shows() -> bool:
            return await value(pending) == 5

        await async_wait_for(backlog_shows, message="consumer_pending froze")
