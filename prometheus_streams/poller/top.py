"""Series per scraped target, counted cheaply from the pages, for the top offenders.

The poller does not parse pages: the number of sample lines comes from the
count it makes anyway (the C pass), and the series by metric name are counted
again only when a target's count changed, so a steady target costs nothing more.
Churn here is the growth of a target's series between scrapes.
"""

from __future__ import annotations

import heapq
import re
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_streams.exposition import count_samples

CHURN_WINDOW = 60.0
# The metric name starting each line that is no comment.
_NAME = re.compile(rb"\n[ \t]*([a-zA-Z_:][a-zA-Z0-9_:]*)")


@dataclass(slots=True)
class _Page:
    series: int
    names: Tally[bytes]
    window: int = 0
    added_now: int = 0
    added_before: int = 0


class PageSeries:
    """The series of each target's last page: counts by name, by target, by job, growth."""

    def __init__(self, publisher: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.publisher = publisher
        self._clock = clock
        self._pages: dict[tuple[str, str], _Page] = {}

    def note(self, job: str, instance: str, body: bytes, series: int | None = None) -> None:
        """Count a page's series (by name only when the count changed); `series` if counted."""
        if series is None:
            series = count_samples(body)
        key = (job, instance)
        page = self._pages.get(key)
        if page is not None and page.series == series:
            return
        names = Tally(_NAME.findall(b"\n" + body))
        window = int(self._clock() // CHURN_WINDOW)
        if page is None:
            page = self._pages[key] = _Page(series, names, window, series)
            return
        if window != page.window:
            page.added_before = page.added_now if window == page.window + 1 else 0
            page.added_now = 0
            page.window = window
        page.added_now += max(0, series - page.series)
        page.series = series
        page.names = names

    def forget(self, keep: set[tuple[str, str]]) -> None:
        """Drop the targets no longer scraped."""
        for key in [key for key in self._pages if key not in keep]:
            del self._pages[key]

    def top(self, n: int) -> dict[str, Any]:
        """The top `n`, in the shape of the receiver's (receiver/series.py)."""
        window = int(self._clock() // CHURN_WINDOW)
        names: Tally[bytes] = Tally()
        jobs: Tally[str] = Tally()
        rows: list[tuple[int, int, str, str]] = []
        for (job, instance), page in self._pages.items():
            names.update(page.names)
            jobs[job] += page.series
            churn = 0
            if window == page.window:
                churn = page.added_now + page.added_before
            elif window == page.window + 1:
                churn = page.added_now
            rows.append((page.series, churn, job, instance))
        return {
            "by_metric_name": [
                {"metric": name.decode(errors="replace"), "series": count}
                for name, count in names.most_common(n)
            ],
            "by_target": [
                {"publisher": self.publisher, "job": j, "instance": i, "series": s}
                for s, _c, j, i in heapq.nlargest(n, rows, key=lambda r: r[0])
            ],
            "by_job": [{"job": job, "series": count} for job, count in jobs.most_common(n)],
            "by_publisher": [{"publisher": self.publisher, "series": sum(r[0] for r in rows)}],
            "churn": [
                {"publisher": self.publisher, "job": j, "instance": i, "series_added": c}
                for _s, c, j, i in heapq.nlargest(n, rows, key=lambda r: r[1])
                if c
            ],
            "churn_window_seconds": CHURN_WINDOW * 2,
        }
