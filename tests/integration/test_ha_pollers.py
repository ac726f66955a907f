"""Two pollers in one HA group on the same targets: exactly one publishes; failover and fencing.

The pollers run as processes (so they can be killed and stopped) against a
real nats-server, each through a TCP proxy of its own; a real receiver
pushes to a real Pushgateway. Every message on the stream's subjects is
recorded with its replica header, by a plain subscription that sees every
publish, accepted or not.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import pytest_asyncio
import yaml
from cluster import NatsCluster
from harness import TOPIC, new_receiver, receiver_config, running
from servers import HOST, NatsServer, Pushgateway, Target, async_wait_for, free_port, http_request
from tcpproxy import TcpProxy

from prometheus_streams import wire
from prometheus_streams.poller.ha import bucket_name
from prometheus_streams.receiver.app import Receiver

PROGRAM = (sys.executable, "-m", "prometheus_streams")
INTERVAL = 1.0
FAILOVER = 2.0
REPLICAS = ("a", "b")
# The subject of the test target's scrapes (job node, instance target-1).
JOB, INSTANCE = "node", "target-1"


class PollerProcess:
    """One replica: a `prometheus-streams poller` process with its monitor port."""

    def __init__(
        self,
        tmp_path: Path,
        replica: str,
        nats_url: str,
        target_url: str,
        stream: dict[str, Any] | None = None,
    ) -> None:
        self.replica = replica
        self.port = free_port()
        self.config_path = tmp_path / f"poller-{replica}.yaml"
        self.log_path = tmp_path / f"poller-{replica}.log"
        self.config_path.write_text(
            yaml.safe_dump(
                {
                    "identity": "dc1",
                    "scrape_interval": f"{INTERVAL:g}s",
                    "monitor_port": self.port,
                    "monitor_address": HOST,
                    "shutdown_grace": "5s",
                    "poller_stream": {"urls": nats_url, "topic": TOPIC, **(stream or {})},
                    "jobs": {JOB: {"targets": [{"name": INSTANCE, "url": target_url}]}},
                    "ha": {
                        "group": "dc1-pollers",
                        "failover_timeout": f"{FAILOVER:g}s",
                        "replica": replica,
                    },
                }
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                [*PROGRAM, "--config", str(self.config_path), "poller"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signum)

    def status(self) -> dict[str, Any] | None:
        try:
            code, body = http_request("GET", f"http://{HOST}:{self.port}/api/v1/status")
        except OSError:
            return None
        document: dict[str, Any] | None = json.loads(body) if code == 200 else None
        return document

    def metric(self, name: str, labels: str = "") -> float:
        """One of its own metrics (0 when absent)."""
        code, body = http_request("GET", f"http://{HOST}:{self.port}/metrics")
        assert code == 200
        wanted = f"prometheus_streams_{name}{labels} "
        for line in body.decode().splitlines():
            if line.startswith(wanted):
                return float(line.split()[-1])
        return 0.0

    def ha(self) -> dict[str, Any]:
        status = self.status()
        return (status or {}).get("ha") or {}

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a stopped process cannot take SIGTERM
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Seen:
    """One message on the stream's subjects."""

    at: float  # monotonic, when the recorder got it
    replica: str
    scrape_ms: int


