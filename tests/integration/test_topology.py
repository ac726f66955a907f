"""Many datacenters, one bus: leaf nodes with their own JetStream domain, a central stream
built from their streams (docs/topology.md), through real nats-servers and proxies."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
from aiohttp import web
from harness import (
    group_samples,
    metric,
    new_poller,
    new_receiver,
    receiver_config,
    running,
    write_config,
)
from nats.aio.client import Client as NATS
from nats.js import api as js_api
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError
from prometheus_client import CollectorRegistry
from pushlog import SeqTargets
from servers import NatsServer, Pushgateway, Target, async_wait_for
from stores import PrometheusStore
from topology import CENTRAL_DOMAIN, STREAM, TOPIC, Topology

from prometheus_streams import config, wire

INTERVAL = 1.0
MAX_AGE = "5m"


# The central side of a test run both ways: one server, and the 3-node cluster of
# docs/topology.md (stream and consumers of three replicas).
SHAPES = pytest.mark.parametrize("topology", ["hub", "cluster"], indirect=True)


@pytest_asyncio.fixture
async def topology(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Topology]:
    """A hub (or with param "cluster" a 3-node cluster) and two leaf nodes, each link proxied."""
    topo = Topology(tmp_path / "topology", cluster=getattr(request, "param", "hub") == "cluster")
    await topo.start()
    try:
        await async_wait_for(
            lambda: all(topo.linked(dc) for dc in topo.datacenters), message="a leaf never linked"
        )
        yield topo
    finally:
        await topo.stop()


def edge_poller(
    tmp_path: Path,
    topo: Topology,
    dc: str,
    jobs: dict[str, Any],
    stream: dict[str, Any] | None = None,
) -> config.Config:
    """A datacenter's poller, publishing into its leaf node's edge stream in domain `dc`."""
    data: dict[str, Any] = {
        "identity": dc,
        "scrape_interval": f"{INTERVAL}s",
        "max_age": MAX_AGE,
        "poller_stream": {
            "urls": topo.leaf_url(dc),
            "topic": TOPIC,
            "domain": dc,
            **(stream or {}),
        },
        "jobs": jobs,
        "shutdown_grace": "5s",
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
            **({"replicas": 3} if topo.cluster is not None else {}),
        },
        "shutdown_grace": "5s",
        **outputs,
    }


def jobs_for(target: Target, name: str = "web-1") -> dict[str, Any]:
    return {"node": {"targets": [{"name": name, "url": target.url}]}}


@SHAPES
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
        consumer = await receiver.conn.js.consumer_info(STREAM, "central")
    if topology.cluster is not None:
        # Three replicas of the stream, and of the consumer (it takes the stream's).
        assert info.config.num_replicas == 3
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2
        assert consumer.cluster is not None and len(consumer.cluster.replicas or []) == 2
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


async def test_a_datacenter_removed_from_sources_on_reload_no_longer_reaches_the_centre(
    tmp_path: Path, topology: Topology, pushgateway: Pushgateway
) -> None:
    # The hub only: the reload updates the stream the same way on the cluster.
    targets = {dc: CountingTarget() for dc in ("dc1", "dc2")}
    for target in targets.values():
        await target.start()
    push = {"push_gateway": {"url": pushgateway.url, "publisher_label": True}}
    data = central_receiver_data(topology, ("dc1", "dc2"), **push)
    path = write_config(tmp_path, data, "receiver.yaml")
    receiver, _ = new_receiver(config.load(path))
    pollers = [
        new_poller(edge_poller(tmp_path, topology, dc, jobs_for(t)))[0] for dc, t in targets.items()
    ]

    def served(dc: str) -> float | None:
        """The newest scrape of `dc` at the centre: its target's count of scrapes."""
        pushed = group_samples(pushgateway.metrics_text(), "node", "web-1")
        return pushed.get(f'served{{publisher="{dc}"}}')

    async def dc1_moves_on() -> None:
        """Three more scrapes of dc1 reach the centre, and dc2 scrapes three more times."""
        dc1, dc2 = served("dc1") or 0, targets["dc2"].requests
        await async_wait_for(
            lambda: (served("dc1") or 0) >= dc1 + 3 and targets["dc2"].requests >= dc2 + 3,
            timeout=60,
            message="dc1 stopped arriving or dc2 stopped scraping",
        )

    async def sources() -> set[str]:
        info = await receiver.conn.js.stream_info(STREAM)
        return {s.external.api for s in info.config.sources or [] if s.external}

    try:
        async with running(receiver), running(pollers[0]), running(pollers[1]):
            await async_wait_for(
                lambda: served("dc1") and served("dc2"), timeout=60, message="not both arrived"
            )
            data["receiver_stream"]["sources"].pop()
            write_config(tmp_path, data, "receiver.yaml")
            receiver.reload(config.load(path))

            async def dc2_gone() -> bool:
                return await sources() == {"$JS.dc1.API"}

            await async_wait_for(dc2_gone, timeout=60, message="dc2 still a source")
            # What dc2 had sent before the update may still be on its way.
            await dc1_moves_on()
            last = served("dc2")
            await dc1_moves_on()
            assert served("dc2") == last, "dc2 still reaches the centre"
            assert receiver.ready()[0]
    finally:
        for target in targets.values():
            await target.stop()


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


