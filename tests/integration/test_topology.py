"""Many datacenters, one bus: leaf nodes with their own JetStream domain, a central stream
built from their streams (docs/topology.md), through real nats-servers and proxies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest_asyncio
from harness import (
    group_samples,
    new_poller,
    new_receiver,
    receiver_config,
    running,
    write_config,
)
from nats.js import api as js_api
from servers import NatsServer, Pushgateway, Target, async_wait_for
from topology import CENTRAL_DOMAIN, STREAM, TOPIC, Topology

from prometheus_streams import config


@pytest_asyncio.fixture
async def topology(tmp_path: Path) -> AsyncIterator[Topology]:
    """A hub and two leaf nodes (dc1, dc2), each link through a proxy, linked."""
    topo = Topology(tmp_path / "topology")
    await topo.start()
    try:
        await async_wait_for(
            lambda: all(topo.linked(dc) for dc in topo.datacenters), message="a leaf never linked"
        )
        yield topo
    finally:
        await topo.stop()


def edge_poller(
    tmp_path: Path, topo: Topology, dc: str, jobs: dict[str, Any], **extra: Any
) -> config.Config:
    """A datacenter's poller, publishing into its leaf node's edge stream in domain `dc`."""
    data: dict[str, Any] = {
        "identity": dc,
        "scrape_interval": "1s",
        "poller_stream": {"urls": topo.leaf_url(dc), "topic": TOPIC, "domain": dc},
        "jobs": jobs,
        "shutdown_grace": "5s",
        **extra,
    }
    return config.load(write_config(tmp_path, data, f"poller-{dc}.yaml"))


def central_receiver_data(
    topo: Topology, datacenters: tuple[str, ...], **outputs: Any
) -> dict[str, Any]:
    """A central receiver's config: the central stream sources each datacenter's stream."""
    return {
        "identity": "central",
        "receiver_stream": {
            "urls": topo.central_url(),
            "topic": TOPIC,
            "client_id": "central",
            "domain": CENTRAL_DOMAIN,
            "fetch_batch": 16,
            "ack_wait": "5s",
            "sources": [{"name": STREAM, "domain": dc, "publisher": dc} for dc in datacenters],
        },
        "shutdown_grace": "5s",
        **outputs,
    }


def jobs_for(target: Target, name: str = "web-1") -> dict[str, Any]:
    return {"node": {"targets": [{"name": name, "url": target.url}]}}


async def test_scrapes_of_two_datacenters_reach_the_centre_through_sourced_streams(
    tmp_path: Path, topology: Topology, pushgateway: Pushgateway, target: Target
) -> None:
    push = {"push_gateway": {"url": pushgateway.url, "publisher_label": True}}
    data = central_receiver_data(topology, ("dc1",), **push)
    path = write_config(tmp_path, data, "receiver.yaml")
    receiver, _ = new_receiver(config.load(path))
    poller1, _ = new_poller(edge_poller(tmp_path, topology, "dc1", jobs_for(target)))
    poller2, _ = new_poller(edge_poller(tmp_path, topology, "dc2", jobs_for(target)))

    def arrived(dc: str) -> bool:
        text = pushgateway.metrics_text()
        return f'up{{publisher="{dc}"}}' in group_samples(text, "node", "web-1")

    async with running(receiver), running(poller1), running(poller2):
        await async_wait_for(lambda: arrived("dc1"), timeout=60, message="dc1 never arrived")
        # dc2 is not listed yet: its scrapes stay at its edge.
        assert not arrived("dc2")
        # A datacenter added to the list is picked up on reload.
        data["receiver_stream"]["sources"].append(
            {"name": STREAM, "domain": "dc2", "publisher": "dc2"}
        )
        write_config(tmp_path, data, "receiver.yaml")
        receiver.reload(config.load(path))
        await async_wait_for(lambda: arrived("dc2"), timeout=60, message="dc2 never arrived")
        info = await receiver.conn.js.stream_info(STREAM)
    assert not info.config.subjects
    assert {s.external.api for s in info.config.sources or [] if s.external} == {
        "$JS.dc1.API",
        "$JS.dc2.API",
    }
    # Each edge stream, in its own domain, holds its own datacenter's scrapes only.
    nc = await nats.connect(topology.leaf_url("dc1", "admin"))
    try:
        edge = await nc.jetstream(domain="dc1").stream_info(STREAM)
    finally:
        await nc.close()
    assert edge.config.subjects == [f"{TOPIC}.dc1.>"]
    assert edge.state.messages > 0


async def test_receiver_consumes_a_stream_made_of_sources_without_subjects_of_its_own(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway, target: Target
) -> None:
    # Made by hand, as an operator would: EDGE takes the scrapes, CENTRAL gathers EDGE.
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="EDGE", subjects=[f"{TOPIC}.>"])
        await js.add_stream(name="CENTRAL", sources=[js_api.StreamSource(name="EDGE")])
    finally:
        await nc.close()
    data = {
        "identity": "dc1",
        "scrape_interval": "1s",
        "poller_stream": {"urls": nats_server.url, "topic": TOPIC, "stream": "EDGE"},
        "jobs": jobs_for(target),
    }
    poller, _ = new_poller(config.load(write_config(tmp_path, data, "edge.yaml")))
    stream = {"stream": "CENTRAL"}
    receiver, _ = new_receiver(
        receiver_config(tmp_path, nats_server.url, pushgateway.url, stream=stream)
    )
    async with running(receiver), running(poller):
        await async_wait_for(
            lambda: (
                'up{publisher="dc1"}' in group_samples(pushgateway.metrics_text(), "node", "web-1")
            ),
            timeout=60,
            message="the sourced scrape never arrived",
        )
        assert receiver.ready()[0]
