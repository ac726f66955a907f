"""What the HA backstop keeps per publisher, in memory and as stored, and its metrics."""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from prometheus_streams.receiver.election import Period
from prometheus_streams.receiver.metrics import own

# The backstop's own logger: its switches are its story, wherever the words are made.
log = logging.getLogger("prometheus_streams.receiver.backstop")


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
        self.held = Counter(
            "ha_held",
            "Messages of an HA replica handed back because the shared election could not be read"
            " or written",
            ["publisher"],
            **kw,
        )
        self.store_writes = Counter(
            "ha_store_writes",
            "Writes to the shared election bucket, by outcome (conflict: another receiver wrote"
            " first)",
            ["outcome"],
            **kw,
        )
        self.store_errors = Counter(
            "ha_store_errors",
            "Failed reads, writes and watches of the shared election bucket, and unreadable values",
            **kw,
        )
        self.refused = Counter(
            "ha_refused",
            "Messages of an HA replica not accepted: acked, never delivered, by reason",
            ["publisher", "reason"],
            **kw,
        )


@dataclass(slots=True)
class PeriodState:
    """A stretch of scrape time during which one replica was accepted."""

    start_ms: int
    replica: str
    last_ms: int  # the newest scrape time seen from it in this period (shared: as stored)
    # The lease term (fencing token) of the replica's messages it accepts; 0: none.
    token: int = 0

    def holds(self, replica: str, token: int) -> bool:
        """Whether a message of `replica` in lease term `token` is this period's."""
        return replica == self.replica and token == self.token


@dataclass(slots=True)
class PublisherState:
    periods: list[PeriodState] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)  # each period's start_ms, for bisect
    switches: int = 0
    refused: int = 0
    revision: int = 0  # of the stored election we follow (shared only)
    local_last: int = 0  # newest accepted here in the current period, maybe not stored yet
    writing: bool = False  # a write-back of local_last is under way

    def period_at(self, t: int) -> int:
        """The index of the period scrape time `t` falls in; -1 before the first kept."""
        return bisect.bisect_right(self.starts, t) - 1


# What a rule asks to store before its answer holds: the publisher's new periods.
Write = tuple[Period, ...]


def stored_period(start: int, replica: str, last: int, token: int) -> Period:
    """A period as stored: the token only where there is one."""
    return (start, replica, last, token) if token else (start, replica, last)


def stored_periods(state: PublisherState, last: int | None = None) -> Write:
    """The publisher's periods as stored, the current one's newest scrape time set to `last`."""
    out = [stored_period(p.start_ms, p.replica, p.last_ms, p.token) for p in state.periods]
    if last is not None:
        current = state.periods[-1]
        out[-1] = stored_period(
            current.start_ms, current.replica, max(current.last_ms, last), current.token
        )
    return tuple(out)


def log_switch(
    publisher: str, before: PeriodState | None, now: PeriodState, local_last: int
) -> None:
    """Log the first election of a publisher's replica, or a switch to another."""
    if before is None:
        log.info(
            "HA backstop: publisher %s accepted from replica %s",
            publisher,
            now.replica,
            extra={"publisher": publisher},
        )
        return
    if now.token > before.token:
        why = f"a newer lease term, {now.token} after {before.token or 'none'}"
    else:
        silent = (now.start_ms - max(before.last_ms, local_last)) / 1000
        why = f"replica {before.replica} silent for {silent:.1f}s of scrape time"
    log.warning(
        "HA backstop: publisher %s now accepted from replica %s (%s)",
        publisher,
        now.replica,
        why,
        extra={"publisher": publisher},
    )


def status_rows(publishers: dict[str, PublisherState], now: float) -> list[dict[str, Any]]:
    """Per publisher: the accepted replica and how long it has been silent (scrape time)."""
    rows = []
    for publisher, state in sorted(publishers.items()):
        if not state.periods:
            continue  # its stored value was unreadable; the next message elects anew
        current = state.periods[-1]
        rows.append(
            {
                "publisher": publisher,
                "replica": current.replica,
                "since": current.start_ms / 1000,
                "silent_seconds": round(
                    max(0.0, now - max(current.last_ms, state.local_last) / 1000), 3
                ),
                "term": current.token or None,
                "switches": state.switches,
                "refused": state.refused,
            }
        )
    return rows
