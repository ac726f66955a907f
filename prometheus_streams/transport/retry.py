"""Retrying without flooding: capped backoff with jitter, throttled failure logs, outages."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from nats.errors import NoRespondersError
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

# Errors of one streak logged at once when their text is new; more than this many
# distinct texts (a server pool, each failing its own way) wait for the summary.
DISTINCT_LOGGED = 8


class Backoff:
    """Delays that double from `first` up to `cap`, each drawn from its upper half."""

    def __init__(
        self, first: float = 1.0, cap: float = 30.0, rng: random.Random | None = None
    ) -> None:
        self.first = first
        self.cap = cap
        # Jitter keeps many clients cut off by one outage from retrying in step.
        self._rng = rng or random.Random()  # noqa: S311 - timing jitter, not cryptography
        self._failures = 0

    def next(self) -> float:
        """The delay before the next try; each call lengthens the following one."""
        ceiling = min(self.cap, self.first * 2.0 ** min(self._failures, 32))
        self._failures += 1
        return ceiling / 2 + self._rng.random() * ceiling / 2

    def reset(self) -> None:
        """Start again from `first` (after a success)."""
        self._failures = 0


class ThrottledLog:
    """Logs the first failure of a streak, then at most one summary per `interval`."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self.what = what
        self.interval = interval
        self._clock = clock
        self.failures = 0  # in the current streak
        self._seen: set[str] = set()
        self._unlogged = 0
        self._latest = ""
        self._summary_at = 0.0

    def failure(self, level: int, message: str) -> None:
        """Note one failure; log it if it opens the streak or is new, else count it."""
        now = self._clock()
        self.failures += 1
        if self.failures == 1:
            self._summary_at = now
        if message not in self._seen and len(self._seen) < DISTINCT_LOGGED:
            self._seen.add(message)
            self._log.log(level, "%s: %s", self.what, message)
            return
        self._unlogged += 1
        self._latest = message
        if now - self._summary_at >= self.interval:
            self._log.log(
                level,
                "%s: %d more failures in the last %.0fs (%d in all so far), the latest: %s",
                self.what,
                self._unlogged,
                now - self._summary_at,
                self.failures,
                self._latest,
            )
            self._unlogged = 0
            self._summary_at = now

    def recovered(self) -> int:
        """End the streak; return how many failures it had."""
        failures = self.failures
        self.failures = 0
        self._seen.clear()
        self._unlogged = 0
        self._latest = ""
        return failures


# While a JetStream stream or consumer elects a new leader (a cluster node was
# lost), requests to it find no responder (503) or no answer at all. Nothing
# is wrong with the message or the config; it passes when the election ends.
ELECTION_ERRORS: tuple[type[BaseException], ...] = (
    NoStreamResponseError,
    NoRespondersError,
    ServiceUnavailableError,
    TimeoutError,
)


def leaderless(exc: BaseException) -> bool:
    """Whether an error says the stream or consumer has no leader now (an election)."""
    return isinstance(exc, ELECTION_ERRORS)


class Outage:
    """Logs when something stops answering and when it answers again; nothing in between.

    Many workers failing at once on one cause (a stream leader lost) make
    one warning, not one each; the recovery line says how long it lasted.
    """

    def __init__(
        self, logger: logging.Logger, what: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = logger
        self.what = what
        self._clock = clock
        self.since: float | None = None
        self.failures = 0

    @property
    def active(self) -> bool:
        """Whether it is down now."""
        return self.since is not None

    def failed(self, why: str, doing: str) -> bool:
        """Note a failure; True when it opened the outage (and was logged)."""
        self.failures += 1
        if self.since is not None:
            return False
        self.since = self._clock()
        self._log.warning("%s does not answer (%s): %s", self.what, why, doing)
        return True

    def answered(self) -> float | None:
        """Note a success; the outage's length when it ended one (and was logged)."""
        if self.since is None:
            return None
        lasted = self._clock() - self.since
        self._log.warning(
            "%s answers again after %.1fs (%d failed tries meanwhile)",
            self.what,
            lasted,
            self.failures,
        )
        self.since = None
        self.failures = 0
        return lasted