class CountingTarget(Target):
    """A target whose `served` gauge counts its scrapes: the newest scrape has the largest."""

    async def _handle(self, request: web.Request) -> web.Response:
        self.body = b"# TYPE served gauge\nserved %d\n" % (self.requests + 1)
        return await super()._handle(request)


async def edge_scrape_times(topo: Topology, dc: str, instance: str = "web-1") -> list[int]:
    """The scrape times (ms) of one target on the datacenter's edge stream, in stream order."""
    nc = await nats.connect(topo.leaf_url(dc, "admin"))
    try:
        js = nc.jetstream(domain=dc)
        sub = await js.pull_subscribe(wire.subject_for(TOPIC, dc, "node", instance), stream=STREAM)
        times: list[int] = []
        while True:
            try:
                msgs = await sub.fetch(256, timeout=1.0)
            except nats.errors.TimeoutError:
                break
            times.extend(int((msg.headers or {})[wire.H_SCRAPE_TIME]) for msg in msgs)
            # A fetch may return before its batch is full: stop when nothing is left.
            if msgs[-1].metadata.num_pending == 0:
                break
        await sub.unsubscribe()
        return times
    finally:
        await nc.close()


async def store_samples(store: PrometheusStore, name: str, dc: str) -> list[tuple[int, str]]:
    """(timestamp ms, value) of every sample of `name` from `dc` in the store, by time."""
    series = await store.samples(f'{name}{{publisher="{dc}"}}', time.time() - 3600)
    assert len(series) <= 1, series
    return sorted(sample for samples in series.values() for sample in samples)


def scrapes(registry: CollectorRegistry) -> float:
    return metric(registry, "poller_scrapes_total", poller_job="node", result="success")