@dataclass
class Group:
    """Two replicas, their proxies, and every message of the test target."""

    pollers: dict[str, PollerProcess]
    proxies: dict[str, TcpProxy]
    target: Target
    seen: list[Seen] = field(default_factory=list)

    def replicas_after(self, at: float) -> set[str]:
        return {m.replica for m in self.seen if m.at > at}

    def first_from(self, replica: str, after: float) -> Seen | None:
        return next((m for m in self.seen if m.replica == replica and m.at > after), None)

    def last_from(self, replica: str, before: float) -> Seen | None:
        earlier = (m for m in reversed(self.seen) if m.replica == replica and m.at <= before)
        return next(earlier, None)

    def publishing(self) -> str | None:
        """The replica of the newest message."""
        return self.seen[-1].replica if self.seen else None

    def changes(self) -> int:
        """How often the replica changes along the scrapes, in scrape-time order."""
        order = [m.replica for m in sorted(self.seen, key=lambda m: m.scrape_ms)]
        return sum(1 for a, b in itertools.pairwise(order) if a != b)

    def shared_intervals(self) -> list[int]:
        """Scrape intervals (slots of the aligned schedule) with data of both replicas."""
        by_slot: dict[int, set[str]] = {}
        for m in self.seen:
            by_slot.setdefault(int(m.scrape_ms // (INTERVAL * 1000)), set()).add(m.replica)
        return sorted(slot for slot, replicas in by_slot.items() if len(replicas) > 1)

    def other(self, replica: str) -> str:
        return next(r for r in REPLICAS if r != replica)

    async def kill_leader(self, leader: str, standby: str) -> tuple[float, Seen, Seen]:
        """kill -9 the leader: when (monotonic), the standby's first message after, and
        the leader's last before."""
        self.pollers[leader].signal(signal.SIGKILL)
        killed = time.monotonic()
        first = await async_wait_for(
            lambda: self.first_from(standby, killed),
            timeout=60,
            message="the standby never published",
        )
        last = self.last_from(leader, killed)
        assert last is not None
        return killed, first, last

    async def leader_publishing(self, messages: int = 3) -> str:
        """Wait until one replica has published `messages` in a row; its name."""

        def steady() -> str | None:
            tail = self.seen[-messages:]
            if len(tail) == messages and len({m.replica for m in tail}) == 1:
                return tail[0].replica
            return None

        return await async_wait_for(steady, timeout=60, message="no replica publishes steadily")


@asynccontextmanager
async def started_group(
    tmp_path: Path,
    pollers: dict[str, PollerProcess],
    proxies: dict[str, TcpProxy],
    target: Target,
    nats_urls: list[str],
    receiver: Receiver,
) -> AsyncIterator[Group]:
    """The group recorded on `nats_urls` and `receiver` running; every poller stopped after."""
    ha = Group(pollers, proxies, target)
    subject = wire.subject_for(TOPIC, "dc1", JOB, INSTANCE)

    async def record(msg: Any) -> None:
        headers = msg.headers or {}
        ha.seen.append(
            Seen(
                time.monotonic(),
                headers.get(wire.H_REPLICA, "?"),
                int(headers.get(wire.H_SCRAPE_TIME, "0")),
            )
        )

    nc = await nats.connect(nats_urls)
    await nc.subscribe(subject, cb=record)
    try:
        async with running(receiver):
            yield ha
    finally:
        await nc.close()
        # In threads: the proxies and the target live on this event loop.
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in pollers.values()))
        for proxy in proxies.values():
            await proxy.stop()
        for poller in pollers.values():
            print(f"--- poller {poller.replica} ---\n{poller.log()[-3000:]}")


@pytest_asyncio.fixture
async def group(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway, target: Target
) -> AsyncIterator[Group]:
    """Two replicas of poller dc1 on one target, a receiver, and a recorder of the stream."""
    proxies = {r: TcpProxy(HOST, nats_server.port) for r in REPLICAS}
    for proxy in proxies.values():
        await proxy.start()
    pollers = {
        r: PollerProcess(tmp_path, r, f"nats://{HOST}:{proxies[r].port}", target.url)
        for r in REPLICAS
    }
    receiver, _ = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with started_group(tmp_path, pollers, proxies, target, [nats_server.url], receiver) as ha:
        yield ha


def _pushed_by_dc1(pushgateway: Pushgateway) -> bool:
    return any(
        g.get("publisher") == "dc1" and g.get("instance") == INSTANCE
        for g in pushgateway.group_labels()
    )


