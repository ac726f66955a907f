"""The poller's `ha` section: pollers of one HA group share targets; one publishes at a time."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from prometheus_streams.config.reader import Section
from prometheus_streams.config.values import as_name, int_in, positive_duration

KEYS = {"group", "failover_timeout", "priority", "replica"}
DEFAULT_FAILOVER_TIMEOUT = 30.0
MAX_PRIORITY = 9
# The group names a JetStream bucket, so it keeps to the characters a bucket name allows.
_GROUP_RE = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class HAConfig:
    """One poller's membership of an HA group."""

    group: str
    replica: str
    failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT
    # 0 takes a free lease at once; each step more waits a little longer (a preference).
    priority: int = 0

    @property
    def take_delay(self) -> float:
        """How long this replica lets a free lease lie before taking it."""
        return self.priority * self.failover_timeout / 20


def default_replica(monitor_port: int) -> str:
    """The host name and the monitor port: unique even for two replicas on one host."""
    return f"{socket.gethostname()}:{monitor_port}"


def read_ha(top: Section, monitor_port: int) -> HAConfig | None:
    """The `ha` section (absent: no HA group)."""
    if not top.given("ha"):
        return None
    s = top.mapping("ha")
    if s is None:
        return None
    s.check_keys(KEYS)
    group = s.get("group", as_name, "")
    if not s.given("group"):
        s.problem("group", "required: the name the replicas of this poller share")
    elif not _GROUP_RE.fullmatch(group):
        s.problem("group", f"must match [A-Za-z0-9_-]+ (it names a JetStream bucket): {group!r}")
    replica = s.get("replica", as_name, "")
    if not replica:
        if not monitor_port:
            s.problem(
                "replica",
                "required without monitor_port: the default (host name and monitor port) "
                "would not tell two replicas on one host apart",
            )
        replica = default_replica(monitor_port)
    failover = s.get("failover_timeout", positive_duration, DEFAULT_FAILOVER_TIMEOUT)
    if failover < 1.0:
        s.problem("failover_timeout", f"must be at least 1s, got {failover:g}s")
    return HAConfig(
        group=group,
        replica=replica,
        failover_timeout=failover,
        priority=s.get("priority", int_in(0, MAX_PRIORITY), 0),
    )


def describe_ha(ha: HAConfig | None) -> dict[str, object] | None:
    """The HA settings as check-config prints them."""
    if ha is None:
        return None
    return {
        "group": ha.group,
        "replica": ha.replica,
        "failover_timeout_seconds": ha.failover_timeout,
        "priority": ha.priority,
        "takes_a_free_lease_after_seconds": ha.take_delay,
    }