@SHAPES
async def test_wan_cut_with_a_poller_restart_loses_and_doubles_nothing(
    tmp_path: Path, topology: Topology, pushgateway: Pushgateway
) -> None:
    target = CountingTarget()
    await target.start()
    store = PrometheusStore(tmp_path / "store")
    store.start()
    outputs = {
        "max_age": MAX_AGE,
        "push_gateway": {"url": pushgateway.url, "publisher_label": True},
        "remote_write": [
            {
                "url": store.write_url,
                "name": "store",
                "queue_config": {"batch_send_deadline": "1s", "max_backoff": "1s"},
            }
        ],
    }
    data = central_receiver_data(topology, ("dc1", "dc2"), **outputs)
    receiver, _ = new_receiver(config.load(write_config(tmp_path, data, "receiver.yaml")))
    # The edge keeps every scrape of its max_age: remote write wants them all.
    dc1 = edge_poller(
        tmp_path, topology, "dc1", jobs_for(target), {"max_msgs_per_subject": 100_000}
    )
    dc2 = edge_poller(tmp_path, topology, "dc2", jobs_for(target))

    async def up(dc: str) -> list[int]:
        return [ts for ts, _ in await store_samples(store, "up", dc)]

    try:
        async with running(receiver):
            poller2, _ = new_poller(dc2)
            async with running(poller2):
                first, first_reg = new_poller(dc1)
                async with running(first):
                    await async_wait_for(lambda: up("dc1"), timeout=60, message="no dc1 scrape")
                    await topology.cut("dc1")
                    cut_at = time.time()
                    cut_scrapes = scrapes(first_reg)
                    await async_wait_for(lambda: scrapes(first_reg) >= cut_scrapes + 5, timeout=60)
                # Restarted in the middle of the cut: what it had acked is at the edge.
                second, second_reg = new_poller(dc1)
                async with running(second):
                    await async_wait_for(lambda: scrapes(second_reg) >= 6, timeout=60)
                    # The centre heard nothing from dc1 meanwhile, and dc2 went on.
                    assert max(await up("dc1")) < (cut_at + INTERVAL) * 1000
                    assert max(await up("dc2")) > (cut_at + 5 * INTERVAL) * 1000
                    await topology.restore("dc1")
                    await async_wait_for(lambda: topology.linked("dc1"), timeout=60)
            on_edge = await edge_scrape_times(topology, "dc1")
            during_cut = [ts for ts in on_edge if ts > cut_at * 1000]
            assert len(during_cut) >= 11, during_cut

            async def all_written() -> bool:
                return len(await up("dc1")) >= len(on_edge)

            # nats-server retries a source that failed 10 s x failed tries later (at most 2 min).
            await async_wait_for(all_written, timeout=180, message="the backlog never arrived")
            served = await store_samples(store, "served", "dc1")

            def newest_pushed() -> bool:
                pushed = group_samples(pushgateway.metrics_text(), "node", "web-1")
                return pushed.get('served{publisher="dc1"}') == float(served[-1][1])

            await async_wait_for(newest_pushed, timeout=30, message="not the newest scrape")
        written = await up("dc1")
        assert len(written) == len(set(written)), "a scrape was written twice"
        assert sorted(written) == sorted(on_edge), "the store and the edge disagree"
    finally:
        store.close()
        await target.stop()


async def _connect(url: str, errors: list[str] | None = None) -> NATS:
    async def note(exc: Exception) -> None:
        if errors is not None:
            errors.append(str(exc))

    return await nats.connect(url, error_cb=note)


async def _edge_stream(topo: Topology, dc: str, subjects: list[str]) -> None:
    """Create a datacenter's edge stream as its operator (admin) would."""
    nc = await _connect(topo.leaf_url(dc, "admin"))
    try:
        await nc.jetstream(domain=dc).add_stream(name=STREAM, subjects=subjects)
    finally:
        await nc.close()


async def _stored(nc: NATS, subject: str, payload: bytes = b"x") -> bool:
    """Whether a JetStream stream acked `subject`; False when nobody took it."""
    try:
        await nc.jetstream().publish(subject, payload, timeout=2)
    except (NoStreamResponseError, nats.errors.NoRespondersError, nats.errors.TimeoutError):
        return False
    return True


async def _answered(nc: NATS, subject: str) -> bool:
    """Whether a JetStream API call on `subject` got an answer."""
    try:
        await nc.request(subject, b"", timeout=2)
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        return False
    return True