async def test_kill_9_the_leader_and_the_standby_publishes_within_failover_plus_one_interval(
    group: Group, pushgateway: Pushgateway
) -> None:
    leader = await group.leader_publishing()
    standby = group.other(leader)
    await async_wait_for(lambda: _pushed_by_dc1(pushgateway), timeout=60, message="nothing pushed")
    # Standbys do not scrape: the target carries one poller's load.
    assert group.pollers[standby].ha().get("leading") is False
    requests, since = group.target.requests, time.monotonic()
    await asyncio.sleep(5 * INTERVAL)
    per_interval = (group.target.requests - requests) / ((time.monotonic() - since) / INTERVAL)
    print(f"target requests per interval with two replicas: {per_interval:.2f}")
    assert per_interval <= 1.5, "the standby scrapes the target too"

    killed, first, last = await group.kill_leader(leader, standby)
    from_kill, at_centre = first.at - killed, first.at - last.at
    print(
        f"failover: standby's first publish {from_kill:.2f}s after kill -9, "
        f"gap at the centre {at_centre:.2f}s (failover_timeout {FAILOVER:g}s, "
        f"interval {INTERVAL:g}s)"
    )
    # One interval of slack for a shared, slow test machine.
    assert from_kill <= FAILOVER + 2 * INTERVAL
    assert group.shared_intervals() == []
    assert group.changes() == 1
    await async_wait_for(
        lambda: group.pollers[standby].ha().get("leader") == standby,
        timeout=30,
        message="the survivor does not show itself as leader",
    )
    survivor = group.pollers[standby]
    assert survivor.ha()["leader_changes"] == 1
    labels = '{ha_group="dc1-pollers"}'
    assert survivor.metric("poller_ha_leading", labels) == 1
    assert survivor.metric("poller_ha_leader_changes_total", labels) == 1
    leads = f'{{ha_group="dc1-pollers",replica="{standby}"}}'
    assert survivor.metric("poller_ha_leader", leads) == 1
    assert 0 <= survivor.metric("poller_ha_seconds_since_renewal", labels) < FAILOVER


async def test_sigstop_past_the_lease_and_the_old_leader_never_publishes_again(
    group: Group,
) -> None:
    # A slow target: the leader is stopped with a scrape under way, which it
    # finishes after SIGCONT, in a term that is over.
    group.target.delay = INTERVAL / 2
    leader = await group.leader_publishing()
    standby = group.other(leader)
    requests = group.target.requests
    await async_wait_for(lambda: group.target.requests > requests, timeout=30, interval=0.005)
    group.pollers[leader].signal(signal.SIGSTOP)
    stopped = time.monotonic()
    await async_wait_for(
        lambda: group.first_from(standby, stopped), timeout=60, message="no takeover"
    )
    # Well past its lease: it resumes believing nothing, fenced by its own clock.
    await asyncio.sleep(2 * INTERVAL)
    group.pollers[leader].signal(signal.SIGCONT)
    resumed = time.monotonic()
    await async_wait_for(
        lambda: group.pollers[leader].ha().get("leader") == standby,
        timeout=30,
        message="the resumed replica does not see the new leader",
    )
    await asyncio.sleep(4 * INTERVAL)
    assert group.replicas_after(resumed) == {standby}, "the old leader published after SIGCONT"
    assert group.pollers[leader].ha()["leading"] is False
    assert group.shared_intervals() == []
    assert group.changes() == 1
    # The scrape it finished after SIGCONT was fenced off, not published.
    assert group.pollers[leader].metric("poller_dropped_total", '{reason="not_leader"}') >= 1


async def test_cut_the_leaders_nats_link_then_restore_it_one_leader_change(group: Group) -> None:
    leader = await group.leader_publishing()
    standby = group.other(leader)
    await group.proxies[leader].cut()
    cut = time.monotonic()
    await async_wait_for(
        lambda: group.first_from(standby, cut), timeout=60, message="the standby never took over"
    )
    await asyncio.sleep(2 * INTERVAL)
    await group.proxies[leader].restore()
    await async_wait_for(
        lambda: (group.pollers[leader].status() or {}).get("nats_connected"),
        timeout=60,
        message="the cut replica did not reconnect",
    )
    await async_wait_for(
        lambda: group.pollers[leader].ha().get("leader") == standby,
        timeout=30,
        message="the reconnected replica does not see the new leader",
    )
    restored = time.monotonic()
    await asyncio.sleep(4 * INTERVAL)
    assert group.replicas_after(restored) == {standby}
    assert group.changes() == 1
    assert group.shared_intervals() == []


