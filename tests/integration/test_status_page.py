"""The status page, rendered by a real headless Chromium."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from harness import metric, new_poller, new_receiver, poller_config, publish_scrape, running
from servers import NatsServer, Target, async_wait_for, find_binary, free_port
from stores import FakeStore, Reply
from test_remote_write import rw_receiver

from prometheus_streams.monitor import MonitorServer


def render(url: str, profile: Path, budget_ms: int) -> str:
    """The DOM after the page's scripts ran for `budget_ms` of virtual time."""
    result = subprocess.run(
        [
            find_binary("chromium"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


async def test_status_page_shows_targets_up_and_down_and_refreshes(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    jobs = {
        "node": {
            "targets": [
                {"name": "alive-host", "url": target.url},
                {"name": "dead-host", "url": dead},
            ]
        }
    }
    poller, registry = new_poller(poller_config(tmp_path, nats_server.url, jobs))
    monitor = MonitorServer(registry, "127.0.0.1", 0, poller)
    async with running(poller):
        await monitor.start()
        try:
            await async_wait_for(
                lambda: all(t.last_scrape for t in poller.targets.values()),
                message="targets not scraped yet",
            )
            url = f"http://127.0.0.1:{monitor.bound_port}/"
            dom = await asyncio.to_thread(render, url, tmp_path / "chromium", 12000)
        finally:
            await monitor.stop()
    assert "alive-host" in dom and "dead-host" in dom
    assert '<td class="up">up</td>' in dom
    assert '<td class="down">down</td>' in dom
    assert "Connect call failed" in dom or "Cannot connect" in dom  # the down target's error
    assert "NATS connected" in dom
    # 12 s of virtual time with a 5 s refresh: the page fetched the status again.
    assert monitor.status_requests >= 2


async def test_status_page_shows_each_remote_write_output(
    tmp_path: Path, nats_server: NatsServer, fake_store: FakeStore
) -> None:
    fake_store.default = Reply(503, b"store overloaded\n")
    await publish_scrape(nats_server.url, b"demo 1\n")
    receiver, registry = new_receiver(rw_receiver(tmp_path, nats_server.url, fake_store.write_url))
    monitor = MonitorServer(registry, "127.0.0.1", 0, receiver)
    async with running(receiver):
        await monitor.start()
        try:
            await async_wait_for(
                lambda: (
                    metric(registry, "receiver_remote_write_samples_retried_total", output="store")
                    > 0
                ),
                message="the store was never asked",
            )
            url = f"http://127.0.0.1:{monitor.bound_port}/"
            dom = await asyncio.to_thread(render, url, tmp_path / "chromium", 3000)
        finally:
            await monitor.stop()
    section = dom.split('id="remote-write-section"', 1)[1].split("</section>", 1)[0]
    assert "hidden" not in section.split(">", 1)[0]
    assert "<td>store</td>" in section
    assert '<td class="good">writing</td>' in section
    assert "store overloaded" in section  # the last error, as the store said it