@SHAPES
async def test_a_datacenter_cannot_publish_as_another_through_the_leaf(
    tmp_path: Path, topology: Topology, pushgateway: Pushgateway
) -> None:
    await _edge_stream(topology, "dc2", [f"{TOPIC}.dc2.>"])
    push = {"push_gateway": {"url": pushgateway.url, "publisher_label": True}}
    data = central_receiver_data(topology, ("dc1", "dc2"), **push)
    receiver, _ = new_receiver(config.load(write_config(tmp_path, data, "receiver.yaml")))
    forged = wire.subject_for(TOPIC, "dc2", "node", "web-1")
    async with running(receiver):
        await async_wait_for(lambda: receiver.ready()[0], timeout=60, message="never bound")
        # dc1's poller credentials: NATS refuses dc2's subjects at the leaf itself.
        errors: list[str] = []
        poller = await _connect(topology.leaf_url("dc1"), errors)
        try:
            assert not await _stored(poller, forged)
            await async_wait_for(lambda: errors, message="no permissions violation reported")
            assert f'publish to "{forged}"' in errors[0]
        finally:
            await poller.close()
        # Even dc1's operator, unrestricted at its leaf, reaches neither dc2's stream nor
        # the central JetStream over the leaf link.
        admin = await _connect(topology.leaf_url("dc1", "admin"))
        try:
            assert await _answered(admin, "$JS.dc1.API.INFO")  # its own domain answers
            assert not await _stored(admin, forged)
            assert not await _answered(admin, f"$JS.dc2.API.STREAM.INFO.{STREAM}")
            assert not await _answered(admin, f"$JS.{CENTRAL_DOMAIN}.API.STREAM.INFO.{STREAM}")
        finally:
            await admin.close()
        central = await receiver.conn.js.stream_info(STREAM)
    dc2 = await _connect(topology.leaf_url("dc2", "admin"))
    try:
        edge = await dc2.jetstream(domain="dc2").stream_info(STREAM)
    finally:
        await dc2.close()
    assert (edge.state.messages, central.state.messages) == (0, 0)
    assert pushgateway.group_labels() == []


@SHAPES
async def test_a_datacenter_cannot_publish_as_another_through_the_source(
    tmp_path: Path, topology: Topology, pushgateway: Pushgateway
) -> None:
    # dc1's operator widens dc1's edge stream to every subject and fills it with
    # dc2's name: in the subject, and in the headers of a dc1 subject.
    await _edge_stream(topology, "dc1", [f"{TOPIC}.>"])
    now = int(time.time() * 1000)
    admin = await _connect(topology.leaf_url("dc1", "admin"))
    try:
        js = admin.jetstream(domain="dc1")
        as_dc2 = wire.Scrape("dc2", "node", "web-1", now, b"# TYPE forged gauge\nforged 1\n")
        subject, payload, headers = wire.encode(TOPIC, as_dc2)
        await js.publish(subject, payload, headers=headers)
        claims_dc2 = wire.Scrape("dc1", "node", "web-1", now, b"# TYPE forged gauge\nforged 2\n")
        subject, payload, headers = wire.encode(TOPIC, claims_dc2)
        headers[wire.H_PUBLISHER] = "dc2"
        await js.publish(subject, payload, headers=headers)
        # Then a scrape of dc1's own, to know when the others had their turn.
        own = wire.Scrape("dc1", "node", "marker", now + 1, b"# TYPE own gauge\nown 1\n")
        subject, payload, headers = wire.encode(TOPIC, own)
        await js.publish(subject, payload, headers=headers)
    finally:
        await admin.close()
    push = {"push_gateway": {"url": pushgateway.url, "publisher_label": True}}
    data = central_receiver_data(topology, ("dc1", "dc2"), **push)
    receiver, rreg = new_receiver(config.load(write_config(tmp_path, data, "receiver.yaml")))
    async with running(receiver):
        await async_wait_for(
            lambda: (
                'own{publisher="dc1"}'
                in group_samples(pushgateway.metrics_text(), "node", "marker")
            ),
            timeout=60,
            message="dc1's own scrape never arrived",
        )
        await async_wait_for(
            lambda: metric(rreg, "receiver_dropped_total", reason="header_mismatch") == 1,
            message="the message claiming dc2 in its headers was not refused",
        )
        central = await receiver.conn.js.stream_info(STREAM, subjects_filter=">")
    # The source of dc1 takes prometheus.dc1.> only: dc2's subject never reached the centre.
    assert set(central.state.subjects or {}) == {
        wire.subject_for(TOPIC, "dc1", "node", "web-1"),
        wire.subject_for(TOPIC, "dc1", "node", "marker"),
    }
    assert not any(g.get("publisher") == "dc2" for g in pushgateway.group_labels())


