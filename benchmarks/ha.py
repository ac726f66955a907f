"""HA pollers: the failover gap after `kill -9` of the leader, and what the lease costs on the wire.

Two pollers of one HA group scrape the same node-sized targets into one
nats-server. A client subscribed to every subject of the account sees each
message: the scrapes (bytes of data), and the lease's requests and their
replies (bytes of lease traffic). The leader is killed several times; the gap
is measured on the stream, per target, from the old leader's last scrape to
the new leader's first.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field

import nats
from nats.aio.msg import Msg

from benchmarks.context import Context
from benchmarks.services import (
    Service,
    StreamSettings,
    nats_url,
    start_nats,
    start_poller,
    target_urls,
)
from prometheus_streams import wire
from prometheus_streams.poller.ha import bucket_name

GROUP = "bench"
TOPIC_PREFIX = "prometheus."


@dataclass
class Seen:
    """One scrape on the stream's subjects."""

    at: float  # monotonic
    subject: str
    replica: str


@dataclass
class Wire:
    """Everything the recorder saw, by kind."""

    scrapes: list[Seen] = field(default_factory=list)
    data_bytes: int = 0
    lease_bytes: int = 0
    lease_messages: int = 0
    lease_replies: set[str] = field(default_factory=set)


def _size(msg: Msg) -> int:
    headers = msg.headers or {}
    return len(msg.data) + (wire.header_size(headers) if headers else 0)


class Recorder:
    """A subscription to `>` in a thread of its own, so the scenario's waits do not stall it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen = Wire()
        self._lease_marks = (f"KV_{bucket_name(GROUP)}", f"$KV.{bucket_name(GROUP)}.")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("ha: the recorder did not connect to NATS")
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def reset(self) -> None:
        """Count bytes from now on."""
        self.seen.data_bytes = self.seen.lease_bytes = self.seen.lease_messages = 0

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        nc = await nats.connect(self.url, pending_size=256 * 1024 * 1024)
        await nc.subscribe(">", cb=self._on, pending_bytes_limit=256 * 1024 * 1024)
        await nc.flush()
        self._ready.set()
        await self._stop.wait()
        await nc.close()

    async def _on(self, msg: Msg) -> None:
        seen = self.seen
        if msg.subject.startswith(TOPIC_PREFIX):
            headers = msg.headers or {}
            seen.data_bytes += _size(msg)
            seen.scrapes.append(
                Seen(time.monotonic(), msg.subject, headers.get(wire.H_REPLICA, "?"))
            )
        elif any(mark in msg.subject for mark in self._lease_marks):
            seen.lease_bytes += _size(msg)
            seen.lease_messages += 1
            if msg.reply:
                seen.lease_replies.add(msg.reply)
        elif msg.subject in seen.lease_replies:
            seen.lease_replies.discard(msg.subject)
            seen.lease_bytes += _size(msg)
            seen.lease_messages += 1


def _leader(recorder: Recorder, timeout: float) -> str:
    """The replica of the newest scrapes, once the last 20 all come from one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tail = recorder.seen.scrapes[-20:]
        if len(tail) == 20 and len({s.replica for s in tail}) == 1:
            return tail[0].replica
        time.sleep(0.1)
    raise RuntimeError("ha: no replica publishes steadily")


def _gaps(scrapes: list[Seen], old: str, new: str, killed: float) -> tuple[float, float]:
    """From the kill to the new leader's first scrape; the worst per-target gap on the stream."""
    first_new = min(s.at for s in scrapes if s.replica == new and s.at > killed)
    last_old: dict[str, float] = {}
    first: dict[str, float] = {}
    for s in scrapes:
        if s.replica == old and s.at <= killed:
            last_old[s.subject] = s.at
        elif s.replica == new and s.at > killed and s.subject not in first:
            first[s.subject] = s.at
    worst = max(first[subject] - at for subject, at in last_old.items() if subject in first)
    return first_new - killed, worst


def ha(ctx: Context) -> None:
    """Failover gap (median and worst of several kills) and lease traffic against data."""
    p = ctx.profile
    assert ctx.targets is not None
    n, interval, failover = p.ha_targets, p.ha_interval, p.ha_failover
    urls = target_urls(ctx.targets, n)
    settings = StreamSettings()
    work = ctx.run_dir("ha")
    sec = "ha"
    with ctx.procs.scope():
        nats_service = start_nats(ctx.procs, work)
        with Recorder(nats_url(nats_service)) as recorder:
            pollers: dict[str, Service] = {}

            def start(replica: str, generation: int) -> None:
                pollers[replica] = start_poller(
                    ctx.procs,
                    work,
                    nats_service,
                    urls,
                    interval,
                    settings,
                    name=f"poller-{replica}-{generation}",
                    ha={"group": GROUP, "failover_timeout": f"{failover:g}s", "replica": replica},
                )

            start("a", 0)
            start("b", 0)
            leader = _leader(recorder, 60 + 3 * interval)
            # The lease's cost in a steady state: one leader renewing, one standby looking.
            recorder.reset()
            window = max(10 * interval, 5 * failover)
            time.sleep(window)
            seen = recorder.seen
            share = seen.lease_bytes / max(1, seen.data_bytes)
            ctx.record(sec, "ha_lease_share_pct", "lease traffic / data bytes", "%", 100 * share)
            lease_rate, data_rate = seen.lease_bytes / window, seen.data_bytes / window
            ctx.record(sec, "ha_lease_bytes_per_s", "lease traffic (2 replicas)", "B/s", lease_rate)
            ctx.record(sec, "ha_data_bytes_per_s", "scrapes published", "B/s", data_rate)
            ctx.log(
                f"ha: lease {seen.lease_bytes / window:.0f} B/s in {seen.lease_messages} messages, "
                f"data {seen.data_bytes / window:.0f} B/s ({n} node targets every {interval:g}s): "
                f"{100 * share:.3f}%"
            )
            for kill in range(p.ha_kills):
                standby = "b" if leader == "a" else "a"
                os.killpg(pollers[leader].proc.pid, signal.SIGKILL)
                killed = time.monotonic()
                deadline = killed + 60 + failover + 3 * interval
                while not any(
                    s.replica == standby and s.at > killed for s in recorder.seen.scrapes[-n:]
                ):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"ha: the standby never published after kill {kill + 1}")
                    time.sleep(0.02)
                # Every target of the new leader has published once.
                time.sleep(interval + 0.5)
                from_kill, worst = _gaps(recorder.seen.scrapes, leader, standby, killed)
                ctx.record(
                    sec,
                    "ha_failover_from_kill_s",
                    "kill -9 of the leader to the standby's first scrape",
                    "s",
                    from_kill,
                )
                ctx.record(
                    sec, "ha_failover_gap_s", "worst per-target gap on the stream", "s", worst
                )
                ctx.log(
                    f"ha: kill {kill + 1}: first scrape of {standby} {from_kill:.2f}s after "
                    f"kill -9 of {leader}, worst target gap {worst:.2f}s (failover_timeout "
                    f"{failover:g}s, interval {interval:g}s)"
                )
                ctx.procs.stop(pollers[leader].proc)
                start(leader, kill + 1)
                leader = standby
            gaps = ctx.figures["ha_failover_gap_s"].values
            median, worst = statistics.median(gaps), max(gaps)
            ctx.log(f"ha: failover gap median {median:.2f}s, worst {worst:.2f}s")
