"""Per-datacenter publishing rights on a real nats-server (docs/security-auth.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import (
    group_samples,
    metric,
    new_poller,
    new_receiver,
    publish_raw,
    running,
    write_config,
)
from harness import poller_config as base_poller_config
from harness import receiver_config as base_receiver_config
from servers import NatsServer, Pushgateway, Target, async_wait_for
from stores import FakeStore

from prometheus_streams import config, wire
from prometheus_streams.secret import Secret

TOPIC = "prometheus"
STREAM = "PROMETHEUS"


def _poller_permissions(dc: str) -> str:
    # Exactly what the documentation tells operators to grant a poller.
    return (
        "{ publish: { allow: ["
        f'"{TOPIC}.{dc}.>", "$JS.API.STREAM.INFO.{STREAM}"'
        "] }, subscribe: { allow: "
        '["_INBOX.>", "prometheus_streams.management.>", "$SRV.>"] }, allow_responses: true }'
    )


RECEIVER_PERMISSIONS = (
    "{ publish: { allow: ["
    f'"$JS.API.STREAM.INFO.{STREAM}", "$JS.API.STREAM.CREATE.{STREAM}", '
    f'"$JS.API.STREAM.UPDATE.{STREAM}", "$JS.API.CONSUMER.CREATE.{STREAM}.>", '
    f'"$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.>", "$JS.API.CONSUMER.INFO.{STREAM}.>", '
    f'"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.>", "$JS.API.DIRECT.GET.{STREAM}.>", '
    f'"$JS.API.STREAM.MSG.GET.{STREAM}", "$JS.ACK.{STREAM}.>"'
    "] }, subscribe: { allow: "
    '["_INBOX.>", "prometheus_streams.management.>", "$SRV.>"] }, allow_responses: true }'
)

BUCKET = "KV_prometheus-streams-leases"
# What docs/security-auth.md adds for a receiver with remote_write.
REMOTE_WRITE_PERMISSIONS = RECEIVER_PERMISSIONS.replace(
    '"$JS.ACK.',
    f'"$JS.API.STREAM.INFO.{BUCKET}", "$JS.API.STREAM.CREATE.{BUCKET}", '
    f'"$JS.API.STREAM.MSG.GET.{BUCKET}", '
    '"$KV.prometheus-streams-leases.>", "$JS.ACK.',
)

SERVER_CONFIG = (
    "authorization { users: [\n"
    f'  {{ user: "dc1", password: "dc1-pw", permissions: {_poller_permissions("dc1")} }}\n'
    f'  {{ user: "dc2", password: "dc2-pw", permissions: {_poller_permissions("dc2")} }}\n'
    f'  {{ user: "central", password: "central-pw", permissions: {RECEIVER_PERMISSIONS} }}\n'
    f'  {{ user: "rw", password: "rw-pw", permissions: {REMOTE_WRITE_PERMISSIONS} }}\n'
    "] }\n"
)


def _poller(tmp_path: Path, url: str, target: Target, identity: str, user: str) -> config.Config:
    cfg = base_poller_config(
        tmp_path, url, {"node": {"targets": [{"name": "web-1", "url": target.url}]}}, identity
    )
    assert cfg.poller_stream is not None
    auth = config.NatsAuth(user=user, password=Secret("test", f"{user}-pw"))
    stream = config.StreamConfig(**{**vars(cfg.poller_stream), "auth": auth})
    return config.Config(**{**vars(cfg), "poller_stream": stream})


def _receiver(tmp_path: Path, url: str, pushgateway: Pushgateway) -> config.Config:
    stream = {"user": "central", "password": "central-pw"}
    return base_receiver_config(tmp_path, url, pushgateway.url, stream=stream)


@pytest.fixture
def restricted_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server where each datacenter's user may publish only under its own token."""
    with NatsServer(tmp_path / "nats", extra_config=SERVER_CONFIG) as server:
        yield server


def _url(server: NatsServer, user: str) -> str:
    return f"nats://{user}:{user}-pw@127.0.0.1:{server.port}"


