"""The HA backstop's election shared through the key-value bucket, with real receiver
processes sharing the Pushgateway's consumer, a real nats-server and Pushgateway."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
import urllib.error
from pathlib import Path

import pytest
from harness import TOPIC, metric, new_receiver, publish_raw, running
from harness import receiver_config as base_receiver_config
from nats.js import JetStreamContext
from prometheus_client.parser import text_string_to_metric_families
from servers import NatsServer, Pushgateway, async_wait_for, free_port, http_request
from test_cli import Daemon
from test_ha_backstop import body, jetstream, publish_as, receiver_data, sent_by, unique_ms
from test_publish_permissions import RECEIVER_PERMISSIONS, _poller_permissions

from prometheus_streams import config, wire
from prometheus_streams.receiver.election import BUCKET, key_of

INTERVAL = 0.5  # seconds between the replicas' scrapes
# Long enough that a receiver's stop and another's start fit well within it:
# the stored election must be the one followed, not a fresh one.
FAILOVER = 20.0
STREAM = "PROMETHEUS"


class Receiver:
    """A receiver process with its own monitor port, on the shared durable consumer."""

    def __init__(self, tmp_path: Path, name: str, nats_url: str, pushgateway_url: str) -> None:
        self.port = free_port()
        self.name = name
        self.path = receiver_data(
            tmp_path,
            nats_url,
            pushgateway_url,
            monitor_port=self.port,
            monitor_address="127.0.0.1",
            ha_backstop={"failover_timeout": f"{FAILOVER}s"},
        ).rename(tmp_path / f"{name}.yaml")
        self.tmp_path = tmp_path
        self.daemon: Daemon | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.tmp_path / f"{self.name}-{self.starts}.err"
        self.daemon = Daemon(log, "--config", str(self.path), "receiver")

    def stop(self) -> None:
        assert self.daemon is not None
        code, log = self.daemon.stop()
        assert code == 0, log[-3000:]
        assert "Traceback" not in log, log[-3000:]

    def ready(self) -> bool:
        try:
            return http_request("GET", f"http://127.0.0.1:{self.port}/-/ready")[0] == 200
        except (OSError, urllib.error.URLError):
            return False

    def metric(self, name: str, **labels: str) -> float:
        """A sample of its /metrics (0 when absent)."""
        text = http_request("GET", f"http://127.0.0.1:{self.port}/metrics")[1].decode()
        full = "prometheus_streams_receiver_" + name
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == full and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return 0.0

    def refused(self) -> float:
        return self.metric("ha_refused_total", publisher="dc1", reason="other_replica")


async def drained(js: JetStreamContext, durable: str) -> None:
    """Until the shared consumer has delivered and settled everything published."""

    async def settled() -> bool:
        info = await js.consumer_info(STREAM, durable)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await async_wait_for(settled, timeout=60, message="the consumer never drained")


async def stored(js: JetStreamContext) -> list[list[object]]:
    """The periods the bucket holds for dc1."""
    entry = await (await js.key_value(BUCKET)).get(key_of("dc1"))
    assert entry.value is not None
    periods: list[list[object]] = json.loads(entry.value)["periods"]
    return periods


async def test_receivers_sharing_the_consumer_and_restarts_follow_one_stored_election(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    one = Receiver(tmp_path, "one", nats_server.url, pushgateway.url)
    two = Receiver(tmp_path, "two", nats_server.url, pushgateway.url)
    durable = config.load(one.path).receiver_stream.durable  # type: ignore[union-attr]
    running: list[Receiver] = []
    try:
        async with jetstream(nats_server.url) as js:
            # Receiver one alone while only b publishes: b is elected and stored.
            one.start()
            running.append(one)
            await async_wait_for(one.ready, timeout=60, message="receiver one never ready")
            while sent_by(pushgateway) != {"b"}:
                await publish_as(js, "b")
                await asyncio.sleep(INTERVAL)
            last_b = await publish_as(js, "b")
            await drained(js, durable)
            one.stop()
            running.remove(one)
            # Its shutdown stored the newest scrape of b it accepted.
            [[_, replica, newest]] = await stored(js)
            assert (replica, newest) == ("b", last_b)
            # Receiver two starts alone, and the first scrape it sees is a's: on
            # its own it would elect a. It follows the stored election instead.
            two.start()
            running.append(two)
            await async_wait_for(two.ready, timeout=60, message="receiver two never ready")
            first_a = await publish_as(js, "a")
            assert first_a - last_b < FAILOVER * 1000, "the restart took longer than failover"
            await drained(js, durable)
            assert sent_by(pushgateway) == {"b"}, "a's data reached the Pushgateway"
            assert two.refused() == 1
            # Split brain with both receivers on the consumer (one restarted).
            one.start()
            running.append(one)
            await async_wait_for(one.ready, timeout=60, message="receiver one never restarted")
            started = time.monotonic()
            while one.refused() < 3 or two.refused() < 4:
                await publish_as(js, "a")
                last_b = await publish_as(js, "b")
                await asyncio.sleep(INTERVAL)
                assert sent_by(pushgateway) == {"b"}, "a's data reached the Pushgateway"
                assert time.monotonic() - started < 120, "a's scrapes never reached both"
            for receiver in (one, two):
                assert receiver.metric("ha_accepted_replica", publisher="dc1", replica="b") == 1
                assert receiver.metric("ha_replica_switches_total", publisher="dc1") == 0
            # b falls silent: a is accepted once b was silent for failover_timeout,
            # by one stored switch that both receivers follow.
            while sent_by(pushgateway) != {"a"}:
                await publish_as(js, "a")
                await asyncio.sleep(INTERVAL)
                assert time.time() * 1000 - last_b < 120_000, "a was never accepted"
            periods = await stored(js)
            assert [p[1] for p in periods] == ["b", "a"]
            switch = periods[1][0]
            assert isinstance(switch, int)
            # Silence is judged on the stored newest scrape, written back every
            # quarter of failover_timeout.
            assert switch > last_b + FAILOVER * 1000 * 3 / 4

            def followed() -> bool:
                return all(
                    r.metric("ha_accepted_replica", publisher="dc1", replica="a") == 1
                    and r.metric("ha_replica_switches_total", publisher="dc1") == 1
                    for r in (one, two)
                )

            await async_wait_for(followed, timeout=60, message="a receiver missed the switch")
    finally:
        for receiver in running:
            receiver.stop()


HA = "KV_prometheus-streams-ha"
# What docs/security-auth.md adds for a receiver that serves HA publishers.
HA_PERMISSIONS = RECEIVER_PERMISSIONS.replace(
    '"$JS.ACK.',
    f'"$JS.API.STREAM.INFO.{HA}", "$JS.API.STREAM.CREATE.{HA}", '
    f'"$JS.API.STREAM.MSG.GET.{HA}", "$JS.API.CONSUMER.CREATE.{HA}", '
    f'"$JS.API.CONSUMER.INFO.{HA}.>", "$KV.prometheus-streams-ha.>", "$JS.ACK.',
)


def server_config(receiver_permissions: str) -> str:
    return (
        "authorization { users: [\n"
        f'  {{ user: "dc1", password: "dc1-pw", permissions: {_poller_permissions("dc1")} }}\n'
        f'  {{ user: "central", password: "central-pw", permissions: {receiver_permissions} }}\n'
        "] }\n"
    )


async def test_without_the_bucket_replicas_messages_are_held_until_it_answers(
    tmp_path: Path, pushgateway: Pushgateway, caplog: pytest.LogCaptureFixture
) -> None:
    """The bucket refused (permissions): a replica's scrape is held, not pushed, not lost;
    granted as docs/security-auth.md says (a nats-server reload), it is pushed."""
    caplog.set_level(logging.WARNING)
    with NatsServer(tmp_path / "nats", extra_config=server_config(RECEIVER_PERMISSIONS)) as server:
        stream = {"user": "central", "password": "central-pw"}
        cfg = base_receiver_config(tmp_path, server.url, pushgateway.url, stream=stream)
        receiver, registry = new_receiver(cfg)
        dc1 = f"nats://dc1:dc1-pw@127.0.0.1:{server.port}"
        async with running(receiver):
            await async_wait_for(lambda: receiver.ready()[0], message="receiver never bound")
            scrape = wire.Scrape("dc1", "node", "web-1", unique_ms(), body("a"))
            subject, payload, headers = wire.encode(TOPIC, scrape)
            await publish_raw(dc1, subject, payload, {**headers, wire.H_REPLICA: "a"})
            await async_wait_for(
                lambda: metric(registry, "receiver_ha_held_total", publisher="dc1") >= 2,
                timeout=60,
                message="the replica's scrape was not held",
            )
            assert metric(registry, "receiver_ha_store_errors_total") >= 1
            assert sent_by(pushgateway) == set()
            assert metric(registry, "receiver_ha_refused_total", publisher="dc1") == 0
            caplog.clear()
            server.extra_config = server_config(HA_PERMISSIONS)
            server._write_config()
            assert server.process is not None
            server.process.send_signal(signal.SIGHUP)
            await async_wait_for(
                lambda: sent_by(pushgateway) == {"a"}, timeout=60, message="never pushed"
            )
            store = receiver.backstop.store
            assert store is not None
            await async_wait_for(store.synced.is_set, timeout=60, message="no watch")
            accepted = metric(
                registry, "receiver_ha_accepted_replica", publisher="dc1", replica="a"
            )
            assert accepted == 1
    violations = [
        r.getMessage() for r in caplog.records if "permissions violation" in r.getMessage()
    ]
    assert violations == []
