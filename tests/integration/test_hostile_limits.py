"""Every boundary has a limit: oversized input is refused and counted, never a crash."""

from __future__ import annotations

import os
import time
from pathlib import Path

from harness import (
    group_samples,
    metric,
    new_poller,
    new_receiver,
    only_up_0,
    poller_config,
    publish_raw,
    publish_scrape,
    receiver_config,
    running,
)
from servers import NatsServer, Pushgateway, Target, async_wait_for

from prometheus_streams import wire


def _pushed(pushgateway: Pushgateway) -> dict[str, float]:
    return group_samples(pushgateway.metrics_text(), "node", "web-1")


async def test_target_body_above_limit_is_published_as_up_0(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway, target: Target
) -> None:
    target.body = b"# TYPE big gauge\n" + b"".join(
        f'big{{n="{i}"}} {i}\n'.encode() for i in range(500)
    )
    jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}], "body_size_limit": "1KiB"}}
    poller, preg = new_poller(poller_config(tmp_path, nats_server.url, jobs))
    receiver, _ = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(poller), running(receiver):
        await async_wait_for(
            lambda: _pushed(pushgateway).get('up{publisher="dc1"}') == 0,
            message="an oversized scrape did not show up 0",
        )
    assert metric(preg, "poller_scrapes_total", poller_job="node", result="too_large") >= 1
    assert not any(name.startswith("big") for name in _pushed(pushgateway))


async def test_scrape_above_servers_max_payload_is_published_as_up_0(
    tmp_path: Path, pushgateway: Pushgateway, target: Target
) -> None:
    # Random label values hardly compress: the gzipped scrape stays far above 16 KiB.
    target.body = b"".join(f'noise{{v="{os.urandom(24).hex()}"}} 1\n'.encode() for _ in range(2000))
    with NatsServer(tmp_path / "nats", extra_config="max_payload: 16384") as server:
        jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
        poller, preg = new_poller(poller_config(tmp_path, server.url, jobs))
        receiver, _ = new_receiver(receiver_config(tmp_path, server.url, pushgateway.url))
        async with running(poller), running(receiver):
            await async_wait_for(
                lambda: _pushed(pushgateway).get('up{publisher="dc1"}') == 0,
                message="a scrape above max_payload did not show up 0",
            )
            assert poller.conn.nc is not None and poller.conn.nc.max_payload == 16384
            # The connection stayed up: the server never saw an oversized message.
            assert metric(preg, "nats_reconnects_total", connection="stream") == 0
    assert metric(preg, "poller_dropped_total", reason="too_large") >= 1
    assert metric(preg, "poller_scrapes_total", poller_job="node", result="success") >= 1
    assert not any(name.startswith("noise") for name in _pushed(pushgateway))


async def _refused(
    tmp_path: Path, nats_url: str, pushgateway: Pushgateway, reason: str, body: bytes
) -> None:
    cfg = receiver_config(
        tmp_path, nats_url, pushgateway.url, max_line_length="1KiB", max_label_count=5
    )
    receiver, rreg = new_receiver(cfg)
    await publish_scrape(nats_url, body)
    async with running(receiver):
        await async_wait_for(
            lambda: metric(rreg, "receiver_dropped_total", reason=reason) == 1,
            message=f"the message was not refused as {reason}",
        )

        # nats-server settles a term on its own time: wait for it, not for a fixed moment.
        async def settled() -> bool:
            info = await receiver.conn.js.consumer_info("PROMETHEUS", "receiver")
            return bool(info.num_ack_pending == 0 and info.num_pending == 0)

        await async_wait_for(settled, message="the refused message is still pending")
        info = await receiver.conn.js.consumer_info("PROMETHEUS", "receiver")
    assert info.num_redelivered == 0  # terminated, not retried
    # The page is not pushed; its group holds up 0 instead.
    assert [group["labels"]["instance"] for group in pushgateway.groups()] == ["web-1"]
    assert only_up_0(_pushed(pushgateway))


async def test_line_longer_than_limit_is_refused(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    body = b'ok 1\nlong{v="' + b"x" * 2000 + b'"} 1\n'
    await _refused(tmp_path, nats_server.url, pushgateway, "line_too_long", body)


async def test_series_with_too_many_labels_is_refused(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    body = b'wide{a="1",b="2",c="3",d="4",e="5",f="6"} 1\n'
    await _refused(tmp_path, nats_server.url, pushgateway, "too_many_labels", body)


async def test_label_values_full_of_equals_signs_are_not_labels(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    cfg = receiver_config(tmp_path, nats_server.url, pushgateway.url, max_label_count=5)
    receiver, rreg = new_receiver(cfg)
    await publish_scrape(nats_server.url, b'eq{a="x=y=z=w=v=u=t=s",b="=\\"="} 1\n')
    async with running(receiver):
        pushed = await async_wait_for(
            lambda: [v for k, v in _pushed(pushgateway).items() if k.startswith("eq{")],
            message="a series within the label limit was not pushed",
        )
    assert pushed == [1]
    assert metric(rreg, "receiver_dropped_total", reason="too_many_labels") == 0


async def test_oversized_headers_are_refused(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    receiver, rreg = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    scrape = wire.Scrape("dc1", "node", "web-1", int(time.time() * 1000), b"x 1\n")
    subject, payload, headers = wire.encode("prometheus", scrape)
    headers["X-Padding"] = "p" * (wire.MAX_HEADER_CHARS + 1)
    await publish_raw(nats_server.url, subject, payload, headers)
    async with running(receiver):
        await async_wait_for(
            lambda: metric(rreg, "receiver_dropped_total", reason="header_too_large") == 1,
            message="oversized headers were not refused",
        )
    assert pushgateway.group_labels() == []