async def test_poller_publishes_under_its_own_identity_with_least_privileges(
    tmp_path: Path, restricted_nats: NatsServer, pushgateway: Pushgateway, target: Target
) -> None:
    receiver, _ = new_receiver(_receiver(tmp_path, restricted_nats.url, pushgateway))
    poller, preg = new_poller(_poller(tmp_path, restricted_nats.url, target, "dc1", "dc1"))
    async with running(receiver):
        await async_wait_for(lambda: receiver.ready()[0], message="receiver never bound")
        async with running(poller):
            await async_wait_for(
                lambda: (
                    'up{publisher="dc1"}'
                    in group_samples(pushgateway.metrics_text(), "node", "web-1")
                ),
                message="dc1's scrape never arrived",
            )
    assert metric(preg, "poller_publish_errors_total", reason="TimeoutError") == 0


async def test_poller_cannot_publish_as_another_datacenter(
    tmp_path: Path,
    restricted_nats: NatsServer,
    pushgateway: Pushgateway,
    target: Target,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    receiver, _ = new_receiver(_receiver(tmp_path, restricted_nats.url, pushgateway))
    # Logs in as dc1 but claims to be dc2: NATS refuses the subject.
    impostor, ireg = new_poller(_poller(tmp_path, restricted_nats.url, target, "dc2", "dc1"))
    async with running(receiver):
        await async_wait_for(lambda: receiver.ready()[0], message="receiver never bound")
        async with running(impostor):
            await async_wait_for(
                lambda: metric(ireg, "poller_publish_errors_total", reason="TimeoutError") >= 1,
                timeout=20,
                message="the refused publish was not counted",
            )
        info = await receiver.conn.js.stream_info(STREAM)
    assert info.state.messages == 0
    assert not any(g.get("publisher") == "dc2" for g in pushgateway.group_labels())
    violations = [
        r.getMessage() for r in caplog.records if "permissions violation" in r.getMessage()
    ]
    assert any(f'publish to "{TOPIC}.dc2.node.web-1"' in v for v in violations), violations
    assert not any("subscription" in v for v in violations), violations


async def test_receiver_refuses_publisher_header_that_disagrees_with_subject(
    tmp_path: Path, restricted_nats: NatsServer, pushgateway: Pushgateway
) -> None:
    receiver, rreg = new_receiver(_receiver(tmp_path, restricted_nats.url, pushgateway))
    async with running(receiver):
        await async_wait_for(lambda: receiver.ready()[0], message="receiver never bound")
        # dc1 may publish under prometheus.dc1.>, and tries to pass its data off as dc2's.
        scrape = wire.Scrape("dc1", "node", "web-1", int(time.time() * 1000), b"x 1\n")
        subject, payload, headers = wire.encode(TOPIC, scrape)
        headers[wire.H_PUBLISHER] = "dc2"
        await publish_raw(_url(restricted_nats, "dc1"), subject, payload, headers)
        await async_wait_for(
            lambda: metric(rreg, "receiver_dropped_total", reason="header_mismatch") == 1,
            message="the forged message was not refused",
        )

        # nats-server settles a term on its own time: wait for it, not for a fixed moment.
        async def settled() -> bool:
            info = await receiver.conn.js.consumer_info(STREAM, "receiver")
            return bool(info.num_ack_pending == 0 and info.num_pending == 0)

        await async_wait_for(settled, message="the forged message is still pending")
        info = await receiver.conn.js.consumer_info(STREAM, "receiver")
    assert info.num_redelivered == 0  # terminated, not retried
    assert pushgateway.group_labels() == []


async def test_remote_write_receiver_works_with_the_documented_permissions(
    tmp_path: Path,
    restricted_nats: NatsServer,
    fake_store: FakeStore,
    target: Target,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    data = {
        "identity": "central",
        "receiver_stream": {
            "urls": restricted_nats.url,
            "topic": TOPIC,
            "client_id": "central",
            "user": "rw",
            "password": "rw-pw",
        },
        "remote_write": [{"url": fake_store.write_url, "name": "store"}],
        "shutdown_grace": "5s",
    }
    receiver, rreg = new_receiver(config.load(write_config(tmp_path, data, "rw.yaml")))
    poller, _ = new_poller(_poller(tmp_path, restricted_nats.url, target, "dc1", "dc1"))
    async with running(receiver):
        await async_wait_for(lambda: receiver.ready()[0], message="receiver never bound")
        async with running(poller):
            await async_wait_for(lambda: fake_store.accepted, message="nothing was written")
        assert metric(rreg, "receiver_remote_write_leading", output="store") == 1
    violations = [
        r.getMessage() for r in caplog.records if "permissions violation" in r.getMessage()
    ]
    assert violations == []
