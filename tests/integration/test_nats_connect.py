"""The first connect is ours: bounded attempts, backoff, quiet logs, and figures per connection."""

from __future__ import annotations

import asyncio
import logging
import re
import urllib.error
from pathlib import Path
from typing import Any

import pytest
from harness import group_samples, new_poller, poller_config, running, sample, write_config
from prometheus_client.parser import text_string_to_metric_families
from servers import NatsServer, Pushgateway, Target, async_wait_for, free_port, http_request
from test_cli import Daemon
from testca import TestCA, manual_tls, nats_tls_block

from prometheus_streams.monitor import MonitorServer

REFUSED = "server's certificate was not accepted"
ERRORS = "prometheus_streams_nats_errors_total"
CONNECTED = "prometheus_streams_nats_connected"
RECONNECTS = "prometheus_streams_nats_reconnects_total"


def _nats_with_server_cert(
    directory: Path, issuer: TestCA, clients: TestCA, port: int
) -> NatsServer:
    """nats-server on `port` whose own certificate `issuer` signed; it trusts `clients`."""
    cert = issuer.issue("nats-server", dns=("localhost",), ips=("127.0.0.1",))
    block = nats_tls_block(clients.ca_file, cert.cert_file, cert.key_file)
    return NatsServer(directory, port=port, extra_config=block)


def _samples(port: int, name: str) -> dict[str, float]:
    """connection label -> value of one metric, read from the real /metrics endpoint."""
    try:
        status, body = http_request("GET", f"http://127.0.0.1:{port}/metrics")
    except (OSError, urllib.error.URLError):
        return {}  # the process is still starting
    assert status == 200
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == name:
                found[s.labels.get("connection", "")] = s.value
    return found


async def _served(port: int, name: str) -> dict[str, float]:
    """_samples off the event loop, for a monitor served by this very loop."""
    return await asyncio.to_thread(_samples, port, name)


def _first_lines(log_text: str, needle: str) -> list[str]:
    """Log lines with `needle` that are not the once-a-minute summaries."""
    return [
        line for line in log_text.splitlines() if needle in line and "more failures" not in line
    ]


async def test_roles_connect_on_their_own_once_the_server_certificate_is_fixed(
    tmp_path: Path, pushgateway: Pushgateway, target: Target
) -> None:
    ca = TestCA(tmp_path / "ca")
    stranger = TestCA(tmp_path / "stranger", name="Some Other CA")
    port = free_port()
    poller_port, receiver_port = free_port(), free_port()
    url = f"tls://127.0.0.1:{port}"
    poller_cfg = write_config(
        tmp_path,
        {
            "identity": "dc1",
            "scrape_interval": "500ms",
            "monitor_port": poller_port,
            "monitor_address": "127.0.0.1",
            "tls": manual_tls(ca, "dc1"),
            "poller_stream": {"urls": url},
            "jobs": {"node": {"targets": [{"name": "web-1", "url": target.url}]}},
        },
        "poller.yaml",
    )
    receiver_cfg = write_config(
        tmp_path,
        {
            "identity": "central",
            "monitor_port": receiver_port,
            "monitor_address": "127.0.0.1",
            "receiver_stream": {
                "urls": url,
                "client_id": "central",
                "tls": manual_tls(ca, "central"),
            },
            "push_gateway": {"url": pushgateway.url, "publisher_label": True},
        },
        "receiver.yaml",
    )
    wrong = _nats_with_server_cert(tmp_path / "wrong", stranger, ca, port)
    right = _nats_with_server_cert(tmp_path / "right", ca, ca, port)
    wrong.start()
    poller = Daemon(tmp_path / "poller.err", "--config", str(poller_cfg), "poller")
    receiver = Daemon(tmp_path / "receiver.err", "--config", str(receiver_cfg), "receiver")
    daemons = ((poller, poller_port), (receiver, receiver_port))
    try:
        for daemon, monitor in daemons:
            # Several attempts refused, each one counted, none of them hanging.
            def retried(monitor_port: int = monitor) -> bool:
                return sum(_samples(monitor_port, ERRORS).values()) >= 3

            await async_wait_for(
                retried,
                timeout=60,
                message=f"{daemon.log_path}: no repeated connect attempts",
            )
            status, body = http_request("GET", f"http://127.0.0.1:{monitor}/-/ready")
            assert status == 503
            assert REFUSED in body.decode()
        await asyncio.to_thread(wrong.stop)
        await asyncio.to_thread(right.start)
        try:
            value = await async_wait_for(
                lambda: group_samples(pushgateway.metrics_text(), "node", "web-1").get(
                    'test_requests_total{code="200",publisher="dc1"}'
                ),
                timeout=90,
                message="nothing reached the Pushgateway after the certificate was fixed\n"
                f"{poller.log()}\n{receiver.log()}",
            )
            for _, monitor in daemons:
                status, _ = http_request("GET", f"http://127.0.0.1:{monitor}/-/ready")
                assert status == 200
                assert _samples(monitor, CONNECTED) == {"stream": 1}
        finally:
            poller_rc, poller_log = poller.stop()
            receiver_rc, receiver_log = receiver.stop()
            right.stop()
    finally:
        for daemon, _ in daemons:
            daemon.stop()
        wrong.stop()
    assert value == 42
    assert poller_rc == 0 and receiver_rc == 0
    for text in (poller_log, receiver_log):
        # The refusal is told once, not once per attempt; the recovery once too.
        refusals = _first_lines(text, REFUSED)
        assert len(refusals) == 1, refusals
        assert "NATS (stream)" in refusals[0]
        assert re.search(r"NATS \(stream\): connected to \S+ after \d+ attempts", text), text


