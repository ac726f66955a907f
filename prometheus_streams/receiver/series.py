"""The series each output stores, per publisher and target: budgets and top offenders.

One `SeriesTracker` per lane (each output stores its own series). An output
hands it the series keys of a page (`name{labels}` as on the page, within the
page's target); the tracker answers which NEW series are over the publisher's
(or the publisher's job's) budget. Series already held keep flowing. A series
holds its slot while its target sends it and for `forget_after` once it is
gone, so a series that flaps does not take a second slot; a target that sends
nothing for `forget_after` gives all of its slots back.

The cost on a page whose series did not change is two set differences
(docs/performance.md has the figures); the health series are never refused.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter as Tally
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from prometheus_streams.config.budget import SeriesBudgetConfig
from prometheus_streams.exposition import HEALTH_FAMILIES, index_samples, strip_final_values
from prometheus_streams.receiver.metrics import counter

# Churn is counted in windows of this many seconds; the top shows the last two.
CHURN_WINDOW = 60.0
# How often at most a publisher's absent series and silent targets are looked at.
SWEEP_EVERY = 5.0
_HEALTH = tuple(HEALTH_FAMILIES)

try:
    from prometheus_streams._speedups import parse_samples as _parse_samples
except ImportError:  # built without the C pass
    _parse_samples = None  # type: ignore[assignment]

Group = tuple[str, str, str]  # publisher, job, instance
Row = tuple[bytes, float, int | None]  # a parsed sample: series key, value, timestamp


def page_keys(body: bytes) -> list[bytes]:
    """The series key of each sample line, in order (the C pass when built)."""
    if _parse_samples is not None:
        found = _parse_samples(body)
        if found is not None:
            return [key for key, _value, _stamp in found]
    return [series for series, _value, _stamp in index_samples(body)]


class BudgetMetrics:
    """The budget's counters, shared by every lane."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.over_budget = counter(
            registry,
            "series_over_budget",
            "New series dropped because their publisher (or its job) is over its series_budget,"
            " by publisher and output",
            ("publisher", "output"),
        )


@dataclass(slots=True)
class _Target:
    job: str
    page: set[bytes]  # every series of its last page, those over budget too
    held: set[bytes]  # those of them that hold a slot
    seen: float
    window: int = 0
    added_now: int = 0
    added_before: int = 0
    names: Tally[bytes] | None = None  # series by metric name, worked out when asked
    fingerprint: int = 0  # of the last page without its values (pages, not rows)
    # The keys object of its last page when nothing on it was refused: passed
    # again, the page is the same (admit's callers never change one they passed).
    admitted: object = None

    def churn(self, window: int) -> int:
        """Series added in this window and the one before."""
        if window == self.window:
            return self.added_now + self.added_before
        return self.added_now if window == self.window + 1 else 0


@dataclass(slots=True)
class _Publisher:
    targets: dict[Group, _Target] = field(default_factory=dict)
    slots: int = 0
    per_job: Tally[str] = field(default_factory=Tally)
    # (group, key) -> when it left its target's page; oldest first (dicts keep order).
    gone: dict[tuple[Group, bytes], float] = field(default_factory=dict)
    swept: float = 0.0
    refused: int = 0  # on the last pages, summed over targets (for the top)


def _is_health(key: bytes) -> bool:
    return key.startswith(_HEALTH) and key.partition(b"{")[0].rstrip(b" \t") in HEALTH_FAMILIES


def metric_name(key: bytes) -> bytes:
    """The metric name of a series key."""
    return key.partition(b"{")[0].rstrip(b" \t")


