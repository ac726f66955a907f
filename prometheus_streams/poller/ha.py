"""A poller in an HA group: leads under a fenced lease, stands by warm otherwise.

The lease is a key in a JetStream key-value bucket of the group's own
(transport/lease.py); the outbox asks `fence()` right before each publish.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from prometheus_streams.config.ha import HAConfig
from prometheus_streams.transport import Connection
from prometheus_streams.transport.lease import Lease

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_=-]")


def bucket_name(group: str) -> str:
    """The group's own bucket: its TTL is the group's failover_timeout."""
    return f"prometheus-streams-ha-{group}"


def lease_key(identity: str) -> str:
    """The key of one publisher (datacenter) in the bucket; unique even when escaped."""
    token = _KEY_UNSAFE.sub("_", identity)
    if token != identity:
        token += "_" + hashlib.sha256(identity.encode()).hexdigest()[:8]
    return f"publisher.{token}"


class HAMember:
    """This poller's place in its HA group: the lease, its figures, its status."""

    def __init__(
        self, ha: HAConfig, identity: str, conn: Connection, registry: CollectorRegistry
    ) -> None:
        self.config = ha
        self.lease = Lease(
            lambda: conn.js,
            lease_key(identity),
            ha.replica,
            ttl=ha.failover_timeout,
            bucket=bucket_name(ha.group),
            # As many as the stream's: on a cluster the lease must outlive a node.
            replicas=conn.config.replicas,
            take_delay=ha.take_delay,
            # A third of the TTL: a released lease is seen soon, at a few requests per TTL.
            look_every=ha.failover_timeout / 3,
        )
        registry.register(_HACollector(self))

    def fence(self) -> int:
        """The fencing token of the term this replica leads in, 0 while it stands by."""
        return self.lease.token()

    async def run(self, stop: asyncio.Event) -> None:
        """Take the lease when free and renew it while held, until `stop`."""
        await self.lease.run(stop)

    async def release(self) -> None:
        """Hand the lease over at once (after the last publish of a clean exit)."""
        await self.lease.release()

    def since_renewal(self) -> float | None:
        """Seconds since the group's lease was last written, as far as we saw; None: never."""
        return time.time() - self.lease.written_at if self.lease.written_at else None

    def status(self) -> dict[str, Any]:
        """What the status page shows of the group."""
        return {
            "group": self.config.group,
            "replica": self.config.replica,
            "leading": self.lease.leading(),
            "leader": self.lease.holder_seen,
            "leader_changes": self.lease.changes,
            "terms": self.lease.terms,
            # The fencing token its messages carry while it leads (the receiver's backstop).
            "term_token": self.lease.token() or None,
            "seconds_since_renewal": self.since_renewal(),
            "fence_seconds_left": self.lease.valid_for(),
            "failover_timeout": self.lease.ttl,
            "priority": self.config.priority,
        }


class _HACollector(Collector):
    """The group's figures, read from the lease when scraped."""

    def __init__(self, member: HAMember) -> None:
        self._member = member

    def collect(self) -> Iterator[Metric]:
        lease = self._member.lease
        group = [self._member.config.group]
        prefix = "prometheus_streams_poller_ha_"

        def gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(prefix + name, help_text, labels=["ha_group"])
            family.add_metric(group, value)
            return family

        yield gauge(
            "leading",
            "1 while this replica holds its group's lease and publishes",
            (1.0 if lease.leading() else 0.0),
        )
        leader = GaugeMetricFamily(
            prefix + "leader",
            "1 for the replica that leads the group, as this replica last saw the bucket",
            labels=["ha_group", "replica"],
        )
        if lease.holder_seen is not None:
            leader.add_metric([*group, lease.holder_seen], 1.0)
        yield leader
        changes = CounterMetricFamily(
            prefix + "leader_changes",
            "Times the group's leader changed to another replica, as this replica saw",
            labels=["ha_group"],
        )
        changes.add_metric(group, lease.changes)
        yield changes
        terms = CounterMetricFamily(
            prefix + "terms", "Times this replica took its group's lease", labels=["ha_group"]
        )
        terms.add_metric(group, lease.terms)
        yield terms
        yield gauge(
            "last_renewal_timestamp_seconds",
            "When the group's lease was last written (taken or renewed), as this replica saw",
            lease.written_at,
        )
        since = self._member.since_renewal()
        yield gauge(
            "seconds_since_renewal",
            "Seconds since the group's lease was last written, as this replica saw (-1: never)",
            -1.0 if since is None else since,
        )
