"""The roles run on uvloop when it is installed, on asyncio's loop otherwise, and say which."""

from __future__ import annotations

import asyncio
import importlib
import logging
from types import ModuleType

import pytest
import uvloop

from prometheus_streams import event_loop

VERSION = getattr(uvloop, "__version__", "")


def test_uvloop_when_installed() -> None:
    factory, name = event_loop.choose({})
    assert factory is uvloop.new_event_loop
    assert name == f"uvloop {VERSION}"


def test_the_environment_keeps_asyncios_loop() -> None:
    assert event_loop.choose({event_loop.ENV: " AsyncIO "}) == (
        None,
        "asyncio (PROMETHEUS_STREAMS_LOOP=asyncio)",
    )


def test_asyncios_loop_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def without_uvloop(name: str, package: str | None = None) -> ModuleType:
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_uvloop)
    assert event_loop.choose({}) == (None, "asyncio (uvloop not installed)")


@pytest.mark.parametrize(("env", "loop_type"), [("", uvloop.Loop), ("asyncio", None)])
def test_run_logs_the_loop_it_runs_on(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    env: str,
    loop_type: type | None,
) -> None:
    monkeypatch.setenv(event_loop.ENV, env)

    async def which() -> type:
        return type(asyncio.get_running_loop())

    with caplog.at_level(logging.INFO, logger="prometheus_streams"):
        ran_on = event_loop.run(which())
    if loop_type is None:
        assert not issubclass(ran_on, uvloop.Loop)
        assert "event loop: asyncio (PROMETHEUS_STREAMS_LOOP=asyncio)" in caplog.text
    else:
        assert issubclass(ran_on, loop_type)
        assert f"event loop: uvloop {VERSION}" in caplog.text
