"""The poller's own metrics, all named prometheus_streams_poller_*."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from prometheus_streams.config import Job
from prometheus_streams.poller.scraper import RESULTS as SCRAPE_RESULTS

# Why a scrape was never published.
DROP_REASONS = ("superseded", "too_old", "too_large", "shutdown", "not_leader")


class PollerMetrics:
    """The poller's own metrics, on the registry it is given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        own: dict[str, Any] = {
            "namespace": "prometheus_streams",
            "subsystem": "poller",
            "registry": registry,
        }
        self.targets = Gauge("targets", "Configured targets", ["poller_job"], **own)
        self.targets_dropped = Gauge(
            "targets_dropped", "Targets dropped by relabel_configs", ["poller_job"], **own
        )
        self.scrapes = Counter(
            "scrapes_total", "Scrapes by outcome", ["poller_job", "result"], **own
        )
        self.scraped_bytes = Counter(
            "scraped_bytes_total", "Bytes read from targets", ["poller_job"], **own
        )
        self.scrape_duration = Histogram(
            "scrape_duration_seconds", "Time taken by scrapes", ["poller_job"], **own
        )
        self.missed = Counter(
            "missed_scrapes_total",
            "Scheduled scrapes skipped because the previous one overran",
            ["poller_job"],
            **own,
        )
        self.published = Counter("published_total", "Scrapes stored in JetStream", **own)
        self.published_bytes = Counter(
            "published_bytes_total", "Compressed bytes stored in JetStream", **own
        )
        self.publish_errors = Counter(
            "publish_errors_total", "Failed publish attempts", ["reason"], **own
        )
        self.publish_duration = Histogram(
            "publish_duration_seconds", "Publish round trips to JetStream", **own
        )
        self.dropped = Counter(
            "dropped_total", "Scrapes never published, by reason", ["reason"], **own
        )
        self.replaced_lines = Counter(
            "replaced_health_lines_total",
            "Lines of a target's own up/scrape_* families dropped in favour of ours",
            ["poller_job"],
            **own,
        )
        self.buffered = Gauge("buffered_scrapes", "Scrapes waiting to be published", **own)
        self.paused = Gauge(
            "paused", "1 while paused by an operator (only the own job is scraped)", **own
        )
        self.discovery_errors = Counter(
            "discovery_errors_total",
            "File-SD files that could not be read or parsed (their old targets are kept)",
            ["poller_job"],
            **own,
        )
        self.sd_refresh_failures = Counter(
            "sd_refresh_failures_total",
            "http_sd and dns_sd refreshes that failed (the config's old targets are kept)",
            ["poller_job", "mechanism"],
            **own,
        )
        # Known label values exist at 0 from the start, so rate() and absent() see them.
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        self.publish_errors.labels("TimeoutError")

    def known_job(self, job: Job) -> None:
        """Create a job's labelled series at 0 before its first scrape."""
        for result in SCRAPE_RESULTS:
            self.scrapes.labels(job.name, result)
        self.scraped_bytes.labels(job.name)
        self.missed.labels(job.name)
        self.replaced_lines.labels(job.name)
        if job.file_sd:
            self.discovery_errors.labels(job.name)
        if job.http_sd:
            self.sd_refresh_failures.labels(job.name, "http")
        if job.dns_sd:
            self.sd_refresh_failures.labels(job.name, "dns")
