"""The remote-write outputs' metrics, one child per output."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, Histogram

from prometheus_streams.receiver.metrics import counter, own

REQUEST_RESULTS = ("success", "retried", "refused")
# dropped_total reasons known in advance (at 0 from the start); refusals add http_<status>.
DROP_REASONS = (
    "not_newer",
    "bad_page",
    "bad_label",
    "duplicate_series",
    "out_of_order",
    "duplicate",
    "out_of_bounds",
)


class RemoteWriteMetrics:
    """The remote-write outputs' metrics, one child per output (label `output`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("output",)
        self.samples = counter(
            registry, "remote_write_samples", "Samples written (2xx) by output", labels
        )
        self.stale_markers = counter(
            registry,
            "remote_write_stale_markers",
            "Staleness markers written for series that vanished, by output",
            labels,
        )
        self.retried = counter(
            registry,
            "remote_write_samples_retried",
            "Samples sent again after a 5xx, a 429 or no answer, by output",
            labels,
        )
        self.dropped = counter(
            registry,
            "remote_write_samples_dropped",
            "Samples not written, by output and reason",
            ("output", "reason"),
        )
        self.requests = counter(
            registry, "remote_write_requests", "Requests by output and result", ("output", "result")
        )
        self.duration = Histogram(
            "remote_write_request_duration_seconds",
            "Time taken by remote-write requests",
            labels,
            **own(registry),
        )
        self.lag = Gauge(
            "remote_write_lag_seconds",
            "How far behind the output is, by output: the age of the newest scrape written"
            " (growing while scrapes wait in the stream)",
            labels,
            **own(registry),
        )
        self.pending = Gauge(
            "remote_write_pending",
            "Messages in the stream not yet fetched by the output's consumer",
            labels,
            **own(registry),
        )
        self.leading = Gauge(
            "remote_write_leading",
            "1 while this receiver holds the output's lease and writes, else 0",
            labels,
            **own(registry),
        )
