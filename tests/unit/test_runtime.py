"""The parts both roles share: the pause gate, the recent errors, the run phases."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry, Gauge

from prometheus_streams.runtime import PauseGate, Phases, RecentErrors


def _gate() -> tuple[PauseGate, CollectorRegistry]:
    registry = CollectorRegistry()
    gauge = Gauge("x_paused", "paused", registry=registry)
    return PauseGate("poller", gauge, "targets are not scraped", logging.getLogger("t")), registry


async def test_pause_and_resume_say_whether_the_state_changed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate, registry = _gate()
    with caplog.at_level(logging.WARNING):
        assert gate.pause("operator") and gate.paused
        assert not gate.pause("again")
        assert registry.get_sample_value("x_paused") == 1
        assert gate.resume("operator") and not gate.paused
        assert not gate.resume("again")
    assert registry.get_sample_value("x_paused") == 0
    assert [r.getMessage() for r in caplog.records] == [
        "poller paused (operator): targets are not scraped",
        "poller resumed (operator)",
    ]


async def test_a_waiter_goes_on_once_resumed() -> None:
    gate, _ = _gate()
    gate.pause("operator")
    waiter = asyncio.create_task(gate.wait_resumed())
    await asyncio.sleep(0)
    assert not waiter.done()
    gate.resume("operator")
    await asyncio.wait_for(waiter, timeout=30)


def test_recent_errors_keep_the_newest_twenty_newest_first() -> None:
    errors = RecentErrors()
    for n in range(25):
        errors.note(f"error {n}")
    shown = [e["error"] for e in errors.for_status()]
    assert shown == [f"error {n}" for n in range(24, 4, -1)]
    assert errors.last == "error 24"


async def test_phases_run_in_order_and_shutdown_gets_the_grace() -> None:
    seen: list[object] = []

    class Role(Phases):
        async def start(self) -> None:
            seen.append("start")

        async def serve(self, stop: asyncio.Event) -> None:
            await stop.wait()
            seen.append("serve")

        async def shutdown(self, grace: float) -> None:
            seen.append(("shutdown", grace))

    stop = asyncio.Event()
    run = asyncio.create_task(Role().run_phases(stop, 2.5))
    await asyncio.sleep(0)
    assert seen == ["start"]
    stop.set()
    await asyncio.wait_for(run, timeout=30)
    assert seen == ["start", "serve", ("shutdown", 2.5)]
