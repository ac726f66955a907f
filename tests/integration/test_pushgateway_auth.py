"""Pushing over HTTPS with a custom CA, basic auth and a bearer token."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from authkit import SecurePushgateway, TestCA
from harness import metric, new_receiver, publish_scrape, running, write_config
from servers import NatsServer, async_wait_for

from prometheus_streams import config

PASSWORD = "pgw-pass-5"  # noqa: S105 - a test password for a throwaway server


@pytest.fixture
def test_ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "ca")


@pytest.fixture
def secure_pushgateway(tmp_path: Path, test_ca: TestCA) -> Iterator[SecurePushgateway]:
    gateway = SecurePushgateway(tmp_path / "pgw", test_ca, {"receiver": PASSWORD})
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def _receiver(tmp_path: Path, nats_url: str, push: dict[str, Any]) -> config.Config:
    data = {
        "identity": "central",
        "receiver_stream": {"urls": nats_url, "topic": "prometheus", "client_id": "receiver"},
        "push_gateway": {"publisher_label": True, "timeout": "2s", **push},
        "shutdown_grace": "5s",
    }
    return config.load(write_config(tmp_path, data, "receiver-secure.yaml"))


def _password_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "pgw-password"
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


async def test_https_with_custom_ca_and_basic_auth_pushes(
    tmp_path: Path, nats_server: NatsServer, secure_pushgateway: SecurePushgateway, test_ca: TestCA
) -> None:
    assert secure_pushgateway.status_without_credentials() == 401
    push = {
        "url": secure_pushgateway.url,
        "ca": str(test_ca.ca_file),
        "username": "receiver",
        "password_file": _password_file(tmp_path, PASSWORD),
    }
    receiver, rreg = new_receiver(_receiver(tmp_path, nats_server.url, push))
    await publish_scrape(nats_server.url, b"secure_metric 7\n")
    async with running(receiver):
        await async_wait_for(
            lambda: (
                {"job": "node", "instance": "web-1", "publisher": "dc1"}
                in secure_pushgateway.group_labels()
            ),
            message="nothing reached the HTTPS Pushgateway",
        )
    assert 'secure_metric{instance="web-1",job="node",publisher="dc1"} 7' in (
        secure_pushgateway.metrics_text()
    )
    assert metric(rreg, "receiver_pushes_total", result="success") == 1


async def test_wrong_password_keeps_the_message_and_is_never_logged(
    tmp_path: Path,
    nats_server: NatsServer,
    secure_pushgateway: SecurePushgateway,
    test_ca: TestCA,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    push = {
        "url": secure_pushgateway.url,
        "ca": str(test_ca.ca_file),
        "username": "receiver",
        "password": "not-the-password-4",
    }
    receiver, rreg = new_receiver(_receiver(tmp_path, nats_server.url, push))
    await publish_scrape(nats_server.url, b"secure_metric 7\n")
    async with running(receiver):
        await async_wait_for(
            lambda: metric(rreg, "receiver_pushes_total", result="failed") >= 1,
            message="a 401 was not counted as a failed push",
        )
        info = await receiver.conn.js.consumer_info("PROMETHEUS", "receiver")
    # Handed back for redelivery, neither acked nor terminated.
    assert info.num_ack_pending + info.num_pending + info.num_redelivered >= 1
    assert metric(rreg, "receiver_dropped_total", reason="rejected") == 0
    assert "401" in receiver.last_error
    assert secure_pushgateway.group_labels() == []
    assert not any("not-the-password-4" in r.getMessage() for r in caplog.records)
    assert "not-the-password-4" not in receiver.last_error


async def test_certificate_from_an_unknown_ca_is_refused(
    tmp_path: Path, nats_server: NatsServer, secure_pushgateway: SecurePushgateway
) -> None:
    other_ca = TestCA(tmp_path / "other-ca", "Other CA")
    push = {
        "url": secure_pushgateway.url,
        "ca": str(other_ca.ca_file),
        "username": "receiver",
        "password": PASSWORD,
    }
    receiver, rreg = new_receiver(_receiver(tmp_path, nats_server.url, push))
    await publish_scrape(nats_server.url, b"secure_metric 7\n")
    async with running(receiver):
        await async_wait_for(
            lambda: metric(rreg, "receiver_pushes_total", result="failed") >= 1,
            message="an untrusted certificate was not refused",
        )
    assert "certificate verify failed" in receiver.last_error
    assert secure_pushgateway.group_labels() == []


async def test_bearer_token_is_sent_over_https(
    tmp_path: Path, nats_server: NatsServer, test_ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pushgateway 1.5.1's web config (exporter-toolkit) knows basic auth only, no
    # bearer tokens, so a fake HTTPS peer shows what the receiver sends.
    seen: list[str] = []

    async def put(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_put("/{tail:.*}", put)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    server_files = test_ca.issue_server("fake-pushgateway")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server_files.cert, server_files.key)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        port = runner.addresses[0][1]
        monkeypatch.setenv("TEST_PGW_TOKEN", "bearer-tok-8")
        push = {
            "url": f"https://localhost:{port}",
            "ca": str(test_ca.ca_file),
            "bearer_token_env": "TEST_PGW_TOKEN",
        }
        receiver, _ = new_receiver(_receiver(tmp_path, nats_server.url, push))
        await publish_scrape(nats_server.url, b"secure_metric 7\n")
        async with running(receiver):
            await async_wait_for(lambda: seen, message="the fake Pushgateway got no PUT")
    finally:
        await runner.cleanup()
    assert seen[0] == "Bearer bearer-tok-8"


async def test_credentials_in_the_url_are_used_for_every_request_and_never_shown(
    tmp_path: Path,
    nats_server: NatsServer,
    secure_pushgateway: SecurePushgateway,
    test_ca: TestCA,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Go's HTTP client (the original's) sends a URL's user info as basic auth; a
    # migrated config keeps working, for pushes and for the group listing alike.
    caplog.set_level(logging.DEBUG)
    host = secure_pushgateway.url.removeprefix("https://")
    push = {"url": f"https://receiver:{PASSWORD}@{host}", "ca": str(test_ca.ca_file)}
    receiver, rreg = new_receiver(_receiver(tmp_path, nats_server.url, push))
    await publish_scrape(nats_server.url, b"secure_metric 7\n")
    async with running(receiver):
        await async_wait_for(
            lambda: metric(rreg, "receiver_pushes_total", result="success") == 1,
            message=f"the push was not accepted: {receiver.last_error}",
        )
        groups = await receiver.gateway.push_times()
        status = receiver.status()
    assert {"job": "node", "instance": "web-1", "publisher": "dc1"} in (
        secure_pushgateway.group_labels()
    )
    assert any(g.labels.get("instance") == "web-1" for g in groups)
    assert status["pushgateway"] == secure_pushgateway.url
    assert not any(PASSWORD in r.getMessage() for r in caplog.records)