async def test_poller_uses_an_edge_stream_made_wider_than_its_own_subjects(
    tmp_path: Path, topology: Topology, target: Target
) -> None:
    # The datacenter's operator made the edge stream for every subject of the topic.
    await _edge_stream(topology, "dc1", [f"{TOPIC}.>"])
    poller, preg = new_poller(edge_poller(tmp_path, topology, "dc1", jobs_for(target)))
    async with running(poller):
        await async_wait_for(
            lambda: metric(preg, "poller_published_total") >= 1,
            timeout=60,
            message="nothing was stored at the edge",
        )
    assert await edge_scrape_times(topology, "dc1")


async def test_a_retried_publish_is_stored_once_at_the_edge_and_at_the_centre(
    tmp_path: Path, topology: Topology, pushgateway: Pushgateway
) -> None:
    await _edge_stream(topology, "dc1", [f"{TOPIC}.dc1.>"])
    now = int(time.time() * 1000)
    admin = await _connect(topology.leaf_url("dc1", "admin"))
    try:
        js = admin.jetstream(domain="dc1")
        scrape = wire.Scrape("dc1", "node", "web-1", now, b"# TYPE once gauge\nonce 1\n")
        subject, payload, headers = wire.encode(TOPIC, scrape)
        first = await js.publish(subject, payload, headers=headers)
        again = await js.publish(subject, payload, headers=headers)
    finally:
        await admin.close()
    assert (first.duplicate, again.duplicate, again.seq) == (None, True, first.seq)
    push = {"push_gateway": {"url": pushgateway.url, "publisher_label": True}}
    data = central_receiver_data(topology, ("dc1",), **push)
    receiver, rreg = new_receiver(config.load(write_config(tmp_path, data, "receiver.yaml")))
    async with running(receiver):
        await async_wait_for(
            lambda: metric(rreg, "receiver_pushes_total", result="success") >= 1,
            timeout=60,
            message="the scrape never arrived",
        )
        central = await receiver.conn.js.stream_info(STREAM)
        message = await receiver.conn.js.get_msg(STREAM, 1)
    assert central.state.messages == 1
    assert metric(rreg, "receiver_pushes_total", result="success") == 1
    # What a sourced message looks like: the poller's subject and headers, plus the source's.
    assert message.subject == subject
    assert message.headers is not None
    assert {k: message.headers[k] for k in headers} == headers
    assert message.headers["Nats-Stream-Source"].startswith(f"{STREAM}:")


@dataclass(frozen=True)
class Stored:
    """One scrape as a stream holds it."""

    subject: str
    scrape_ms: int
    seq: int  # test_seq of the page: the target's count of scrapes
    stored_at: float  # when this stream stored it (wall clock)


async def stream_scrapes(url: str, domain: str, subjects: str) -> list[Stored]:
    """Every scrape on `subjects` of the stream PROMETHEUS in `domain`, in stream order."""
    nc = await nats.connect(url.split(","))
    try:
        sub = await nc.jetstream(domain=domain).pull_subscribe(subjects, stream=STREAM)
        found: list[Stored] = []
        while True:
            try:
                msgs = await sub.fetch(256, timeout=1.0)
            except nats.errors.TimeoutError:
                break
            for msg in msgs:
                scrape = wire.decode(TOPIC, msg.subject, msg.data, msg.headers, 1 << 20)
                # The page, with the poller's own series (up, ...) after it.
                seq = re.search(rb"^test_seq (\d+)", scrape.body, re.MULTILINE)
                assert seq is not None, scrape.body
                stored = msg.metadata.timestamp.timestamp()
                found.append(Stored(msg.subject, scrape.scrape_time_ms, int(seq[1]), stored))
            # A fetch may return before its batch is full: stop when nothing is left.
            if msgs[-1].metadata.num_pending == 0:
                break
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


