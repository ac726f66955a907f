"""HA pollers and the receiver's HA backstop together: a failover loses no scrape at the centre.

Two poller processes in one HA group, a real nats-server, a receiver with
the backstop on (shared election, default failover_timeout), a real
Pushgateway and VictoriaMetrics as the remote-write store. The new leader
presents a newer lease term (a fencing token), so the backstop takes it at
once instead of refusing it until the old leader has been silent for its
own failover_timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
from pathlib import Path
from typing import Any

import nats
from harness import TOPIC, group_samples, metric, new_receiver, receiver_config, running
from servers import NatsServer, Pushgateway, Target, async_wait_for
from stores import VictoriaMetricsStore
from test_ha_pollers import FAILOVER, INSTANCE, INTERVAL, JOB, REPLICAS, Group, PollerProcess, Seen

from prometheus_streams import wire
from prometheus_streams.receiver.backstop_rule import REASONS


def push_time(pushgateway: Pushgateway) -> float | None:
    """When the Pushgateway last got dc1's group of the test target (its push_time_seconds)."""
    for family_sample, value in group_samples(pushgateway.metrics_text(), JOB, INSTANCE).items():
        if family_sample.startswith("push_time_seconds"):
            return value
    return None


async def test_kill_9_the_leader_and_every_scrape_of_the_new_one_reaches_the_centre(
    tmp_path: Path,
    nats_server: NatsServer,
    pushgateway: Pushgateway,
    victoria_store: VictoriaMetricsStore,
    target: Target,
) -> None:
    pollers = {r: PollerProcess(tmp_path, r, nats_server.url, target.url) for r in REPLICAS}
    group = Group(pollers, {}, target)
    tokens: dict[str, set[str]] = {r: set() for r in REPLICAS}

    async def record(msg: Any) -> None:
        headers = msg.headers or {}
        replica = headers.get(wire.H_REPLICA, "?")
        tokens.setdefault(replica, set()).add(headers.get(wire.H_TERM, ""))
        group.seen.append(
            Seen(time.monotonic(), replica, int(headers.get(wire.H_SCRAPE_TIME, "0")))
        )

    # Every distinct push of the group, by the Pushgateway's own clock.
    pushes: list[float] = []

    async def watch_pushes() -> None:
        while True:
            with contextlib.suppress(OSError):
                pushed = await asyncio.to_thread(push_time, pushgateway)
                if pushed is not None and (not pushes or pushed != pushes[-1]):
                    pushes.append(pushed)
            await asyncio.sleep(INTERVAL / 10)

    nc = await nats.connect(nats_server.url)
    await nc.subscribe(wire.subject_for(TOPIC, "dc1", JOB, INSTANCE), cb=record)
    # The backstop as shipped: on, shared, its failover_timeout the default (30 s).
    receiver, registry = new_receiver(
        receiver_config(
            tmp_path,
            nats_server.url,
            pushgateway.url,
            remote_write=[{"url": victoria_store.write_url, "name": "vm", "remote_timeout": "5s"}],
        )
    )
    watcher = asyncio.create_task(watch_pushes())
    start = time.time()
    try:
        async with running(receiver):
            leader = await group.leader_publishing()
            standby = group.other(leader)
            await async_wait_for(lambda: len(pushes) >= 3, timeout=60, message="nothing pushed")
            group.pollers[leader].signal(signal.SIGKILL)
            killed = time.monotonic()
            pushed_before = len(pushes)
            await async_wait_for(
                lambda: sum(1 for m in group.seen if m.replica == standby) >= 5,
                timeout=60,
                message="the new leader did not publish five scrapes",
            )
            new = sorted(m.scrape_ms for m in group.seen if m.replica == standby)
            last_old = max(m.scrape_ms for m in group.seen if m.replica == leader)
            stored: set[int] = set()

            def refused() -> dict[str, float]:
                return {
                    reason: metric(
                        registry, "receiver_ha_refused_total", publisher="dc1", reason=reason
                    )
                    for reason in REASONS
                }

            async def stored_or_refused() -> bool:
                selector = f'test_requests_total{{instance="{INSTANCE}"}}'
                found = await victoria_store.samples(selector, start)
                stored.clear()
                stored.update(t for points in found.values() for t, _ in points)
                return set(new) <= stored or sum(refused().values()) > 0

            await async_wait_for(
                stored_or_refused, timeout=60, interval=0.5, message="the store lacks them"
            )
            assert sum(refused().values()) == 0, f"the backstop refused: {refused()}"
            assert set(new) <= stored
            await async_wait_for(
                lambda: len(pushes) >= pushed_before + 3,
                timeout=60,
                message="the new leader's scrapes were not pushed",
            )
            switches = metric(registry, "receiver_ha_replica_switches_total", publisher="dc1")
    finally:
        watcher.cancel()
        await nc.close()
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in pollers.values()))
        for poller in pollers.values():
            print(f"--- poller {poller.replica} ---\n{poller.log()[-3000:]}")
    # The gap in scrape time between the old leader's last scrape and the new one's first,
    # and between the Pushgateway's pushes around the kill.
    gap_scrapes = (new[0] - last_old) / 1000
    gap_pushes = max(b - a for a, b in itertools.pairwise(pushes[pushed_before - 1 :]))
    first = group.first_from(standby, killed)
    assert first is not None
    print(
        f"failover: new leader's first publish {first.at - killed:.2f}s after kill -9;"
        f" {gap_scrapes:.2f}s between the old leader's last scrape and the new one's first,"
        f" {gap_pushes:.2f}s between pushes at the Pushgateway"
        f" (failover_timeout {FAILOVER:g}s, interval {INTERVAL:g}s)"
    )
    assert tokens[leader] and tokens[standby] and "" not in tokens[leader] | tokens[standby]
    # The new term's token is higher: that is what lets the backstop switch at once.
    assert min(int(t) for t in tokens[standby]) > max(int(t) for t in tokens[leader])
    assert switches == 1
    # In scrape slots (both replicas scrape on the target's one phase; a scrape
    # starts a few milliseconds after its slot): at most failover_timeout + one interval.
    assert round(gap_scrapes / INTERVAL) * INTERVAL <= FAILOVER + INTERVAL
    # One interval of slack for the push latency on a shared, slow test machine.
    assert gap_pushes <= FAILOVER + 2 * INTERVAL
