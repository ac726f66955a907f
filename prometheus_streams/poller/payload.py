"""What the poller publishes for one scrape: the page and its health series, gzipped."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, replace

from prometheus_streams.exposition import (
    count_samples,
    drop_health_series,
    health_series,
    strip_timestamps,
    with_health,
)
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
