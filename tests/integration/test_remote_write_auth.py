"""Auth and TLS of the remote-write output against real stores, through a real nats-server.

Basic auth into VictoriaMetrics (-httpAuth.*) and Prometheus (web config), a
bearer token through a real vmauth in front of VictoriaMetrics, client
certificates and `server_name` against Prometheus over HTTPS. Credentials the
store refuses (401/403) are retried in place, never dropped, so a rotation
loses nothing once the receiver is reloaded with the new secret. Only the 403
comes from FakeStore: none of the real stores here answers one. Also here:
what docs/alerts.yaml reads of an idle output (leading gauge, drops at 0).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from harness import metric, new_receiver, publish_scrape, running
from prometheus_client import CollectorRegistry
from servers import NatsServer, async_wait_for
from stores import (
    EMPTY_WRITE_REQUEST,
    FakeStore,
    PrometheusStore,
    Reply,
    VictoriaMetricsStore,
    VmAuth,
)
from test_remote_write import rw_receiver
from test_remote_write_delivery import DURABLE, consumer_settled, unacked
from testca import TestCA

from prometheus_streams import config
from prometheus_streams.receiver.app import Receiver
from prometheus_streams.receiver.outputs.remote_write import RemoteWriteOutput

BODY = b"# TYPE demo gauge\ndemo 1\n"
USER = "writer"
PASSWORD = "right-horse-battery"  # noqa: S105 - a test password
TOKEN = "vmauth-test-token"  # noqa: S105 - a test token

Store = PrometheusStore | VictoriaMetricsStore


def secret_file(path: Path, value: str) -> Path:
    """A private one-line secret file."""
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def output_of(receiver: Receiver) -> RemoteWriteOutput:
    (lane,) = receiver.lanes
    assert isinstance(lane.output, RemoteWriteOutput)
    return lane.output


def requests(registry: CollectorRegistry, result: str) -> float:
    return metric(registry, "receiver_remote_write_requests_total", output="store", result=result)


async def has_scrape(store: Store, scrape_time: float) -> bool:
    """Whether `demo` of the published scrape is in the store, at the scrape's time."""
    series = await store.samples('demo{publisher="dc1"}', scrape_time - 1, scrape_time + 1)
    return any(ts == int(scrape_time * 1000) for samples in series.values() for ts, _ in samples)


async def write_one(tmp_path: Path, nats_url: str, store: Store, write_url: str, **rw: Any) -> None:
    """Publish one scrape, run a receiver with `rw`, and wait until the store has it."""
    scrape_time = round(time.time(), 3)
    await publish_scrape(nats_url, BODY, scrape_time=scrape_time)
    receiver, registry = new_receiver(rw_receiver(tmp_path, nats_url, write_url, **rw))
    async with running(receiver):
        await async_wait_for(
            lambda: has_scrape(store, scrape_time), timeout=30, message="the scrape was not written"
        )
        await async_wait_for(lambda: consumer_settled(nats_url, DURABLE))
    assert requests(registry, "refused") == 0 and requests(registry, "retried") == 0


def basic_auth(path: Path) -> dict[str, Any]:
    return {"basic_auth": {"username": USER, "password_file": str(path)}}


def store_with_auth(kind: str, directory: Path) -> tuple[Store, VmAuth | None]:
    """A store refusing writes without the right credentials, and vmauth if that checks them."""
    if kind == "prometheus":
        return PrometheusStore(directory, basic_auth=(USER, PASSWORD)), None
    if kind == "victoria":
        return VictoriaMetricsStore(directory, basic_auth=(USER, PASSWORD)), None
    store = VictoriaMetricsStore(directory / "vm")
    return store, VmAuth(directory / "vmauth", store.url, TOKEN)


def credentials(kind: str, path: Path) -> dict[str, Any]:
    if kind == "vmauth":
        return {"authorization": {"type": "Bearer", "credentials_file": str(path)}}
    return basic_auth(path)


@pytest.mark.parametrize("kind", ["prometheus", "victoria"])
async def test_basic_auth_with_a_password_file(
    tmp_path: Path, nats_server: NatsServer, kind: str
) -> None:
    store, _ = store_with_auth(kind, tmp_path / "store")
    store.start()
    try:
        # The store does check: the same request without credentials is refused.
        status, _ = await store.write(EMPTY_WRITE_REQUEST, credentials=False)
        assert status == 401
        password = secret_file(tmp_path / "password", PASSWORD)
        await write_one(tmp_path, nats_server.url, store, store.write_url, **basic_auth(password))
    finally:
        store.close()


