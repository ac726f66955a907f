"""The receiver's own metrics, declared as `prometheus_streams_receiver_<name>`.

The core's metrics (fetching, decoding, checking, acking) are in
`ReceiverMetrics`; each output declares its own, such as
`PushgatewayMetrics` for the Pushgateway output.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NAMESPACE = "prometheus_streams"
SUBSYSTEM = "receiver"

NAK_REASONS = ("breaker_open", "pushgateway_unavailable")
# Our own reasons, the wire format's (wire.WireError) and the body limits'.
DROP_REASONS = (
    "too_old",
    "superseded",
    "type_conflict",
    "inconsistent",
    "rejected",
    "bad_compression",
    "bad_header",
    "header_too_large",
    "header_mismatch",
    "bad_subject",
    "bad_version",
    "too_large",
    "line_too_long",
    "too_many_labels",
)
ACK_ACTIONS = ("ack", "nak", "term", "in_progress")


def own(registry: CollectorRegistry) -> dict[str, Any]:
    """The keyword arguments that put a metric under prometheus_streams_receiver_."""
    return {"namespace": NAMESPACE, "subsystem": SUBSYSTEM, "registry": registry}


def counter(
    registry: CollectorRegistry,
    name: str,
    doc: str,
    labels: tuple[str, ...] = (),
    known: Iterable[str] = (),
) -> Counter:
    """A receiver counter; `known` values of its one label exist at 0 from the start."""
    made = Counter(name, doc, labels, **own(registry))
    # So rate() and absent() see them before the first event.
    for value in known:
        made.labels(value)
    return made


class ReceiverMetrics:
    """The metrics of the receiver's core: fetching, decoding, checking and acking."""

    def __init__(self, registry: CollectorRegistry) -> None:
        kw = own(registry)
        self.received = counter(registry, "received", "Messages fetched")
        self.received_bytes = counter(registry, "received_bytes", "Compressed bytes fetched")
        self.latency = Histogram(
            "scrape_to_push_seconds",
            "From the scrape on the poller to the Pushgateway's 2xx",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            **kw,
        )
        self.dropped = counter(
            registry,
            "dropped",
            "Messages acked or terminated without a push, by reason",
            ("reason",),
            DROP_REASONS,
        )
        self.naks = counter(
            registry, "naks", "Messages handed back for redelivery", ("reason",), NAK_REASONS
        )
        self.ack_errors = counter(
            registry,
            "ack_errors",
            "Acks, naks, terms and progress notes NATS did not take, by action",
            ("action",),
            ACK_ACTIONS,
        )
        self.timestamps_stripped = counter(
            registry,
            "timestamps_stripped",
            "Sample timestamps removed because the Pushgateway refuses them",
        )
        self.future_scrapes = counter(
            registry,
            "future_scrapes",
            "Scrapes dated more than a minute ahead of the receiver's clock",
        )
        self.labels_renamed = counter(
            registry,
            "labels_renamed",
            "Labels renamed to exported_<name> because the grouping key sets them",
        )
        self.shape_hits = counter(
            registry,
            "known_shape_bodies",
            "Bodies whose shape (all but the sample values) passed the checks before",
        )
        self.messages_by_publisher = counter(
            registry, "publisher_messages", "Valid messages received per publisher", ("publisher",)
        )
        self._gauges(registry)

    def _gauges(self, registry: CollectorRegistry) -> None:
        kw = own(registry)
        self.pending = Gauge("consumer_pending", "Messages in the stream not yet fetched", **kw)
        self.last_seen = Gauge(
            "publisher_last_seen_timestamp_seconds",
            "Scrape time of the newest message pushed for each publisher",
            ["publisher"],
            **kw,
        )
        self.lag = Gauge(
            "publisher_lag_seconds",
            "Age of the newest scrape pushed per publisher, when it was pushed",
            ["publisher"],
            **kw,
        )
        self.paused = Gauge("paused", "1 while paused by an operator (nothing is fetched)", **kw)


@dataclass(frozen=True, slots=True)
class _PublisherChildren:
    """One publisher's labelled metric children."""

    messages: Counter
    last_seen: Gauge
    lag: Gauge


class Publishers:
    """The publishers seen, and their labelled metrics, looked up once each."""

    def __init__(self, metrics: ReceiverMetrics) -> None:
        self._metrics = metrics
        self._children: dict[str, _PublisherChildren] = {}
        # Publisher -> scrape time (seconds) of its newest scrape delivered.
        self.seen: dict[str, float] = {}
        # Publisher -> scrape time (seconds) of its newest valid message, delivered
        # or not: whether it reports (receiver/expected.py).
        self.heard_at: dict[str, float] = {}

    def of(self, publisher: str) -> _PublisherChildren:
        """The publisher's labelled children (kept: looked up for every message)."""
        found = self._children.get(publisher)
        if found is None:
            m = self._metrics
            found = self._children[publisher] = _PublisherChildren(
                m.messages_by_publisher.labels(publisher),
                m.last_seen.labels(publisher),
                m.lag.labels(publisher),
            )
        return found

    def delivered(self, publisher: str, seen: float, now: float) -> None:
        """A scrape of the publisher taken at `seen` was delivered at `now`."""
        children = self.of(publisher)
        children.last_seen.set(seen)
        children.lag.set(max(0.0, now - seen))
        self.seen[publisher] = seen

    def heard(self, publisher: str, scrape_time: float) -> None:
        """A valid message of the publisher, taken at `scrape_time`, was fetched."""
        if scrape_time > self.heard_at.get(publisher, 0.0):
            self.heard_at[publisher] = scrape_time

    def refresh_lags(self, now: float) -> None:
        """Age every publisher's lag to `now` (nothing is delivered meanwhile)."""
        for publisher, seen in self.seen.items():
            self.of(publisher).lag.set(max(0.0, now - seen))
