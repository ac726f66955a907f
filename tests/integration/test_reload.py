"""SIGHUP reloads the configuration without dropping the connection."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from harness import (
    metric,
    new_poller,
    new_receiver,
    poller_config,
    publish_scrape,
    receiver_config,
    running,
    write_config,
)
from servers import NatsServer, Pushgateway, Target, async_wait_for, free_port, http_request
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


def _last_scrape(status: dict[str, Any], name: str) -> float | None:
    return next((t["last_scrape"] for t in status["targets"] if t["name"] == name), None)


async def test_adding_a_target_leaves_the_others_schedules_alone(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    second = Target()
    await second.start()
    one = [{"name": "a", "url": target.url}]
    jobs = {"node": {"targets": one, "scrape_interval": "5s"}}
    poller, _ = new_poller(poller_config(tmp_path, nats_server.url, jobs))
    try:
        async with running(poller):
            await async_wait_for(lambda: bool(_last_scrape(poller.status(), "a")), timeout=30)
            before = _last_scrape(poller.status(), "a")
            jobs["node"]["targets"] = [*one, {"name": "b", "url": second.url}]
            poller.reload(poller_config(tmp_path, nats_server.url, jobs))
            # a restarted loop would start over with no scrape and at its next phase
            assert _last_scrape(poller.status(), "a") == before
            await async_wait_for(lambda: second.requests >= 1, timeout=30)
            assert _last_scrape(poller.status(), "a") is not None
    finally:
        await second.stop()


async def test_reload_to_stale_after_0_deletes_nothing(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    await publish_scrape(nats_server.url, b"# TYPE v gauge\nv 1\n", instance="kept")
    push = {
        "url": pushgateway.url,
        "publisher_label": True,
        "stale_after": "1h",
        "stale_check_interval": "200ms",
    }
    receiver, rreg = new_receiver(
        receiver_config(tmp_path, nats_server.url, pushgateway.url, push_gateway=push)
    )
    async with running(receiver):
        await async_wait_for(lambda: metric(rreg, "receiver_pushes_total", result="success") == 1)
        receiver.reload(
            receiver_config(
                tmp_path, nats_server.url, pushgateway.url, push_gateway={**push, "stale_after": 0}
            )
        )
        # the stale check must read stale_after 0 as "off", not as "older than 0 s"
        for _ in range(3):
            assert await receiver.stale_tick() == 0
    assert metric(rreg, "receiver_stale_groups_deleted_total") == 0
    assert any(g.get("instance") == "kept" for g in pushgateway.group_labels())