async def test_fixing_the_clients_ca_file_needs_no_restart(
    tmp_path: Path, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    ca = TestCA(tmp_path / "ca")
    stranger = TestCA(tmp_path / "stranger", name="Some Other CA")
    tls = manual_tls(ca, "dc1")
    trusted = tmp_path / "trusted-ca.pem"
    trusted.write_bytes(stranger.ca_file.read_bytes())  # the wrong CA, at first
    tls["ca"] = str(trusted)
    with _nats_with_server_cert(tmp_path / "nats", ca, ca, free_port()) as nats:
        jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
        url = f"tls://127.0.0.1:{nats.port}"
        poller, registry = new_poller(poller_config(tmp_path, url, jobs, tls=tls))
        with caplog.at_level(logging.INFO):
            async with running(poller):
                await async_wait_for(
                    lambda: sample(registry, ERRORS, connection="stream") >= 2,
                    message="the poller should keep trying",
                )
                assert REFUSED in poller.ready()[1]
                trusted.write_bytes(ca.ca_file.read_bytes())
                await async_wait_for(
                    lambda: poller.ready()[0],
                    timeout=60,
                    message="the poller did not pick up the fixed CA file",
                )
                assert sample(registry, CONNECTED, connection="stream") == 1
    assert any("after" in r.getMessage() and "attempts" in r.getMessage() for r in caplog.records)


async def test_unreachable_management_brokers_are_named_and_not_logged_per_attempt(
    tmp_path: Path, nats_server: NatsServer, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    closed = f"nats://127.0.0.1:{free_port()}"
    jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
    cfg = poller_config(tmp_path, nats_server.url, jobs, management={"brokers": closed})
    poller, registry = new_poller(cfg)
    monitor = MonitorServer(registry, "127.0.0.1", 0, poller)
    with caplog.at_level(logging.DEBUG):
        async with running(poller):
            await monitor.start()
            try:

                async def failed_often() -> bool:
                    return (await _served(monitor.bound_port, ERRORS)).get("management", 0) >= 6

                await async_wait_for(
                    failed_often,
                    timeout=60,
                    message="the management connection's failures are not on /metrics",
                )
                assert poller.ready()[0], "the stream connection is what readiness needs"
                connected = await _served(monitor.bound_port, CONNECTED)
            finally:
                await monitor.stop()
    assert connected == {"stream": 1, "management": 0}
    failures = [
        r
        for r in caplog.records
        if r.levelno >= logging.INFO
        and ("Connect call failed" in r.getMessage() or "Errno 111" in r.getMessage())
    ]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert failures[0].getMessage().startswith("NATS (management): ")


async def test_management_connection_figures_are_on_the_roles_metrics(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    backplane = NatsServer(tmp_path / "backplane")
    backplane.start()
    try:
        jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
        extra: dict[str, Any] = {"management": {"brokers": backplane.url}}
        poller, registry = new_poller(poller_config(tmp_path, nats_server.url, jobs, **extra))
        monitor = MonitorServer(registry, "127.0.0.1", 0, poller)
        async with running(poller):
            await monitor.start()
            try:

                async def both_up() -> bool:
                    connected = await _served(monitor.bound_port, CONNECTED)
                    return connected == {"stream": 1, "management": 1}

                async def management_reconnected() -> bool:
                    reconnects = await _served(monitor.bound_port, RECONNECTS)
                    return reconnects == {"stream": 0, "management": 1}

                await async_wait_for(both_up, message="both connections should be up on /metrics")
                await asyncio.to_thread(backplane.restart)
                await async_wait_for(
                    management_reconnected,
                    timeout=60,
                    message="the management reconnect should be counted apart",
                )
                await async_wait_for(both_up, message="management should be back on /metrics")
            finally:
                await monitor.stop()
    finally:
        backplane.stop()
