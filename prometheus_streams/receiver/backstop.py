"""The HA backstop: per publisher, accept one replica at a time, as the Mimir HA tracker does.

HA pollers name their replica in a header (wire.H_REPLICA). When a split
brain at the edge lets two replicas publish at once, the backstop keeps
their data from mixing at the centre: it accepts one replica per publisher
and switches to another only once the accepted one has been silent for
`failover_timeout`. Messages without the header are not its business.

Time is the scrape time the messages carry, not the receiver's clock, and
the switches are kept as a history of periods, so the decision for a
message is the same whenever and by whichever lane it is asked (docs/design.md,
"HA backstop"): a lane catching up on a backlog agrees with one at the head.
"""

from __future__ import annotations

import bisect
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from prometheus_streams import wire
from prometheus_streams.config.publishers import HABackstopConfig
from prometheus_streams.receiver.metrics import own

log = logging.getLogger(__name__)

# Switches kept per publisher: enough for any backlog a lane can hold back
# (a replica flapping faster than this within max_age is a broken edge).
MAX_PERIODS = 64
# Reasons a message is refused (ha_refused_total).
OTHER_REPLICA = "other_replica"  # another replica is accepted and not silent long enough
PAST_PERIOD = "past_period"  # the scrape time falls where another replica was accepted
REASONS = (OTHER_REPLICA, PAST_PERIOD)
WARN_EVERY = 60.0
# A replica name travels in a metric label and the logs: keep it short.
MAX_REPLICA_CHARS = 253


class BackstopMetrics:
    """The backstop's metrics, as prometheus_streams_receiver_ha_<name>."""

    def __init__(self, registry: CollectorRegistry) -> None:
        kw = own(registry)
        self.accepted = Gauge(
            "ha_accepted_replica",
            "1 for the HA replica whose messages are accepted, per publisher",
            ["publisher", "replica"],
            **kw,
        )
        self.switches = Counter(
            "ha_replica_switches",
            "Switches of the accepted HA replica (the first election is not one)",
            ["publisher"],
            **kw,
        )
        self.refused = Counter(
            "ha_refused",
            "Messages of an HA replica not accepted: acked, never delivered, by reason",
            ["publisher", "reason"],
            **kw,
        )


@dataclass(slots=True)
class _Period:
    """A stretch of scrape time during which one replica was accepted."""

    start_ms: int
    replica: str
    last_ms: int  # the newest scrape time seen from it in this period


@dataclass(slots=True)
class _Publisher:
    periods: list[_Period] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)  # each period's start_ms, for bisect
    switches: int = 0
    refused: int = 0


class Backstop:
    """One per receiver process, shared by every lane: the decisions are the same in each."""

    def __init__(self, config: HABackstopConfig, metrics: BackstopMetrics) -> None:
        self.config = config
        self._metrics = metrics
        self._publishers: dict[str, _Publisher] = {}
        self._warned: dict[str, float] = {}  # publisher -> when a refusal was last logged

    def reload(self, config: HABackstopConfig) -> None:
        """Take a new failover_timeout; the accepted replicas stay."""
        self.config = config

    def refusal(self, publisher: str, replica: str, scrape_time_ms: int, count: bool) -> str | None:
        """Why the message is refused (a reason), or None when it is accepted.

        `count` says whether this lane counts refusals (one lane does, so a
        message is counted once however many outputs there are).
        """
        if not self.config.enabled:
            return None
        reason = self._decide(publisher, replica, scrape_time_ms)
        if reason is not None and count:
            self._metrics.refused.labels(publisher, reason).inc()
            self._publishers[publisher].refused += 1
            self._warn(publisher, replica, reason)
        return reason

    def _warn(self, publisher: str, replica: str, reason: str) -> None:
        """Log a refusal, once a minute per publisher: a split brain refuses every message."""
        now = time.monotonic()
        if now - self._warned.get(publisher, -WARN_EVERY) < WARN_EVERY:
            return
        self._warned[publisher] = now
        log.warning(
            "HA backstop: refusing messages of publisher %s from replica %s (%s): replica %s"
            " is accepted; two replicas publish at once?",
            publisher,
            replica,
            reason,
            self._publishers[publisher].periods[-1].replica,
            extra={"publisher": publisher},
        )

    def _decide(self, publisher: str, replica: str, t: int) -> str | None:
        state = self._publishers.get(publisher)
        if state is None:
            state = self._publishers[publisher] = _Publisher()
            self._open(publisher, state, t, replica, first=True)
            return None
        at = bisect.bisect_right(state.starts, t) - 1
        if at < 0:
            # Older than everything kept: the first kept replica's, as it was
            # decided when that period opened.
            return None if replica == state.periods[0].replica else PAST_PERIOD
        period = state.periods[at]
        if at < len(state.periods) - 1:
            return None if replica == period.replica else PAST_PERIOD
        if replica == period.replica:
            period.last_ms = max(period.last_ms, t)
            return None
        # Strictly later than silence plus the timeout: a message refused here
        # stays refused, since any later switch starts after it.
        if t > period.last_ms + self.config.failover_timeout * 1000:
            self._open(publisher, state, t, replica, first=False)
            log.warning(
                "HA backstop: publisher %s now accepted from replica %s (replica %s silent"
                " for %.1fs of scrape time)",
                publisher,
                replica,
                period.replica,
                (t - period.last_ms) / 1000,
                extra={"publisher": publisher},
            )
            return None
        return OTHER_REPLICA

    def _open(self, publisher: str, state: _Publisher, t: int, replica: str, first: bool) -> None:
        """Start a period of `replica` at scrape time `t`."""
        previous = state.periods[-1].replica if state.periods else None
        state.periods.append(_Period(t, replica, t))
        state.starts.append(t)
        if len(state.periods) > MAX_PERIODS:
            del state.periods[0], state.starts[0]
        if previous is not None and previous != replica:
            self._metrics.accepted.remove(publisher, previous)
        self._metrics.accepted.labels(publisher, replica).set(1)
        if first:
            log.info(
                "HA backstop: publisher %s accepted from replica %s",
                publisher,
                replica,
                extra={"publisher": publisher},
            )
        else:
            state.switches += 1
            self._metrics.switches.labels(publisher).inc()

    def status(self) -> list[dict[str, Any]]:
        """Per publisher: the accepted replica and how long it has been silent (scrape time)."""
        now = time.time()
        rows = []
        for publisher, state in sorted(self._publishers.items()):
            current = state.periods[-1]
            rows.append(
                {
                    "publisher": publisher,
                    "replica": current.replica,
                    "since": current.start_ms / 1000,
                    "silent_seconds": round(max(0.0, now - current.last_ms / 1000), 3),
                    "switches": state.switches,
                    "refused": state.refused,
                }
            )
        return rows


def replica_of(headers: dict[str, str] | None) -> str | None:
    """The HA replica a message names (None: not from an HA poller); raises wire.WireError."""
    if not headers:
        return None
    replica = headers.get(wire.H_REPLICA)
    if replica is None:
        return None
    if not replica or len(replica) > MAX_REPLICA_CHARS or not replica.isprintable():
        raise wire.WireError(
            "bad_header",
            f"bad {wire.H_REPLICA} {replica[:64]!r}: needs 1 to {MAX_REPLICA_CHARS}"
            " printable characters",
        )
    return replica
