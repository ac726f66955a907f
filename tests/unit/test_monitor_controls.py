"""The monitor's controls (pause, resume, reload) refuse clients off loopback unless allowed.

No real client off loopback is at hand in a test (traffic stays on loopback), so
the request is made by aiohttp's own test helper with another peer address.
"""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry

from prometheus_streams.monitor import MonitorServer


class FakeRole:
    reloader = None

    def __init__(self) -> None:
        self.reloads: list[str] = []

    def status(self) -> dict[str, Any]:
        return {}

    def reload_from_file(self, who: str) -> dict[str, Any]:
        self.reloads.append(who)
        return {"reloaded": False, "errors": ["c.yaml: series_budget: bad"]}


def _request(path: str, peer: str) -> Any:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 40000) if name == "peername" else default
    )
    return make_mocked_request("POST", path, transport=transport)


@pytest.mark.parametrize("path", ["/api/v1/reload", "/api/v1/pause", "/api/v1/resume"])
async def test_controls_refuse_a_remote_client(path: str) -> None:
    role = FakeRole()
    server = MonitorServer(CollectorRegistry(), "127.0.0.1", 0, role)  # type: ignore[arg-type]
    response = await server._control(_request(path, "192.0.2.7"))
    assert response.status == 403
    assert role.reloads == []


async def test_reload_from_loopback_answers_the_errors_with_400() -> None:
    role = FakeRole()
    server = MonitorServer(CollectorRegistry(), "127.0.0.1", 0, role)  # type: ignore[arg-type]
    response = await server._control(_request("/api/v1/reload", "127.0.0.1"))
    assert response.status == 400
    assert json.loads(response.text or "")["errors"] == ["c.yaml: series_budget: bad"]
    assert role.reloads == ["HTTP from 127.0.0.1"]
    allowed = MonitorServer(
        CollectorRegistry(),
        "127.0.0.1",
        0,
        role,  # type: ignore[arg-type]
        allow_remote_control=True,
    )
    response = await allowed._control(_request("/api/v1/reload", "192.0.2.7"))
    assert response.status == 400  # reached the role (management.http_remote: true)
