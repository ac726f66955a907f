"""The poller's cost per node page: metric_relabel_configs (typical rules) against none.

Run alone: `.venv/bin/python -m benchmarks.poller_relabel`. Everything the
poller does with a scraped page up to the gzipped payload, fastest of several
repeats; the series cache is warm (the steady state) unless said.
"""

from __future__ import annotations

import functools
import gzip
import timeit
from collections.abc import Callable
from dataclasses import replace

from benchmarks.pages import node_page
from benchmarks.relabel import TYPICAL, read_rules
from prometheus_streams.config import Job
from prometheus_streams.exposition import count_samples
from prometheus_streams.poller.payload import build_payload, build_rewritten_payload
from prometheus_streams.poller.rewrite import SeriesCache
from prometheus_streams.poller.scraper import ScrapeResult

LABELS = {"job": "node", "instance": "host:9100"}
JOB = Job(name="node", targets=(), scrape_interval=15, scrape_timeout=10, body_size_limit=2**26)


def _per_sample(run: Callable[[], object], samples: int) -> float:
    runs = timeit.repeat(run, number=10, repeat=7)
    return min(runs) / 10 / samples * 1e6


def main() -> None:
    """Print µs per sample for the fast path and for the typical rules."""
    page = node_page()
    samples = count_samples(page)
    plain = ScrapeResult(started=0.0, duration=0.01, body=page)
    zipped = replace(plain, gzip=gzip.compress(page, compresslevel=1))
    typical = replace(JOB, metric_relabel_configs=read_rules(TYPICAL))
    cache = SeriesCache()
    build_rewritten_payload(plain, typical, LABELS, cache)

    def cold() -> object:
        return build_rewritten_payload(plain, typical, LABELS, SeriesCache())

    rows = (
        ("none, target gzips", functools.partial(build_payload, zipped)),
        ("none, plain page", functools.partial(build_payload, plain)),
        (
            "typical rules",
            functools.partial(build_rewritten_payload, plain, typical, LABELS, cache),
        ),
        ("typical, cold cache", cold),
    )
    print(f"node page: {samples} samples")
    for name, run in rows:
        print(f"{name:>22}: {_per_sample(run, samples):.3f} µs per sample")


if __name__ == "__main__":
    main()
