"""Behaviour pinned after review: reloads, discovery input, rebinding, restarts."""

from __future__ import annotations

import json
from pathlib import Path

import nats
import pytest
from harness import (
    metric,
    new_receiver,
    poller_config,
    publish_scrape,
    receiver_config,
    running,
)
from prometheus_client import CollectorRegistry
from servers import NatsServer, Pushgateway, Target, async_wait_for

from prometheus_streams import config
from prometheus_streams.errors import ConfigError
from prometheus_streams.poller.app import Poller
from prometheus_streams.poller.discovery import DiscoveryError, parse_target_groups


def test_stale_after_without_publisher_label_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "receiver_stream: {urls: nats://127.0.0.1:4222}\n"
        "push_gateway: {url: http://127.0.0.1:9091, stale_after: 10m}\n"
    )
    with pytest.raises(ConfigError, match="stale_after: needs publisher_label: true"):
        config.load(path)


@pytest.mark.parametrize(
    "groups",
    [
        [{"targets": ["a:1"], "labels": ["x"]}],
        [{"targets": ["a:1"], "labels": "rack"}],
        [{"targets": ["a:1"], "labels": {"__metrics_path__": "metrics x"}}],
        [{"targets": ["a:1"], "labels": {"instance": " padded "}}],
        [{"targets": ["a b:1"]}],
    ],
)
def test_bad_discovery_files_are_errors_not_crashes(groups: object) -> None:
    job = config.Job("node", (), 15.0, 10.0, 1 << 20)
    with pytest.raises(DiscoveryError):
        parse_target_groups("t.json", json.dumps(groups), job)


async def test_adding_a_target_leaves_the_others_running(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    one = [{"name": "a", "url": target.url}]
    poller = Poller(
        poller_config(tmp_path, nats_server.url, {"node": {"targets": one}}), CollectorRegistry()
    )
    async with running(poller):
        await async_wait_for(lambda: ("node", "a") in poller._loops)
        before = poller._loops[("node", "a")][2]
        two = [*one, {"name": "b", "url": target.url}]
        poller.reload(poller_config(tmp_path, nats_server.url, {"node": {"targets": two}}))
        assert poller._loops[("node", "a")][2] is before
        assert not before.done()
        assert ("node", "b") in poller._loops


async def test_reload_to_stale_after_0_deletes_nothing(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    await publish_scrape(nats_server.url, b"# TYPE v gauge\nv 1\n", instance="kept")
    push = {
        "url": pushgateway.url,
        "publisher_label": True,
        "stale_after": "1h",
        "stale_check_interval": "200ms",
    }
    receiver, rreg = new_receiver(
        receiver_config(tmp_path, nats_server.url, pushgateway.url, push_gateway=push)
    )
    async with running(receiver):
        await async_wait_for(lambda: metric(rreg, "receiver_pushes_total", result="success") == 1)
        receiver.reload(
            receiver_config(
                tmp_path, nats_server.url, pushgateway.url, push_gateway={**push, "stale_after": 0}
            )
        )
        # the stale check must read stale_after 0 as "off", not as "older than 0 s"
        for _ in range(3):
            assert await receiver.stale_tick() == 0
    assert metric(rreg, "receiver_stale_groups_deleted_total") == 0
    assert any(g.get("instance") == "kept" for g in pushgateway.group_labels())


async def test_receiver_binds_again_after_its_stream_was_deleted(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    receiver, rreg = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(receiver):
        await async_wait_for(lambda: receiver.ready()[0])
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().delete_stream("PROMETHEUS")
        finally:
            await nc.close()
        await async_wait_for(
            lambda: "binding again" in receiver.last_error, timeout=60, message="never rebound"
        )
        await async_wait_for(lambda: receiver.ready()[0], timeout=60)
        await publish_scrape(nats_server.url, b"# TYPE back gauge\nback 1\n")
        await async_wait_for(
            lambda: metric(rreg, "receiver_pushes_total", result="success") >= 1, timeout=60
        )
