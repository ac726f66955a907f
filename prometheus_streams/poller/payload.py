"""What the poller publishes for one scrape: the page and its health series, gzipped."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, replace

from prometheus_streams.config import Job
from prometheus_streams.exposition import (
    count_samples,
    drop_health_series,
    health_series,
    strip_timestamps,
    with_health,
)
from prometheus_streams.poller.rewrite import SeriesCache, rewrite_page
from prometheus_streams.poller.scraper import ScrapeResult


@dataclass(frozen=True)
class Payload:
    """A scrape's message body, gzipped, and how many of the target's own health lines went."""

    data: bytes
    replaced: int = 0


def build_payload(result: ScrapeResult, level: int = 1, honor_timestamps: bool = True) -> Payload:
    """The gzipped body: the page plus its health series, or up 0 alone on failure.

    A page the target sent gzipped is forwarded as it came, with the health
    series as a second gzip member (members concatenate), so the common case
    costs an inflate to count samples and no deflate of the page at all.
    Without `honor_timestamps` the page's own timestamps are dropped.
    """
    if not result.ok:
        health = health_series(False, result.duration, 0)
        return Payload(gzip.compress(health, compresslevel=level, mtime=0))
    body, replaced = drop_health_series(result.body)
    if not honor_timestamps:
        body, stripped = strip_timestamps(body)
        if stripped:
            result = replace(result, gzip=None)
    samples = count_samples(body)
    if result.gzip is not None and not replaced:
        health = health_series(True, result.duration, samples)
        if body and not body.endswith(b"\n"):
            health = b"\n" + health
        return Payload(result.gzip + gzip.compress(health, compresslevel=level, mtime=0))
    plain = with_health(body, result.duration, samples)
    return Payload(gzip.compress(plain, compresslevel=level, mtime=0), replaced)


def _relabel_health(samples_post: int, series_added: int) -> bytes:
    return (
        b"# TYPE scrape_samples_post_metric_relabeling gauge\n"
        + f"scrape_samples_post_metric_relabeling {samples_post}\n".encode()
        + b"# TYPE scrape_series_added gauge\n"
        + f"scrape_series_added {series_added}\n".encode()
    )


def build_rewritten_payload(
    result: ScrapeResult,
    job: Job,
    target_labels: dict[str, str],
    cache: SeriesCache,
    level: int = 1,
) -> tuple[Payload, ScrapeResult]:
    """A successful scrape through the job's metric_relabel_configs and limits.

    Over a limit the scrape fails as in Prometheus: the result becomes that
    failure and the payload is the health series alone, with up 0.
    """
    body, replaced = drop_health_series(result.body)
    scraped = count_samples(body)
    out = rewrite_page(body, job, target_labels, cache, job.honor_timestamps)
    extra = _relabel_health(out.samples_post, out.series_added)
    if out.error:
        failed = replace(result, error=out.error, detail=out.detail, gzip=None)
        health = health_series(False, result.duration, scraped) + extra
        return Payload(gzip.compress(health, compresslevel=level, mtime=0), replaced), failed
    plain = with_health(out.body, result.duration, scraped) + extra
    return Payload(gzip.compress(plain, compresslevel=level, mtime=0), replaced), result
