"""TLS to a real nats-server that requires client certificates (`verify: true`)."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
from harness import group_samples, new_poller, new_receiver, poller_config, receiver_config, running
from servers import NatsServer, Pushgateway, Target, async_wait_for
from testca import TestCA, manual_tls, nats_tls_block


def _tls_nats(
    tmp_path: Path,
    ca: TestCA,
    dns: tuple[str, ...] = ("localhost",),
    ips: tuple[str, ...] = ("127.0.0.1",),
) -> NatsServer:
    server_cert = ca.issue("nats-server", dns=dns, ips=ips)
    block = nats_tls_block(ca.ca_file, server_cert.cert_file, server_cert.key_file)
    return NatsServer(tmp_path / "nats", extra_config=block)


async def test_poller_and_receiver_with_good_certificates_deliver(
    tmp_path: Path, pushgateway: Pushgateway, target: Target
) -> None:
    ca = TestCA(tmp_path / "ca")
    with _tls_nats(tmp_path, ca) as nats:
        url = f"tls://127.0.0.1:{nats.port}"
        jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
        # The poller inherits the top-level tls; the receiver has its own in the stream.
        poller, _ = new_poller(poller_config(tmp_path, url, jobs, tls=manual_tls(ca, "dc1")))
        receiver, _ = new_receiver(
            receiver_config(
                tmp_path, url, pushgateway.url, stream={"tls": manual_tls(ca, "central")}
            )
        )
        async with running(poller), running(receiver):
            value = await async_wait_for(
                lambda: group_samples(pushgateway.metrics_text(), "node", "web-1").get(
                    'test_requests_total{code="200",publisher="dc1"}'
                ),
                message="nothing crossed the TLS NATS into the Pushgateway",
            )
    assert value == 42


async def test_client_certificate_from_another_ca_is_refused_and_logged(
    tmp_path: Path, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    ca = TestCA(tmp_path / "ca")
    stranger = TestCA(tmp_path / "stranger", name="Some Other CA")
    # Trust the right CA for the server, but present a certificate the server cannot verify.
    foreign = manual_tls(stranger, "intruder")
    foreign["ca"] = str(ca.ca_file)
    with _tls_nats(tmp_path, ca) as nats:
        jobs = {"node": {"targets": [{"url": target.url}]}}
        cfg = poller_config(tmp_path, f"tls://127.0.0.1:{nats.port}", jobs, tls=foreign)
        poller, registry = new_poller(cfg)
        with caplog.at_level(logging.WARNING):
            async with running(poller):
                message = await async_wait_for(
                    lambda: next(
                        (
                            r.getMessage()
                            for r in caplog.records
                            if "refused our client certificate" in r.getMessage()
                        ),
                        None,
                    ),
                    message="no log line saying the server refused the client certificate",
                )
                assert not poller.ready()[0]
                assert (
                    registry.get_sample_value(
                        "prometheus_streams_nats_connected", {"connection": "stream"}
                    )
                    == 0
                )
        log_text = nats.log_tail()
    assert foreign["cert"] in message
    assert "certificate" in log_text.lower()


async def test_server_certificate_for_another_host_is_refused(
    tmp_path: Path, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    ca = TestCA(tmp_path / "ca")
    with _tls_nats(tmp_path, ca, dns=("nats.elsewhere.example",), ips=()) as nats:
        jobs = {"node": {"targets": [{"url": target.url}]}}
        cfg = poller_config(
            tmp_path, f"tls://127.0.0.1:{nats.port}", jobs, tls=manual_tls(ca, "dc1")
        )
        poller, _ = new_poller(cfg)
        with caplog.at_level(logging.WARNING):
            async with running(poller):
                message = await async_wait_for(
                    lambda: next(
                        (
                            r.getMessage()
                            for r in caplog.records
                            if "server's certificate was not accepted" in r.getMessage()
                        ),
                        None,
                    ),
                    message="no log line saying the server certificate was not accepted",
                )
                assert not poller.ready()[0]
    assert "127.0.0.1" in message


async def test_client_without_our_ca_is_refused_by_tls(tmp_path: Path) -> None:
    """A client that trusts only the system CAs fails the TLS handshake, not something else."""
    import nats as nats_client

    ca = TestCA(tmp_path / "ca")
    with _tls_nats(tmp_path, ca) as nats:
        errors: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            errors.append(exc)

        with pytest.raises(ssl.SSLCertVerificationError, match="CERTIFICATE_VERIFY_FAILED"):
            await nats_client.connect(
                nats.url, max_reconnect_attempts=0, allow_reconnect=False, error_cb=on_error
            )
    assert errors, "the error callback heard nothing"
    assert all(isinstance(exc, ssl.SSLCertVerificationError) for exc in errors), errors
