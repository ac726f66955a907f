"""The series budget's cost per node-sized page, for each output's seam.

Usage: .venv/bin/python -m benchmarks.series_budget
Each figure is the fastest of five repeats of many calls, in this process.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from benchmarks import pages
from prometheus_streams.config.budget import SeriesBudgetConfig
from prometheus_streams.receiver.remote_write import text
from prometheus_streams.receiver.series import SeriesTracker

GROUP = ("dc1", "node", "host-0001.example.net:9100")
BUDGET = SeriesBudgetConfig(100_000, (("node", 50_000),), 600.0)


def _us(fn: Callable[[], object], number: int = 500) -> float:
    """Microseconds per call: the fastest of five repeats."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    """Print microseconds per node page: Pushgateway seam, remote-write seam, changed page."""
    page = pages.node_page()
    other = page.replace(b" 0\n", b" 1\n")
    rows = text.parse_page(page)
    pushgateway = SeriesTracker(BUDGET, None)
    pushgateway.filter_page(GROUP, page)
    turn = [page, other]

    def next_values() -> None:
        turn.reverse()
        pushgateway.filter_page(GROUP, turn[0])

    remote = SeriesTracker(BUDGET, None)
    remote.filter_rows(GROUP, rows)
    # A page whose series change every time: one series renamed back and forth.
    renamed = [page, page.replace(b"node_load1 ", b"node_load1_x ", 1)]
    changing = SeriesTracker(BUDGET, None)

    def new_series() -> None:
        renamed.reverse()
        changing.filter_page(GROUP, renamed[0])

    print(f"node page: {len(rows)} series, {len(page)} bytes")
    print(f"Pushgateway seam, same series, new values: {_us(next_values):7.1f} µs/page")
    rw = _us(lambda: remote.filter_rows(GROUP, rows))
    print(f"remote-write seam (rows parsed already):   {rw:7.1f} µs/page")
    print(f"Pushgateway seam, a series changed:        {_us(new_series):7.1f} µs/page")
    parse = _us(lambda: text.parse_page(page))
    print(f"for scale, parsing the page for remote write: {parse:7.1f} µs")


if __name__ == "__main__":
    main()
