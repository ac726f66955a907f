"""Expected publishers: whether each one the operator listed reports, and who reports unlisted.

A publisher reports while the scrape time of its newest valid message is
within `publisher_stale_after` of now (delivered or not: a Pushgateway
that is down does not make the datacenters missing). One that never sent
anything since the receiver started is missing from the start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from prometheus_streams.config import Config
from prometheus_streams.config.publishers import ExpectedPublisher
from prometheus_streams.receiver.metrics import Publishers, own


class ExpectedPublishers:
    """The `expected_publishers` list against the publishers heard; gauges read when collected."""

    def __init__(
        self,
        config: Config,
        publishers: Publishers,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._publishers = publishers
        self._clock = clock
        self.reporting_gauge = Gauge(
            "expected_publisher_reporting",
            "1 while an expected publisher's newest scrape is within publisher_stale_after",
            ["publisher", "optional"],
            **own(registry),
        )
        self.unexpected_gauge = Gauge(
            "unexpected_publishers",
            "Publishers heard within publisher_stale_after that expected_publishers does not list",
            **own(registry),
        )
        self.unexpected_gauge.set_function(lambda: float(len(self.unexpected())))
        self.expected: tuple[ExpectedPublisher, ...] = ()
        self.stale_after = config.publisher_stale_after
        self.reload(config)

    def reload(self, config: Config) -> None:
        """Take a new list: gauges of publishers no longer listed go away."""
        for gone in self.expected:
            self.reporting_gauge.remove(gone.name, _flag(gone.optional))
        self.expected = config.expected_publishers
        self.stale_after = config.publisher_stale_after
        for entry in self.expected:
            name = entry.name
            self.reporting_gauge.labels(name, _flag(entry.optional)).set_function(
                lambda name=name: float(self.reporting(name))  # type: ignore[misc]
            )

    def reporting(self, publisher: str) -> bool:
        """Whether the publisher's newest scrape is recent enough."""
        heard = self._publishers.heard_at.get(publisher)
        return heard is not None and self._clock() - heard <= self.stale_after

    def unexpected(self) -> list[str]:
        """Publishers reporting that the list does not name (none when there is no list)."""
        if not self.expected:
            return []
        listed = {entry.name for entry in self.expected}
        return sorted(p for p in self._publishers.heard_at if p not in listed and self.reporting(p))

    def status(self) -> list[dict[str, Any]]:
        """One row per expected publisher, then one per unexpected one, for the status page."""
        now = self._clock()
        rows = []
        for entry in self.expected:
            rows.append(self._row(entry.name, now, expected=True, optional=entry.optional))
        for name in self.unexpected():
            rows.append(self._row(name, now, expected=False, optional=False))
        return rows

    def _row(self, name: str, now: float, expected: bool, optional: bool) -> dict[str, Any]:
        heard = self._publishers.heard_at.get(name)
        reporting = self.reporting(name)
        if not expected:
            state = "unexpected"
        elif reporting:
            state = "reporting"
        else:
            state = "missing (optional)" if optional else "missing"
        return {
            "publisher": name,
            "expected": expected,
            "optional": optional,
            "reporting": reporting,
            "state": state,
            "last_heard": heard,
            "age_seconds": None if heard is None else round(max(0.0, now - heard), 3),
        }


def _flag(optional: bool) -> str:
    return "true" if optional else "false"
