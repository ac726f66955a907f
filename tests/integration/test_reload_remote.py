"""Reload without restart over HTTP (POST /api/v1/reload) and over NATS management,
beside SIGHUP: a good config is applied, a bad one answered with its errors and the old
one kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nats
from harness import TOPIC, write_config
from servers import NatsServer, Pushgateway, async_wait_for, free_port, http_request
from test_cli import Daemon


def _receiver_cfg(nats_url: str, gateway: str, port: int, budget: Any) -> dict[str, Any]:
    return {
        "identity": "central",
        "monitor_port": port,
        "monitor_address": "127.0.0.1",
        "receiver_stream": {"urls": nats_url, "topic": TOPIC},
        "push_gateway": {"url": gateway, "publisher_label": True},
        "series_budget": {"per_publisher": budget},
    }


async def _nats_reload(nats_url: str) -> dict[str, Any]:
    nc = await nats.connect(nats_url)
    try:
        msg = await nc.request(
            "prometheus_streams.management.receiver.central.reload", b"", timeout=10
        )
        answer: dict[str, Any] = json.loads(msg.data)
        return answer
    finally:
        await nc.close()


def _reloads(port: int, result: str) -> bool:
    body = http_request("GET", f"http://127.0.0.1:{port}/metrics")[1]
    return f'prometheus_streams_config_reloads_total{{result="{result}"}} 1.0'.encode() in body


async def test_reload_over_http_and_nats_applies_good_and_refuses_bad_config(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    port = free_port()
    path = write_config(tmp_path, _receiver_cfg(nats_server.url, pushgateway.url, port, 100))
    receiver = Daemon(tmp_path / "receiver.err", "--config", str(path), "receiver")
    reload_url = f"http://127.0.0.1:{port}/api/v1/reload"
    try:
        await async_wait_for(
            lambda: receiver.logged("management on NATS"), timeout=60, message="never started"
        )

        write_config(tmp_path, _receiver_cfg(nats_server.url, pushgateway.url, port, 200))
        status, body = http_request("POST", reload_url, data=b"")
        answer = json.loads(body)
        assert status == 200, answer
        assert answer["reloaded"] is True and answer["errors"] == []
        assert _reloads(port, "success")
        assert receiver.logged("configuration reloaded from")

        write_config(tmp_path, _receiver_cfg(nats_server.url, pushgateway.url, port, -5))
        status, body = http_request("POST", reload_url, data=b"")
        answer = json.loads(body)
        assert status == 400, answer
        assert answer["reloaded"] is False
        assert answer["errors"] == [
            f"{path}: series_budget.per_publisher: must be between 1 and 1000000000, got -5"
        ]
        assert _reloads(port, "failure")

        answer = await _nats_reload(nats_server.url)
        assert answer["action"] == "reload" and answer["reloaded"] is False, answer
        assert "series_budget.per_publisher" in answer["errors"][0]
        assert answer["identity"] == "central"

        write_config(tmp_path, _receiver_cfg(nats_server.url, pushgateway.url, port, 300))
        answer = await _nats_reload(nats_server.url)
        assert answer["reloaded"] is True, answer
        assert http_request("GET", f"http://127.0.0.1:{port}/-/healthy")[0] == 200
        assert receiver.proc.poll() is None
    finally:
        rc, log = receiver.stop()
    assert rc == 0, log
    assert "Traceback" not in log
    assert log.count("configuration reloaded from") == 2
    assert log.count("configuration not reloaded") == 2