class SeriesTracker:
    """Series per target and publisher for one output; enforces the series budget."""

    def __init__(
        self,
        budget: SeriesBudgetConfig,
        metrics: BudgetMetrics | None,
        output: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = budget
        self.metrics = metrics
        self.output = output  # set by the output, for the counter's label
        self._clock = clock
        self._publishers: dict[str, _Publisher] = {}

    def admit(self, group: Group, keys: Collection[bytes]) -> set[bytes]:
        """Note a page's series; the new ones over budget, which must not be stored.

        New series get the slots left in the order of the page, so the same
        lines win on every receiver and in every run. `keys` must not change
        once passed: the same object again is known to be the same page.
        """
        now = self._clock()
        publisher = self._publishers.get(group[0])
        if publisher is None:
            publisher = self._publishers[group[0]] = _Publisher(swept=now)
        self._sweep_due(publisher, now)
        target = publisher.targets.get(group)
        if target is not None and keys is target.admitted and target.page is target.held:
            # A repeated page of remote write: its keys are those of the last
            # page, all held, so the set difference below would find nothing.
            target.seen = now
            return set()
        page = set(keys)
        if target is None:
            target = publisher.targets[group] = _Target(group[1], set(), set(), now)
        target.seen = now
        held = target.held
        new = page - held
        if not new and len(page) == len(held):
            target.page = held
            target.admitted = keys
            return new  # the usual page: the same series as the last one
        budgeted = self.budget.enabled
        if budgeted:
            at = now
            gone = publisher.gone
            for key in held - page:
                gone[(group, key)] = at
        refused: set[bytes] = set()
        added = 0
        if new:
            limit = self.budget.per_publisher
            job_limit = self.budget.per_job_map.get(group[1], 0)
            per_job = publisher.per_job
            job = group[1]
            for key in keys:
                if key not in new:
                    continue
                new.discard(key)  # a key twice on a page takes one slot
                if budgeted and publisher.gone.pop((group, key), None) is not None:
                    continue  # came back within forget_after: it still holds its slot
                if (
                    (limit and publisher.slots >= limit)
                    or (job_limit and per_job[job] >= job_limit)
                ) and not _is_health(key):
                    refused.add(key)
                    continue
                publisher.slots += 1
                per_job[job] += 1
                added += 1
        if not budgeted:
            # No slots to keep for absent series: what a target holds is its page.
            dropped = len(held - page)
            publisher.slots -= dropped
            publisher.per_job[group[1]] -= dropped
        self._count_added(target, added, now)
        previous = len(target.page) - len(target.held)
        target.held = page - refused if refused else page
        target.page = page
        target.names = None
        target.admitted = None if refused else keys
        publisher.refused += len(refused) - previous
        if refused and self.metrics is not None:
            self.metrics.over_budget.labels(group[0], self.output).inc(len(refused))
        return refused

    def filter_page(self, group: Group, body: bytes) -> bytes:
        """The page without the lines of its new series over budget (the Pushgateway's seam)."""
        # A page with the same lines as the last one but for its values has the
        # same series: a C pass and a hash instead of parsing it.
        fingerprint = hash(strip_final_values(body)[0])
        publisher = self._publishers.get(group[0])
        target = publisher.targets.get(group) if publisher is not None else None
        if target is not None and target.fingerprint == fingerprint and target.page is target.held:
            assert publisher is not None
            target.seen = now = self._clock()
            self._sweep_due(publisher, now)
            return body
        keys = page_keys(body)
        refused = self.admit(group, keys)
        self._publishers[group[0]].targets[group].fingerprint = fingerprint
        if not refused:
            return body
        lines = body.split(b"\n")
        kept: list[bytes] = []
        at = 0
        for line in lines:
            text = line.lstrip(b" \t")
            if text and text[:1] != b"#" and at < len(keys):
                at += 1
                if keys[at - 1] in refused:
                    continue
            kept.append(line)
        return b"\n".join(kept)

    def filter_rows(self, group: Group, rows: list[Row]) -> list[Row]:
        """The parsed samples without those of new series over budget (remote write's seam)."""
        refused = self.admit(group, [row[0] for row in rows])
        if not refused:
            return rows
        return [row for row in rows if row[0] not in refused]

    def _count_added(self, target: _Target, added: int, now: float) -> None:
        window = int(now // CHURN_WINDOW)
        if window != target.window:
            target.added_before = target.added_now if window == target.window + 1 else 0
            target.added_now = 0
            target.window = window
        target.added_now += added

    def _sweep_due(self, publisher: _Publisher, now: float) -> None:
        if now - publisher.swept >= min(SWEEP_EVERY, self.budget.forget_after / 4):
            self._sweep(publisher, now)

    def _sweep(self, publisher: _Publisher, now: float) -> None:
        """Give back the slots of series gone for forget_after, and of silent targets."""
        publisher.swept = now
        cutoff = now - self.budget.forget_after
        gone = publisher.gone
        while gone:
            (group, _key), since = next(iter(gone.items()))
            if since > cutoff:
                break
            del gone[(group, _key)]
            publisher.slots -= 1
            publisher.per_job[group[1]] -= 1
        for group, target in list(publisher.targets.items()):
            if target.seen <= cutoff:
                del publisher.targets[group]
                publisher.slots -= len(target.held)
                publisher.per_job[target.job] -= len(target.held)
                publisher.refused -= len(target.page) - len(target.held)

    def reload(self, budget: SeriesBudgetConfig) -> None:
        """Take a new budget; series already held keep their slots."""
        self.budget = budget

    def publishers(self) -> dict[str, dict[str, int]]:
        """Per publisher: series on the last pages, slots held, series over budget."""
        # A publisher that went silent is swept here, or it would stay in the top.
        now = self._clock()
        for name, publisher in list(self._publishers.items()):
            self._sweep(publisher, now)
            if not publisher.targets and not publisher.gone:
                del self._publishers[name]
        return {
            name: {
                "series": sum(len(t.page) for t in p.targets.values()),
                "slots": p.slots,
                "over_budget": p.refused,
            }
            for name, p in self._publishers.items()
        }

    def targets(self) -> Iterable[tuple[Group, _Target]]:
        """Every target known, with its series."""
        for publisher in self._publishers.values():
            yield from publisher.targets.items()


def top(trackers: Iterable[SeriesTracker], n: int, now: float | None = None) -> dict[str, Any]:
    """The top `n` by series: metric names, targets, jobs, publishers; and by churn."""
    window = int((time.monotonic() if now is None else now) // CHURN_WINDOW)
    names: Tally[bytes] = Tally()
    jobs: Tally[str] = Tally()
    publishers: dict[str, dict[str, int]] = {}
    targets: list[tuple[int, int, int, Group]] = []
    for tracker in trackers:
        for name, figures in tracker.publishers().items():
            mine = publishers.setdefault(name, {"series": 0, "slots": 0, "over_budget": 0})
            for key, value in figures.items():
                mine[key] += value
        for group, target in tracker.targets():
            if target.names is None:
                target.names = Tally(map(metric_name, target.page))
            names.update(target.names)
            jobs[group[1]] += len(target.page)
            over = len(target.page) - len(target.held)
            targets.append((len(target.page), target.churn(window), over, group))
    return {
        "by_metric_name": [
            {"metric": name.decode(errors="replace"), "series": count}
            for name, count in names.most_common(n)
        ],
        "by_target": [
            {"publisher": g[0], "job": g[1], "instance": g[2], "series": s, "over_budget": o}
            for s, _c, o, g in heapq.nlargest(n, targets, key=lambda t: t[0])
        ],
        "by_job": [{"job": job, "series": count} for job, count in jobs.most_common(n)],
        "by_publisher": [
            {"publisher": name, **figures}
            for name, figures in heapq.nlargest(
                n, publishers.items(), key=lambda item: item[1]["series"]
            )
        ],
        "churn": [
            {"publisher": g[0], "job": g[1], "instance": g[2], "series_added": c}
            for _s, c, _o, g in heapq.nlargest(n, targets, key=lambda t: t[1])
            if c
        ],
        "churn_window_seconds": CHURN_WINDOW * 2,
    }
