"""The pipeline on a real 3-node JetStream cluster: losing a node, losing the stream's leader.

Poller and receiver get all three URLs and a stream (and so a consumer) of
three replicas. Every target's page carries a number that counts its
scrapes; a recording proxy in front of the real Pushgateway shows each push,
so "nothing twice, nothing out of order" and the longest gap between two
pushes of a group are measured, not guessed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from cluster import NatsCluster
from harness import new_poller, new_receiver, poller_config, receiver_config, running
from pushlog import PushRecorder, SeqTargets
from servers import Pushgateway, async_wait_for

from prometheus_streams.receiver.app import Receiver

INTERVAL = 2.0  # seconds, as the issue measured it
TARGETS = 50
STREAM = "PROMETHEUS"
DURABLE = "receiver"
REPLICAS = {"replicas": 3}


@dataclass
class Pipeline:
    """A poller and a receiver on the cluster, the targets and the push record."""

    cluster: NatsCluster
    targets: SeqTargets
    recorder: PushRecorder
    receiver: Receiver

    def pushes_after(self, moment: float) -> dict[str, int]:
        """How many pushes each target had after `moment` (monotonic)."""
        counts = dict.fromkeys(self.targets.names, 0)
        for push in self.recorder.pushes:
            if push.at > moment:
                counts[push.instance] = counts.get(push.instance, 0) + 1
        return counts

    async def wait_pushes_after(self, moment: float, n: int, what: str) -> None:
        """Wait until every target was pushed `n` times after `moment`."""
        await async_wait_for(
            lambda: min(self.pushes_after(moment).values()) >= n,
            timeout=60 + 10 * n * INTERVAL,
            message=f"not every target pushed {n} times {what}",
        )

    def check_order(self) -> None:
        """Nothing pushed twice, no group back in time."""
        assert self.recorder.twice() == [], "pushed twice"
        assert self.recorder.out_of_order() == [], "a group went back in time"


@asynccontextmanager
async def pipeline(
    tmp_path: Path, cluster: NatsCluster, pushgateway: Pushgateway, targets: int = TARGETS
) -> AsyncIterator[Pipeline]:
    """Targets, poller, recorder and receiver running on `cluster` until the block ends."""
    seq = SeqTargets(targets)
    recorder = PushRecorder(pushgateway.url)
    await seq.start()
    await recorder.start()
    urls = cluster.client_urls
    poller, _ = new_poller(
        poller_config(
            tmp_path,
            urls[0],
            seq.jobs(),
            scrape_interval=f"{INTERVAL}s",
            poller_stream={"urls": urls, "topic": "prometheus", **REPLICAS},
        )
    )
    receiver, _ = new_receiver(
        receiver_config(
            tmp_path,
            urls[0],
            recorder.url,
            stream={"urls": urls, "client_id": DURABLE, **REPLICAS},
        )
    )
    try:
        async with running(poller), running(receiver):
            yield Pipeline(cluster, seq, recorder, receiver)
    finally:
        await recorder.stop()
        await seq.stop()


async def _steady(p: Pipeline) -> float:
    """Wait until every target is pushed regularly; the time (monotonic) from which it is."""
    await p.wait_pushes_after(0.0, 1, "at start")
    settled = time.monotonic()
    await p.wait_pushes_after(settled, 2, "in steady state")
    return settled


def _warnings(caplog: pytest.LogCaptureFixture, logger: str) -> int:
    """Warnings of `logger` about NATS (a slow target on a busy machine is not counted)."""
    return sum(
        1
        for r in caplog.records
        if r.levelno >= logging.WARNING
        and r.name == logger
        and not r.getMessage().startswith("scrape of")
    )


async def _not_ready_for(receiver: Receiver, stop: asyncio.Event) -> float:
    """Seconds the receiver's /-/ready said 503 until `stop` (sampled every 0.1 s)."""
    down = 0.0
    while not stop.is_set():
        if not receiver.ready()[0]:
            down += 0.1
        await asyncio.sleep(0.1)
    return down


async def test_stream_and_consumer_have_three_replicas(
    tmp_path: Path, nats_cluster: NatsCluster, pushgateway: Pushgateway
) -> None:
    async with pipeline(tmp_path, nats_cluster, pushgateway, targets=2) as p:
        await p.wait_pushes_after(0.0, 1, "at start")
        nc = await nats.connect(nats_cluster.client_urls)
        try:
            js = nc.jetstream()
            stream = await js.stream_info(STREAM)
            consumer = await js.consumer_info(STREAM, DURABLE)
        finally:
            await nc.close()
    assert stream.config.num_replicas == 3
    assert stream.cluster is not None and len(stream.cluster.replicas or []) == 2
    # The consumer inherits the stream's replicas (num_replicas 0 means "as the stream").
    assert consumer.cluster is not None and len(consumer.cluster.replicas or []) == 2
    assert consumer.cluster.leader