async def test_twenty_failures_in_a_row_make_exactly_one_leader_change_each(group: Group) -> None:
    leader = await group.leader_publishing()
    for failure in range(1, 21):
        standby = group.other(leader)
        group.pollers[leader].signal(signal.SIGSTOP)
        stopped = time.monotonic()
        await async_wait_for(
            lambda: group.first_from(standby, stopped),  # noqa: B023 - awaited in the loop
            timeout=60,
            message=f"failure {failure}: the standby never took over",
        )
        group.pollers[leader].signal(signal.SIGCONT)
        # The new leader keeps the lease: no change back once the old one resumes.
        await async_wait_for(
            lambda: group.pollers[leader].ha().get("leader") == standby,  # noqa: B023
            timeout=30,
            message=f"failure {failure}: the resumed replica does not see the new leader",
        )
        assert group.changes() == failure, f"failure {failure}: {group.changes()} changes"
        leader = standby
    await asyncio.sleep(2 * INTERVAL)
    assert group.changes() == 20
    assert group.shared_intervals() == []
    # Each replica saw every change (the stopped one when it resumed).
    assert [group.pollers[r].ha()["leader_changes"] for r in REPLICAS] == [20, 20]
    print(f"20 failures, {group.changes()} leader changes, {len(group.seen)} scrapes on the stream")


@pytest_asyncio.fixture
async def cluster_group(
    tmp_path: Path, nats_cluster: NatsCluster, pushgateway: Pushgateway, target: Target
) -> AsyncIterator[Group]:
    """The group on the 3-node cluster: every process has all three URLs, streams 3 replicas."""
    urls = nats_cluster.client_urls
    pollers = {
        r: PollerProcess(tmp_path, r, ",".join(urls), target.url, {"replicas": 3}) for r in REPLICAS
    }
    stream = {"urls": urls, "replicas": 3}
    receiver, _ = new_receiver(receiver_config(tmp_path, urls[0], pushgateway.url, stream=stream))
    async with started_group(tmp_path, pollers, {}, target, urls, receiver) as ha:
        yield ha


async def test_on_a_cluster_kill_9_the_lease_buckets_leader_then_the_leading_poller(
    cluster_group: Group, nats_cluster: NatsCluster
) -> None:
    group = cluster_group
    await group.leader_publishing()
    bucket = f"KV_{bucket_name('dc1-pollers')}"
    # The lease lives as long as the cluster does: on all three nodes.
    assert len(nats_cluster.stream_replicas(bucket).get("replicas") or []) == 2
    node = nats_cluster.wait_stream_leader(bucket)
    killed = time.monotonic()
    killed_wall = await asyncio.to_thread(nats_cluster.kill_node, node)
    elected_wall = await async_wait_for(
        lambda: nats_cluster.leader_elected_at(bucket, killed_wall),
        timeout=60,
        message="no new leader of the lease bucket in the servers' logs",
    )
    elected = killed + (elected_wall - killed_wall)
    # Past the election one replica publishes on, and both see it lead.
    await async_wait_for(
        lambda: len([m for m in group.seen if m.at > elected]) >= 5,
        timeout=60,
        message="nobody published after the lease bucket's election",
    )
    leader = await group.leader_publishing(5)
    standby = group.other(leader)
    await async_wait_for(
        lambda: all(p.ha().get("leader") == leader for p in group.pollers.values()),
        timeout=30,
        message="the replicas disagree on the leader",
    )
    pause = max(b.at - a.at for a, b in itertools.pairwise(group.seen) if b.at > killed)
    changes = group.changes()
    print(
        f"lease bucket's leader killed: election {elected_wall - killed_wall:.2f}s,"
        f" longest pause at the centre {pause:.2f}s, {changes} leader change(s)"
    )
    assert group.shared_intervals() == []
    assert changes <= 1

    # Then the leading poller, with one of the three nodes still down.
    killed, first, last = await group.kill_leader(leader, standby)
    print(
        f"then the leading poller killed: the standby's first publish {first.at - killed:.2f}s"
        f" after, gap at the centre {first.at - last.at:.2f}s"
    )
    # One interval of slack for a shared, slow test machine, as on one server.
    assert first.at - killed <= FAILOVER + 2 * INTERVAL
    assert group.shared_intervals() == []
    assert group.changes() == changes + 1
