"""A circuit breaker on the Pushgateway: stop hammering it while it is down."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

from prometheus_streams.receiver.metrics import counter, own

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATES = (CLOSED, OPEN, HALF_OPEN)


class Breaker:
    """Closed: push. Open: push nothing until the cool-down ends. Half-open: one probe."""

    def __init__(
        self,
        failures: int,
        cooldown: float,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self._clock = clock
        self.state = CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._state_gauge = Gauge(
            "breaker_state",
            "1 for the Pushgateway circuit breaker's current state",
            ["state"],
            **own(registry),
        )
        # At 0 until entered, so rate() sees it.
        self._transitions = counter(
            registry,
            "breaker_transitions",
            "Circuit breaker state changes, by the state entered",
            ("state",),
            STATES,
        )
        self._show()

    def _show(self) -> None:
        for state in STATES:
            self._state_gauge.labels(state).set(1 if state == self.state else 0)

    def _enter(self, state: str, why: str) -> None:
        if state == self.state:
            return
        log.warning("Pushgateway circuit breaker %s -> %s: %s", self.state, state, why)
        self.state = state
        self._transitions.labels(state).inc()
        if state == OPEN:
            self._opened_at = self._clock()
        self._show()

    def wait_time(self) -> float:
        """Seconds until a push may be tried; moves open to half-open when due."""
        if self.state != OPEN:
            return 0.0
        remaining = self._opened_at + self.cooldown - self._clock()
        if remaining > 0:
            return remaining
        self._enter(HALF_OPEN, "cool-down over, probing with one push")
        return 0.0

    def record(self, success: bool) -> None:
        """Account one push that reached a verdict (2xx/4xx) or failed (no answer/5xx/429)."""
        if success:
            self._consecutive = 0
            self._enter(CLOSED, "push succeeded")
            return
        self._consecutive += 1
        if self.state == HALF_OPEN:
            self._enter(OPEN, "probe push failed")
        elif self._consecutive >= self.failures:
            self._enter(OPEN, f"{self._consecutive} consecutive pushes failed")