async def test_losing_a_follower_is_invisible(
    tmp_path: Path,
    nats_cluster: NatsCluster,
    pushgateway: Pushgateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with pipeline(tmp_path, nats_cluster, pushgateway) as p:
        settled = await _steady(p)
        # A node that leads neither the stream nor the consumer (with three, one always does not).
        leaders = {
            nats_cluster.wait_stream_leader(STREAM),
            nats_cluster.consumer_leader(STREAM, DURABLE),
        }
        follower = min({0, 1, 2} - leaders)
        killed = time.monotonic()
        await asyncio.to_thread(nats_cluster.kill_node, follower)
        await p.wait_pushes_after(killed, 3, "after a follower was killed")
        gap = p.recorder.longest_gap(settled, time.monotonic())
        baseline = p.recorder.longest_gap(settled, killed)
    print(
        f"follower killed: longest gap between pushes {gap:.2f}s "
        f"(before the kill {baseline:.2f}s, interval {INTERVAL}s)"
    )
    p.check_order()
    # The gap beyond the interval is at most one interval: one scrape late, none lost.
    assert gap - INTERVAL <= INTERVAL, f"a follower's loss showed: {gap:.2f}s between pushes"


async def _move_consumer_leader(cluster: NatsCluster, to: int) -> None:
    """Make node `to` lead the durable consumer (a step-down with a preferred server)."""
    nc = await nats.connect(cluster.client_urls)
    try:
        request = {"placement": {"preferred": cluster.server_name(to)}}
        subject = f"$JS.API.CONSUMER.LEADER.STEPDOWN.{STREAM}.{DURABLE}"
        if cluster.consumer_leader(STREAM, DURABLE) != to:
            await nc.request(subject, json.dumps(request).encode(), timeout=10)
        await async_wait_for(
            lambda: cluster.consumer_leader(STREAM, DURABLE) == to,
            timeout=30,
            message=f"the consumer leader did not move to node {to}",
        )
    finally:
        await nc.close()


@pytest.mark.parametrize("consumer_too", [False, True], ids=["stream", "stream+consumer"])
async def test_losing_the_stream_leader_costs_only_the_election(
    tmp_path: Path,
    nats_cluster: NatsCluster,
    pushgateway: Pushgateway,
    caplog: pytest.LogCaptureFixture,
    consumer_too: bool,
) -> None:
    caplog.set_level(logging.INFO)
    async with pipeline(tmp_path, nats_cluster, pushgateway) as p:
        await _steady(p)
        leader = nats_cluster.wait_stream_leader(STREAM)
        if consumer_too:
            await _move_consumer_leader(nats_cluster, leader)
        elif nats_cluster.consumer_leader(STREAM, DURABLE) == leader:
            await _move_consumer_leader(nats_cluster, (leader + 1) % 3)
        settled = await _steady(p)
        consumer_leader = nats_cluster.consumer_leader(STREAM, DURABLE)
        caplog.clear()
        stop_watching = asyncio.Event()
        watching = asyncio.ensure_future(_not_ready_for(p.receiver, stop_watching))
        killed = time.monotonic()
        killed_wall = await asyncio.to_thread(nats_cluster.kill_node, leader)
        stream_elected = await async_wait_for(
            lambda: nats_cluster.leader_elected_at(STREAM, killed_wall),
            timeout=60,
            message="no new stream leader in the servers' logs",
        )
        elected = stream_elected
        if consumer_leader == leader:
            elected = max(
                elected,
                await async_wait_for(
                    lambda: nats_cluster.consumer_elected_at(STREAM, DURABLE, killed_wall),
                    timeout=60,
                    message="no new consumer leader in the servers' logs",
                ),
            )
        elected_at = killed + (elected - killed_wall)  # on the monotonic clock
        await p.wait_pushes_after(elected_at, 3, "after the election")
        gap = p.recorder.longest_gap(settled, time.monotonic())
        stop_watching.set()
        not_ready = await watching
        warnings = _warnings(caplog, "prometheus_streams.poller.app")
        consumer_warnings = _warnings(caplog, "prometheus_streams.receiver.consumer")
    election = elected - killed_wall
    # Every target has a scrape waiting by the time of the election: each should go at once.
    resumed = max(
        min(push.at for push in pushes if push.at > elected_at) - elected_at
        for pushes in p.recorder.by_instance().values()
    )
    print(
        f"stream leader killed: election {election:.2f}s"
        f" (stream {stream_elected - killed_wall:.2f}s,"
        f" consumer leader {'also' if consumer_leader == leader else 'not'} on it);"
        f" longest gap between pushes {gap:.2f}s; every target pushed again {resumed:.2f}s"
        f" after the election; {warnings} poller warnings, {consumer_warnings} from the"
        f" receiver's consumer; the receiver was not ready for {not_ready:.1f}s"
    )
    p.check_order()
    assert resumed <= INTERVAL, f"pushes resumed {resumed:.2f}s after the election"
    assert gap <= election + 2 * INTERVAL, f"{gap:.2f}s between pushes, election {election:.2f}s"
    # One line when the stream stops answering, one when it answers again.
    assert warnings <= 2, f"{warnings} poller warnings for one election"
    assert consumer_warnings <= 2, f"{consumer_warnings} consumer warnings for one election"
    # An election is no reason to say 503: the stream and the consumer are there.
    assert not_ready <= INTERVAL, f"the receiver was not ready for {not_ready:.1f}s"


@pytest.mark.parametrize("down", [0, 1, 2])
async def test_any_one_node_down_pipeline_keeps_working(
    tmp_path: Path, nats_cluster: NatsCluster, pushgateway: Pushgateway, down: int
) -> None:
    async with pipeline(tmp_path, nats_cluster, pushgateway, targets=5) as p:
        await _steady(p)
        await asyncio.to_thread(nats_cluster.stop_node, down)
        stopped = time.monotonic()
        await p.wait_pushes_after(stopped, 3, f"with node {down} down")
        await asyncio.to_thread(nats_cluster.restart_node, down)
        await p.wait_pushes_after(time.monotonic(), 2, f"with node {down} back")
    p.check_order()