@pytest.mark.parametrize("topology", ["cluster"], indirect=True)
async def test_kill_9_the_central_streams_leader_and_the_sources_resume_losing_nothing(
    tmp_path: Path, topology: Topology, pushgateway: Pushgateway
) -> None:
    cluster = topology.cluster
    assert cluster is not None
    datacenters = ("dc1", "dc2")
    # Every scrape kept, at the edge and at the centre, so both can be compared whole.
    keep = {"max_msgs_per_subject": 100_000}
    push = {"push_gateway": {"url": pushgateway.url, "publisher_label": True}}
    data = central_receiver_data(topology, datacenters, **push)
    data["receiver_stream"].update(keep)
    receiver, _ = new_receiver(config.load(write_config(tmp_path, data, "receiver.yaml")))
    targets = {dc: SeqTargets(3) for dc in datacenters}
    for seq in targets.values():
        await seq.start()
    pollers = {
        dc: new_poller(edge_poller(tmp_path, topology, dc, targets[dc].jobs(), keep))
        for dc in datacenters
    }

    def published(dc: str) -> float:
        return metric(pollers[dc][1], "poller_published_total")

    def pushed(dc: str, instance: str = "t0") -> float | None:
        samples = group_samples(pushgateway.metrics_text(), "node", instance)
        return samples.get(f'test_seq{{publisher="{dc}"}}')

    central_url = topology.central_url()
    edges: dict[str, list[Stored]] = {}
    centre: dict[str, list[Stored]] = {}
    try:
        async with running(receiver):
            async with running(pollers["dc1"][0]), running(pollers["dc2"][0]):
                await async_wait_for(
                    lambda: all(pushed(dc) for dc in datacenters), timeout=60, message="no flow"
                )
                leader = cluster.wait_stream_leader(STREAM)
                killed_at = await asyncio.to_thread(cluster.kill_node, leader)
                elected_at = await async_wait_for(
                    lambda: cluster.leader_elected_at(STREAM, killed_at),
                    timeout=60,
                    message="no new leader of the central stream in the servers' logs",
                )
                # The flow goes on for five intervals past the election before the pollers stop.
                then = {dc: published(dc) for dc in datacenters}
                await async_wait_for(
                    lambda: all(published(dc) >= then[dc] + 5 * 3 for dc in datacenters),
                    timeout=60 + 20 * INTERVAL,
                    message="the pollers stopped publishing",
                )
            for dc in datacenters:
                edges[dc] = await stream_scrapes(
                    topology.leaf_url(dc, "admin"), dc, f"{TOPIC}.{dc}.>"
                )

                async def caught_up(dc: str = dc) -> bool:
                    subjects = f"{TOPIC}.{dc}.>"
                    try:
                        centre[dc] = await stream_scrapes(central_url, CENTRAL_DOMAIN, subjects)
                    except ServiceUnavailableError:
                        # This read's own consumer, on a stream just past its election, may
                        # answer 503 for a moment: not yet, read again.
                        return False
                    return len(centre[dc]) >= len(edges[dc])

                await async_wait_for(caught_up, timeout=120, message=f"{dc}: never caught up")
                # The receiver pushed each target's newest scrape.
                newest = {s.subject: s.seq for s in edges[dc]}
                for name in targets[dc].names:
                    subject = wire.subject_for(TOPIC, dc, "node", name)
                    await async_wait_for(
                        lambda: pushed(dc, name) == newest[subject],  # noqa: B023
                        timeout=60,
                        message=f"{dc}/{name}: not its newest scrape at the Pushgateway",
                    )
    finally:
        for seq in targets.values():
            await seq.stop()
    for dc in datacenters:
        key = [(s.subject, s.scrape_ms) for s in centre[dc]]
        assert len(key) == len(set(key)), f"{dc}: a scrape is twice in the central stream"
        # Every scrape of the edge, once, in the edge's order: the sources resumed after
        # the last message the central stream held, on whichever node leads it now.
        assert key == [(s.subject, s.scrape_ms) for s in edges[dc]], f"{dc}: centre != edge"
        # The longest pause in what the centre stored from this datacenter, around the kill.
        stored = [s.stored_at for s in centre[dc]]
        gap = max(b - a for a, b in itertools.pairwise(stored))
        resumed = min(t for t in stored if t > killed_at) - elected_at
        print(
            f"{dc}: {len(stored)} scrapes, all once, in order; election"
            f" {elected_at - killed_at:.2f}s after kill -9 of the leader; the source resumed"
            f" {resumed:.2f}s after it; longest pause at the centre {gap:.2f}s"
        )