async def test_a_bearer_token_through_vmauth(tmp_path: Path, nats_server: NatsServer) -> None:
    store, vmauth = store_with_auth("vmauth", tmp_path)
    assert vmauth is not None
    store.start()
    try:
        vmauth.start()
        status, _ = await vmauth.write(EMPTY_WRITE_REQUEST, credentials=False)
        assert status == 401
        token = secret_file(tmp_path / "token", TOKEN)
        await write_one(
            tmp_path, nats_server.url, store, vmauth.write_url, **credentials("vmauth", token)
        )
    finally:
        vmauth.close()
        store.close()


@pytest.mark.parametrize("kind", ["prometheus", "victoria"])
async def test_refused_credentials_are_retried_until_a_reload_brings_the_right_ones(
    tmp_path: Path, nats_server: NatsServer, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    store, _ = store_with_auth(kind, tmp_path / "store")
    store.start()
    try:
        # As in a rotation: the store wants the new secret, the file still holds the old one.
        path = secret_file(tmp_path / "secret", "the-old-secret")
        cfg = rw_receiver(tmp_path, nats_server.url, store.write_url, **basic_auth(path))
        assert cfg.path is not None
        caplog.set_level(logging.INFO)
        scrape_time = round(time.time(), 3)
        await publish_scrape(nats_server.url, BODY, scrape_time=scrape_time)
        receiver, registry = new_receiver(cfg)
        async with running(receiver):
            await async_wait_for(
                lambda: requests(registry, "refused") >= 1 or requests(registry, "retried") >= 3,
                timeout=30,
                message="the store was not asked",
            )
            assert requests(registry, "refused") == 0, "a refusal of credentials was dropped"
            assert await unacked(nats_server.url, DURABLE) == 1, "the scrape is no longer held"
            assert "HTTP 401" in output_of(receiver).last_error
            assert caplog.text.count("refused our credentials") == 1
            assert "the-old-secret" not in caplog.text

            secret_file(path, PASSWORD)
            receiver.reload(config.load(cfg.path))
            await async_wait_for(
                lambda: has_scrape(store, scrape_time),
                timeout=30,
                message="the held scrape was not written after the reload",
            )
            await async_wait_for(lambda: consumer_settled(nats_server.url, DURABLE))
        dropped = metric(
            registry,
            "receiver_remote_write_samples_dropped_total",
            output="store",
            reason="http_401",
        )
        assert dropped == 0
        assert "accepts our credentials again" in caplog.text
    finally:
        store.close()


async def test_vmauth_answers_an_unknown_token_with_400_which_is_dropped_and_logged(
    tmp_path: Path, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """vmauth 1.79 answers 400, not 401: a refusal like any other, dropped and counted."""
    store, vmauth = store_with_auth("vmauth", tmp_path)
    assert vmauth is not None
    store.start()
    try:
        vmauth.start()
        token = secret_file(tmp_path / "token", "a-wrong-token")
        cfg = rw_receiver(
            tmp_path, nats_server.url, vmauth.write_url, **credentials("vmauth", token)
        )
        await publish_scrape(nats_server.url, BODY)
        caplog.set_level(logging.ERROR)
        receiver, registry = new_receiver(cfg)
        async with running(receiver):
            await async_wait_for(
                lambda: metric(registry, "receiver_dropped_total", reason="remote_write_http_400"),
                message="the refused scrape was not dropped",
            )
            await async_wait_for(lambda: consumer_settled(nats_server.url, DURABLE))
        dropped = metric(
            registry,
            "receiver_remote_write_samples_dropped_total",
            output="store",
            reason="http_400",
        )
        assert dropped > 0
        assert metric(registry, "receiver_dropped_total", reason="remote_write_http_400") == 1
        # vmauth's answer, readable (it gzips it for a client that accepts gzip) ...
        assert "HTTP 400: cannot find the provided auth token" in caplog.text
        assert "HTTP 400: HTTP 400" not in caplog.text
        assert "\ufffd" not in caplog.text
        # ... without the token it quotes.
        assert "a-wrong-token" not in caplog.text
    finally:
        vmauth.close()
        store.close()


async def test_a_403_is_retried_in_place(
    tmp_path: Path, nats_server: NatsServer, fake_store: FakeStore
) -> None:
    fake_store.script(Reply(403, b"forbidden\n"), times=2)
    receiver, registry = new_receiver(rw_receiver(tmp_path, nats_server.url, fake_store.write_url))
    await publish_scrape(nats_server.url, BODY)
    async with running(receiver):
        await async_wait_for(lambda: fake_store.accepted, message="never written")
        await async_wait_for(lambda: consumer_settled(nats_server.url, DURABLE))
    assert [r.status for r in fake_store.requests[:3]] == [403, 403, 204]
    assert requests(registry, "refused") == 0


async def test_a_client_certificate_is_required_and_presented(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    ca = TestCA(tmp_path / "ca")
    store = PrometheusStore(tmp_path / "prom", ca=ca, require_client_cert=True)
    store.start()
    assert store.client_cert is not None
    tls: dict[str, Any] = {"ca_file": str(ca.ca_file)}
    try:
        # Without a client certificate the store refuses the connection: retried, not written.
        scrape_time = round(time.time(), 3)
        await publish_scrape(nats_server.url, BODY, scrape_time=scrape_time)
        cfg = rw_receiver(tmp_path, nats_server.url, store.write_url, tls_config=tls)
        receiver, registry = new_receiver(cfg)
        async with running(receiver):
            await async_wait_for(
                lambda: requests(registry, "retried") >= 2,
                timeout=30,
                message="the store was not asked",
            )
            assert requests(registry, "success") == 0
            print("without a client certificate:", output_of(receiver).last_error)
        assert not await has_scrape(store, scrape_time)

        tls.update(
            cert_file=str(store.client_cert.cert_file), key_file=str(store.client_cert.key_file)
        )
        cfg = rw_receiver(tmp_path, nats_server.url, store.write_url, tls_config=tls)
        receiver, registry = new_receiver(cfg)
        async with running(receiver):
            await async_wait_for(
                lambda: has_scrape(store, scrape_time),
                timeout=30,
                message="the scrape was not written with the client certificate",
            )
    finally:
        store.close()


async def test_server_name_checks_the_certificate_of_a_store_reached_by_address(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    ca = TestCA(tmp_path / "ca")
    host = "store.example.test"
    store = PrometheusStore(tmp_path / "prom", ca=ca, require_client_cert=False, server_name=host)
    store.start()
    assert store.write_url.startswith("https://127.0.0.1:")
    tls: dict[str, Any] = {"ca_file": str(ca.ca_file)}
    try:
        # The certificate does not name 127.0.0.1: without server_name it is not trusted.
        scrape_time = round(time.time(), 3)
        await publish_scrape(nats_server.url, BODY, scrape_time=scrape_time)
        cfg = rw_receiver(tmp_path, nats_server.url, store.write_url, tls_config=tls)
        receiver, registry = new_receiver(cfg)
        async with running(receiver):
            await async_wait_for(
                lambda: requests(registry, "retried") >= 2,
                timeout=30,
                message="the store was not asked",
            )
            assert requests(registry, "success") == 0
            assert "CERTIFICATE_VERIFY_FAILED" in output_of(receiver).last_error
        assert not await has_scrape(store, scrape_time)

        tls["server_name"] = host
        cfg = rw_receiver(tmp_path, nats_server.url, store.write_url, tls_config=tls)
        receiver, registry = new_receiver(cfg)
        async with running(receiver):
            await async_wait_for(
                lambda: has_scrape(store, scrape_time),
                timeout=30,
                message="the scrape was not written with server_name",
            )
    finally:
        store.close()


async def test_an_idle_output_shows_that_it_leads_and_its_drops_at_zero(
    tmp_path: Path, nats_server: NatsServer, fake_store: FakeStore
) -> None:
    """What the alerts read is right before the first request (and the gauge after the last)."""
    receiver, registry = new_receiver(rw_receiver(tmp_path, nats_server.url, fake_store.write_url))

    def leading() -> float:
        return metric(registry, "receiver_remote_write_leading", output="store")

    async with running(receiver):
        await async_wait_for(lambda: output_of(receiver).ctx.fence(), message="never led")
        assert leading() == 1
        assert not fake_store.requests
        for reason in ("out_of_order", "bad_page", "not_newer"):
            labels = {"output": "store", "reason": reason}
            name = "prometheus_streams_receiver_remote_write_samples_dropped_total"
            assert registry.get_sample_value(name, labels) == 0, reason
    assert leading() == 0
