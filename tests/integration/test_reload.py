"""SIGHUP reloads the configuration without dropping the connection."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from harness import write_config
from servers import NatsServer, Target, async_wait_for, free_port, http_request
from test_cli import Daemon


def _poller_cfg(nats_url: str, port: int, targets: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "identity": "dc1",
        "scrape_interval": "300ms",
        "monitor_port": port,
        "monitor_address": "127.0.0.1",
        "poller_stream": {"urls": nats_url},
        "jobs": {"node": {"targets": targets}},
    }


async def test_sighup_adds_and_removes_targets_and_keeps_old_config_when_bad(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    second = Target()
    await second.start()
    port = free_port()
    path = write_config(
        tmp_path, _poller_cfg(nats_server.url, port, [{"name": "one", "url": target.url}])
    )
    poller = Daemon(tmp_path / "poller.err", "--config", str(path), "poller")
    try:
        await async_wait_for(lambda: target.requests >= 2, message="first target not scraped")
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        reconnects = http_request("GET", metrics_url)[1].count(
            b'nats_reconnects_total{connection="stream"} 0.0'
        )

        write_config(
            tmp_path,
            _poller_cfg(nats_server.url, port, [{"name": "two", "url": second.url}]),
        )
        poller.proc.send_signal(signal.SIGHUP)
        await async_wait_for(lambda: second.requests >= 2, message="added target not scraped")
        stopped_at = target.requests
        await async_wait_for(lambda: second.requests >= 6)
        assert target.requests <= stopped_at + 1, "removed target still scraped"

        path.write_text("jobs: [not, a, mapping]\n")
        poller.proc.send_signal(signal.SIGHUP)
        await async_wait_for(lambda: poller.logged("configuration not reloaded"))
        before = second.requests
        await async_wait_for(lambda: second.requests >= before + 3, message="bad reload broke it")
        assert poller.proc.poll() is None
        # the NATS connection was never dropped
        body = http_request("GET", metrics_url)[1]
        assert body.count(b'nats_reconnects_total{connection="stream"} 0.0') == reconnects == 1
        assert b'prometheus_streams_config_reloads_total{result="failure"} 1.0' in body
    finally:
        rc, log = poller.stop()
        await second.stop()
    assert rc == 0, log
    assert "jobs: must be a mapping" in log
