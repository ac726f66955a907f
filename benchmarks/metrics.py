"""Reading the Prometheus text our roles, the Pushgateway and Prometheus expose."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.procs import http_get

Series = tuple[str, frozenset[tuple[str, str]]]


@dataclass
class Scrape:
    """All samples of one /metrics page."""

    samples: dict[Series, float]

    def total(self, name: str, **labels: str) -> float:
        """Sum of the samples named `name` whose labels include `labels`."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def buckets(self, name: str) -> dict[float, float]:
        """Cumulative bucket counts of histogram `name` by upper bound."""
        out: dict[float, float] = {}
        for (n, ls), value in self.samples.items():
            if n == f"{name}_bucket":
                le = dict(ls)["le"]
                out[math.inf if le == "+Inf" else float(le)] = value
        return out


def read(url: str) -> Scrape:
    """GET and parse a /metrics page; raises when it cannot be read."""
    status, body = http_get(url, timeout=10.0)
    if status != 200:
        raise RuntimeError(f"GET {url} -> {status}")
    samples: dict[Series, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return Scrape(samples)


def quantile(q: float, before: Mapping[float, float], after: Mapping[float, float]) -> float:
    """The q-quantile of what a histogram observed between two readings.

    Linear interpolation inside the bucket, as PromQL's histogram_quantile; NaN
    when nothing was observed. The result is as fine as the bucket bounds.
    """
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return math.nan
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bound: report that bound
            inside = count - below
            fraction = (rank - below) / inside if inside > 0 else 1.0
            return lower + (bound - lower) * fraction
        lower, below = bound, count
    return lower
