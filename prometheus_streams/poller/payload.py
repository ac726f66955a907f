"""What the poller publishes for one scrape: the page and its health series, gzipped."""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Callable
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


def _isal() -> Callable[[bytes, int], bytes] | None:
    try:
        from isal import isal_zlib
    except ImportError:
        return None

    def compress(data: bytes, level: int) -> bytes:
        # wbits 31: one gzip member (mtime 0), as gzip.compress(mtime=0) writes.
        return isal_zlib.compress(data, min(level, isal_zlib.ISAL_BEST_COMPRESSION), wbits=31)

    return compress


# ISA-L's deflate: a rewritten node page in about a fifth of zlib's CPU time at
# level 1, and no larger (docs/performance.md); stdlib gzip without it.
_ISAL = _isal()


def gzip_member(data: bytes, level: int) -> bytes:
    """`data` as one gzip member: ISA-L's when installed, else zlib's."""
    if _ISAL is not None:
        return _ISAL(data, level)
    return gzip.compress(data, compresslevel=level, mtime=0)


# A gzip header (no name, mtime 0, OS unknown) and the largest stored block.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_STORED_MAX = 0xFFFF


def stored_member(data: bytes) -> bytes:
    """`data` as one gzip member of stored (not compressed) deflate blocks.

    For the health series appended to a forwarded page: about 150 bytes, which
    deflate shrinks by a few dozen, while each call to ISA-L's deflate sets up
    its Huffman tables (2-3 % of the poller's CPU; docs/performance.md,
    "Issue 16, fifth pass: the poller").
    """
    parts = [_GZIP_HEADER]
    start = 0
    while True:
        block = data[start : start + _STORED_MAX]
        start += len(block)
        last = start >= len(data)
        parts.append(struct.pack("<BHH", last, len(block), len(block) ^ 0xFFFF))
        parts.append(block)
        if last:
            break
    parts.append(struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF))
    return b"".join(parts)


@dataclass(frozen=True)
class Payload:
    """A scrape's message body, gzipped, and how many of the target's own health lines went."""

    data: bytes
    replaced: int = 0


def build_payload(
    result: ScrapeResult, level: int = 1, honor_timestamps: bool = True, samples: int | None = None
) -> Payload:
    """The gzipped body: the page plus its health series, or up 0 alone on failure.

    A page the target sent gzipped is forwarded as it came, with the health
    series as a second gzip member (members concatenate), so the common case
    costs an inflate to count samples and no deflate of the page at all.
    Without `honor_timestamps` the page's own timestamps are dropped.
    `samples` is the page's count of samples when the caller made it already.
    """
    if not result.ok:
        health = health_series(False, result.duration, 0)
        return Payload(gzip_member(health, level))
    body, replaced = drop_health_series(result.body)
    if not honor_timestamps:
        body, stripped = strip_timestamps(body)
        if stripped:
            result = replace(result, gzip=None)
    if samples is None or replaced:
        samples = count_samples(body)
    if result.gzip is not None and not replaced:
        health = health_series(True, result.duration, samples)
        if body and not body.endswith(b"\n"):
            health = b"\n" + health
        return Payload(result.gzip + stored_member(health))
    plain = with_health(body, result.duration, samples)
    return Payload(gzip_member(plain, level), replaced)


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
        health = health_series(False, result.duration, out.scraped or scraped) + extra
        return Payload(gzip_member(health, level), replaced), failed
    plain = with_health(out.body, result.duration, scraped) + extra
    return Payload(gzip_member(plain, level), replaced), result
