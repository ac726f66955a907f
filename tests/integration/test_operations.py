"""What on-call needs: pause/resume, the breaker, management over NATS, stale groups,
file discovery, reload — through real nats-server, Pushgateway and targets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
from harness import (
    group_samples,
    metric,
    new_receiver,
    poller_config,
    publish_scrape,
    receiver_config,
    running,
)
from prometheus_client import CollectorRegistry
from servers import NatsServer, Pushgateway, Target, async_wait_for, free_port, http_request

from prometheus_streams.monitor import MonitorServer
from prometheus_streams.poller.app import Poller
from prometheus_streams.receiver.app import Receiver

PREFIX = "prometheus_streams.management"


def _pushed(pushgateway: Pushgateway, job: str, instance: str) -> dict[str, float]:
    return group_samples(pushgateway.metrics_text(), job, instance)


@asynccontextmanager
async def monitored(
    role: Poller | Receiver, registry: CollectorRegistry, port: int
) -> AsyncIterator[MonitorServer]:
    monitor = MonitorServer(registry, "127.0.0.1", port, role)
    await monitor.start()
    try:
        yield monitor
    finally:
        await monitor.stop()


async def _requests(
    nats_url: str, subject: str, replies: int, wait: float = 5
) -> list[dict[str, Any]]:
    """Send one request and collect up to `replies` answers (for the `all` subjects)."""
    nc = await nats.connect(nats_url)
    try:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish(subject, b"", reply=inbox)
        answers: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait
        while len(answers) < replies and time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=max(0.01, deadline - time.monotonic()))
            except nats.errors.TimeoutError:
                break
            if msg.data:  # an empty 503 status means nobody listens on the subject
                answers.append(json.loads(msg.data))
        return answers
    finally:
        await nc.close()


async def _stream_has_messages(nats_url: str) -> bool:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info("PROMETHEUS")
        return bool(info.state.messages >= 1)
    finally:
        await nc.close()


async def test_paused_poller_scrapes_only_its_own_job(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    port = free_port()
    jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
    cfg = poller_config(tmp_path, nats_server.url, jobs)
    registry = CollectorRegistry()
    poller = Poller(cfg, registry, monitor_port=port)
    async with running(poller), monitored(poller, registry, port):
        await async_wait_for(lambda: target.requests >= 2)
        status, body = await asyncio.to_thread(
            http_request, "POST", f"http://127.0.0.1:{port}/api/v1/pause"
        )
        assert status == 200 and json.loads(body)["changed"] is True
        assert metric(registry, "poller_paused") == 1
        seen = target.requests
        own_before = metric(
            registry, "poller_scrapes_total", poller_job="prometheus_streams", result="success"
        )
        await async_wait_for(
            lambda: (
                metric(
                    registry,
                    "poller_scrapes_total",
                    poller_job="prometheus_streams",
                    result="success",
                )
                >= own_before + 3
            ),
            message="own job stopped while paused",
        )
        assert target.requests <= seen + 1  # at most one scrape was already under way
        await asyncio.to_thread(http_request, "POST", f"http://127.0.0.1:{port}/api/v1/resume")
        await async_wait_for(lambda: target.requests >= seen + 3, message="no scrapes after resume")
    assert metric(registry, "poller_paused") == 0


async def test_receiver_paused_over_nats_keeps_messages_in_the_stream(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    receiver, rreg = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(receiver):
        await async_wait_for(lambda: receiver.ready()[0])
        (answer,) = await _requests(nats_server.url, f"{PREFIX}.receiver.central.pause", 1)
        assert answer["changed"] is True and answer["status"]["paused"] is True
        await publish_scrape(nats_server.url, b"# TYPE kept gauge\nkept 1\n")
        # The message is stored; a paused receiver fetches nothing new, and a fetch
        # already waiting when the pause came hands its message straight back.
        await async_wait_for(lambda: _stream_has_messages(nats_server.url))
        status = await _requests(nats_server.url, f"{PREFIX}.receiver.central.status", 1)
        assert status[0]["status"]["paused"] is True
        assert metric(rreg, "receiver_paused") == 1
        assert not _pushed(pushgateway, "node", "web-1")
        assert metric(rreg, "receiver_pushes_total", result="success") == 0
        (answer,) = await _requests(nats_server.url, f"{PREFIX}.all.resume", 1)
        assert answer["changed"] is True
        await async_wait_for(
            lambda: _pushed(pushgateway, "node", "web-1").get('kept{publisher="dc1"}') == 1,
            message="message held during the pause never arrived",
        )


async def test_all_subject_reaches_every_instance_and_micro_ping_finds_them(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway, target: Target
) -> None:
    jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
    poller = Poller(poller_config(tmp_path, nats_server.url, jobs), CollectorRegistry())
    receiver, _ = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(poller), running(receiver):
        await async_wait_for(lambda: poller.ready()[0] and receiver.ready()[0])
        answers = await _requests(nats_server.url, f"{PREFIX}.all.status", 2)
        assert sorted((a["role"], a["identity"]) for a in answers) == [
            ("poller", "dc1"),
            ("receiver", "central"),
        ]
        pings = await _requests(nats_server.url, "$SRV.PING.prometheus-streams", 2)
        assert sorted(p["metadata"]["role"] for p in pings) == ["poller", "receiver"]


async def test_breaker_opens_while_pushgateway_is_down_and_closes_after(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    pushgateway.stop()
    for i in range(4):
        await publish_scrape(nats_server.url, b"# TYPE v gauge\nv 1\n", instance=f"t{i}")
    cfg = receiver_config(
        tmp_path,
        nats_server.url,
        pushgateway.url,
        push_gateway={
            "url": pushgateway.url,
            "publisher_label": True,
            "breaker_failures": 2,
            "breaker_cooldown": "1s",
        },
    )
    receiver, rreg = new_receiver(cfg)
    async with running(receiver):
        await async_wait_for(
            lambda: metric(rreg, "receiver_breaker_state", state="open") == 1,
            message="breaker never opened",
        )
        await async_wait_for(
            lambda: metric(rreg, "receiver_breaker_transitions_total", state="half_open") >= 1,
            message="breaker never probed",
        )
        await asyncio.to_thread(pushgateway.start)
        await async_wait_for(
            lambda: metric(rreg, "receiver_breaker_state", state="closed") == 1, timeout=60
        )
        await async_wait_for(lambda: len(pushgateway.groups()) == 4, timeout=60)
    assert metric(rreg, "receiver_breaker_transitions_total", state="open") >= 1


async def test_stale_groups_are_deleted_but_foreign_groups_kept(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    foreign = f"{pushgateway.url}/metrics/job/batch"
    status, _ = await asyncio.to_thread(http_request, "PUT", foreign, b"batch_done 1\n")
    assert status == 200
    await publish_scrape(nats_server.url, b"# TYPE v gauge\nv 1\n", instance="gone")
    cfg = receiver_config(
        tmp_path,
        nats_server.url,
        pushgateway.url,
        push_gateway={
            "url": pushgateway.url,
            "publisher_label": True,
            "stale_after": "1s",
            "stale_check_interval": "300ms",
        },
    )
    receiver, rreg = new_receiver(cfg)
    async with running(receiver):
        await async_wait_for(lambda: metric(rreg, "receiver_pushes_total", result="success") == 1)
        await async_wait_for(
            lambda: metric(rreg, "receiver_stale_groups_deleted_total") == 1,
            message="stale group not deleted",
        )
    labels = pushgateway.group_labels()
    assert {"job": "batch"} in labels
    assert not any(group.get("instance") == "gone" for group in labels)


async def test_file_discovery_adds_and_removes_targets_with_labels(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway, target: Target
) -> None:
    sd_file = tmp_path / "targets.json"
    address = f"127.0.0.1:{target.port}"
    sd_file.write_text(json.dumps([{"targets": [address], "labels": {"rack": "r1"}}]))
    jobs = {"node": {"file_sd_configs": [{"files": [str(tmp_path / "*.json")]}]}}
    poller = Poller(poller_config(tmp_path, nats_server.url, jobs), preg := CollectorRegistry())
    receiver, _ = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(poller), running(receiver):
        await async_wait_for(
            lambda: (
                {"job": "node", "instance": address, "rack": "r1", "publisher": "dc1"}
                in pushgateway.group_labels()
            ),
            message="discovered target with its label never arrived",
        )
        sd_file.write_text("[{broken")
        await async_wait_for(
            lambda: metric(preg, "poller_discovery_errors_total", poller_job="node") >= 1
        )
        assert ("node", address) in poller.targets, "a broken file must keep the old targets"
        sd_file.write_text(json.dumps([]))
        await async_wait_for(lambda: ("node", address) not in poller.targets)
    assert metric(preg, "poller_targets", poller_job="node") == 0


async def test_management_on_its_own_brokers(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    backplane = NatsServer(tmp_path / "backplane")
    backplane.start()
    try:
        jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
        cfg = poller_config(tmp_path, nats_server.url, jobs, management={"brokers": backplane.url})
        poller = Poller(cfg, CollectorRegistry())
        async with running(poller):
            await async_wait_for(lambda: poller.ready()[0])

            async def answered() -> bool:
                return bool(await _requests(backplane.url, f"{PREFIX}.poller.dc1.pause", 1, 1))

            await async_wait_for(answered, message="no management on the backplane")
            assert poller.paused
            # nothing on the stream's own server
            assert await _requests(nats_server.url, f"{PREFIX}.poller.dc1.status", 1, 1) == []
    finally:
        backplane.stop()
