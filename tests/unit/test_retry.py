"""Backoff grows to its cap with jitter; a failure streak is logged once, then summarised;
an outage is logged when it begins and when it ends."""

from __future__ import annotations

import logging
import random

import pytest
from nats.errors import NoRespondersError
from nats.js.errors import (
    BadRequestError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)

from prometheus_streams.transport.retry import Backoff, Outage, ThrottledLog, leaderless

log = logging.getLogger("test.retry")


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    backoff = Backoff(first=1.0, cap=30.0, rng=random.Random(7))  # noqa: S311 - jitter
    delays = [backoff.next() for _ in range(10)]
    ceilings = [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays[5:])) > 1, "capped delays must still be jittered"
    backoff.reset()
    assert 0.5 <= backoff.next() <= 1.0


def test_backoff_never_overflows_after_very_many_failures() -> None:
    backoff = Backoff(first=1.0, cap=30.0)
    for _ in range(5000):
        delay = backoff.next()
    assert 15.0 <= delay <= 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == log.name]


def test_a_streak_is_logged_once_then_summarised_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    throttle = ThrottledLog(log, "NATS (management)", interval=60.0, clock=clock)
    caplog.set_level(logging.DEBUG)
    for _ in range(120):  # two minutes of failures, one every second
        throttle.failure(logging.WARNING, "[Errno 111] Connect call failed")
        clock.now += 1.0
    messages = _messages(caplog)
    assert messages[0] == "NATS (management): [Errno 111] Connect call failed"
    assert len(messages) == 2
    assert messages[1].startswith("NATS (management): 60 more failures in the last 60s")
    assert "(61 in all so far)" in messages[1]
    assert throttle.recovered() == 120
    # A new streak starts with its first failure logged again.
    throttle.failure(logging.WARNING, "[Errno 111] Connect call failed")
    assert len(_messages(caplog)) == 3


def test_a_different_error_in_a_streak_is_logged_at_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    throttle = ThrottledLog(log, "NATS (stream)", clock=clock)
    caplog.set_level(logging.DEBUG)
    for text in ("refused", "refused", "certificate not accepted", "refused"):
        throttle.failure(logging.ERROR, text)
        clock.now += 1.0
    assert _messages(caplog) == [
        "NATS (stream): refused",
        "NATS (stream): certificate not accepted",
    ]
    assert all(r.levelno == logging.ERROR for r in caplog.records if r.name == log.name)


def test_ever_new_error_texts_cannot_flood_the_log(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    throttle = ThrottledLog(log, "NATS (stream)", clock=clock)
    caplog.set_level(logging.DEBUG)
    for n in range(1000):
        throttle.failure(logging.WARNING, f"error number {n}")
    assert len(_messages(caplog)) <= 10


def test_outage_logs_once_when_it_begins_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    outage = Outage(log, "stream S", clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.retry"):
        assert outage.answered() is None  # nothing to end
        assert outage.failed("no response from stream", "holding scrapes")
        for _ in range(190):
            assert not outage.failed("no response from stream", "holding scrapes")
        now[0] += 4.5
        assert outage.answered() == pytest.approx(4.5)
        assert outage.answered() is None
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "stream S does not answer (no response from stream): holding scrapes",
        "stream S answers again after 4.5s (191 failed tries meanwhile)",
    ]
    assert not outage.active


def test_leaderless_names_the_errors_of_an_election() -> None:
    assert leaderless(NoStreamResponseError())
    assert leaderless(NoRespondersError())
    assert leaderless(ServiceUnavailableError())
    assert leaderless(TimeoutError())
    assert not leaderless(NotFoundError())
    assert not leaderless(BadRequestError())
