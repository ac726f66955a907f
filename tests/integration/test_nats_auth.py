"""Each NATS auth method against a real nats-server that requires it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from authkit import new_nkey, operator_setup
from harness import group_samples, metric, new_poller, new_receiver, running, write_config
from servers import NatsServer, Pushgateway, Target, async_wait_for

from prometheus_streams import config

TOPIC = "prometheus"


def _configs(
    tmp_path: Path, nats_url: str, pgw_url: str, target_url: str, auth: dict[str, Any]
) -> tuple[config.Config, config.Config]:
    poller = {
        "identity": "dc1",
        "scrape_interval": "300ms",
        "poller_stream": {"urls": nats_url, "topic": TOPIC, **auth},
        "jobs": {"node": {"targets": [{"name": "web-1", "url": target_url}]}},
        "shutdown_grace": "5s",
    }
    receiver = {
        "identity": "central",
        "receiver_stream": {"urls": nats_url, "topic": TOPIC, "client_id": "receiver", **auth},
        "push_gateway": {"url": pgw_url, "publisher_label": True, "timeout": "2s"},
        "shutdown_grace": "5s",
    }
    return (
        config.load(write_config(tmp_path, poller, "poller-auth.yaml")),
        config.load(write_config(tmp_path, receiver, "receiver-auth.yaml")),
    )


async def _pipeline_works(
    poller_cfg: config.Config, receiver_cfg: config.Config, pushgateway: Pushgateway
) -> None:
    poller, _ = new_poller(poller_cfg)
    receiver, _ = new_receiver(receiver_cfg)
    async with running(poller), running(receiver):
        value = await async_wait_for(
            lambda: group_samples(pushgateway.metrics_text(), "node", "web-1").get(
                'test_requests_total{code="200",publisher="dc1"}'
            ),
            message="nothing arrived through the authenticated connections",
        )
    assert value == 42


def _secret_file(path: Path, text: str) -> str:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


async def test_user_and_password_file_authenticate(
    tmp_path: Path, pushgateway: Pushgateway, target: Target
) -> None:
    server_cfg = 'authorization { user: "metrics", password: "pw-from-file-7" }'
    with NatsServer(tmp_path / "nats", extra_config=server_cfg) as server:
        auth = {
            "user": "metrics",
            "password_file": _secret_file(tmp_path / "nats-password", "pw-from-file-7"),
        }
        await _pipeline_works(
            *_configs(tmp_path, server.url, pushgateway.url, target.url, auth), pushgateway
        )


async def test_token_from_environment_authenticates(
    tmp_path: Path, pushgateway: Pushgateway, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_NATS_TOKEN", "tok-from-env-3")
    with NatsServer(
        tmp_path / "nats", extra_config='authorization { token: "tok-from-env-3" }'
    ) as server:
        auth = {"token_env": "TEST_NATS_TOKEN"}
        await _pipeline_works(
            *_configs(tmp_path, server.url, pushgateway.url, target.url, auth), pushgateway
        )


async def test_nkey_seed_file_authenticates(
    tmp_path: Path, pushgateway: Pushgateway, target: Target
) -> None:
    user = new_nkey("user")
    server_cfg = f'authorization {{ users: [ {{ nkey: "{user.public}" }} ] }}'
    with NatsServer(tmp_path / "nats", extra_config=server_cfg) as server:
        auth = {"nkey_seed_file": _secret_file(tmp_path / "user.nk", user.seed)}
        await _pipeline_works(
            *_configs(tmp_path, server.url, pushgateway.url, target.url, auth), pushgateway
        )


async def test_credentials_file_authenticates_in_operator_mode(
    tmp_path: Path, pushgateway: Pushgateway, target: Target
) -> None:
    setup = operator_setup()
    with NatsServer(tmp_path / "nats", extra_config=setup.server_config()) as server:
        creds = setup.user_creds(tmp_path / "metrics.creds", "metrics")
        auth = {"credentials_file": str(creds)}
        await _pipeline_works(
            *_configs(tmp_path, server.url, pushgateway.url, target.url, auth), pushgateway
        )


AUTH_SERVER = 'authorization { user: "metrics", password: "right-password-1" }'


def _wrong_password_poller(tmp_path: Path, nats_url: str, target_url: str) -> config.Config:
    """A poller of AUTH_SERVER's user with a wrong password."""
    data = {
        "identity": "dc1",
        "scrape_interval": "300ms",
        "poller_stream": {
            "urls": nats_url,
            "topic": TOPIC,
            "user": "metrics",
            "password": "wrong-password-9",
        },
        "jobs": {"node": {"targets": [{"name": "web-1", "url": target_url}]}},
    }
    return config.load(write_config(tmp_path, data, "poller-wrong.yaml"))


async def test_wrong_password_is_refused_and_never_logged(
    tmp_path: Path, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    with NatsServer(tmp_path / "nats", extra_config=AUTH_SERVER) as server:
        cfg = _wrong_password_poller(tmp_path, server.url, target.url)
        poller, registry = new_poller(cfg)
        caplog.set_level(logging.DEBUG)
        async with running(poller):
            # Not the first error counted: on a loaded machine the first attempt
            # may time out before the server's refusal comes.
            await async_wait_for(
                lambda: (
                    metric(registry, "nats_errors_total", connection="stream") >= 1
                    and "refused the credentials" in poller.ready()[1]
                ),
                message="the server's refusal was not reported",
            )
            ready, why = poller.ready()
            assert not ready
            assert "wrong-password-9" not in why
    refusals = [
        r.getMessage() for r in caplog.records if "refused the credentials" in r.getMessage()
    ]
    assert refusals, "no log line says NATS refused the credentials"
    assert "user metrics with password from inline config" in refusals[0]
    assert not any("wrong-password-9" in r.getMessage() for r in caplog.records)


async def test_a_refused_password_stays_the_reason_across_retries(
    tmp_path: Path, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    """Each retry is refused again: the reason shown stays the refusal.

    Closing a refused client could report the socket the server had reset, and
    the refusal then came back raw ("nats: 'Authorization Violation'", a warning).
    """
    with NatsServer(tmp_path / "nats", extra_config=AUTH_SERVER) as server:
        cfg = _wrong_password_poller(tmp_path, server.url, target.url)
        poller, _registry = new_poller(cfg)
        caplog.set_level(logging.INFO, logger="prometheus_streams.transport.connection")
        reasons: list[str] = []

        def refused_often() -> bool:
            why = poller.ready()[1]
            if not reasons or reasons[-1] != why:
                reasons.append(why)
            return poller.conn.attempts >= 5

        async with running(poller):
            await async_wait_for(refused_often, timeout=60, interval=0.01)
    failures = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name == "prometheus_streams.transport.connection"
    ]
    assert failures
    assert all("refused the credentials" in f for f in failures), failures
    shown = [why for why in reasons if why != "not connected to NATS"]
    assert shown and all("refused the credentials" in why for why in shown), shown
