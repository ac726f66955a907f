"""The JetStream stream is created if missing and checked if present."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import nats
import pytest
from harness import (
    metric,
    new_receiver,
    poller_config,
    publish_scrape,
    receiver_config,
    running,
)
from nats.js import api
from servers import NatsServer, Pushgateway, async_wait_for

from prometheus_streams.config import StreamConfig
from prometheus_streams.errors import StreamMismatchError
from prometheus_streams.transport import ensure_stream


def _stream_config(tmp_path: Path, url: str, **stream: Any) -> StreamConfig:
    cfg = poller_config(tmp_path, url, {"n": {"targets": [{"url": "http://127.0.0.1:1/"}]}})
    assert cfg.poller_stream is not None
    return dataclasses.replace(cfg.poller_stream, **stream)


async def test_missing_stream_is_created_with_configured_limits(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    stream_cfg = _stream_config(
        tmp_path, nats_server.url, stream_max_age=120.0, max_msgs_per_subject=3
    )
    nc = await nats.connect(nats_server.url)
    try:
        await ensure_stream(nc.jetstream(), stream_cfg)
        info = await nc.jetstream().stream_info("PROMETHEUS")
    finally:
        await nc.close()
    assert info.config.subjects == ["prometheus.>"]
    assert info.config.max_age == 120.0
    assert info.config.max_msgs_per_subject == 3


async def test_existing_stream_limits_are_updated_and_logged(
    tmp_path: Path, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="PROMETHEUS", subjects=["prometheus.>"], max_msgs_per_subject=5)
        await ensure_stream(js, _stream_config(tmp_path, nats_server.url))
        info = await js.stream_info("PROMETHEUS")
    finally:
        await nc.close()
    assert info.config.max_msgs_per_subject == 1
    assert "max_msgs_per_subject 5 -> 1" in caplog.text


async def test_two_roles_creating_the_stream_at_once_both_succeed(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """A poller and a receiver with remote write start together, with different limits."""
    plain = _stream_config(tmp_path, nats_server.url)
    history = dataclasses.replace(plain, max_msgs_per_subject=-1, history=True)
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        # Both see no stream, both create it: one of the creates is refused.
        real_info = js.stream_info
        seen: list[str] = []

        async def nothing_yet(name: str, *args: Any, **kwargs: Any) -> Any:
            if len(seen) < 2:
                seen.append(name)
                raise nats.js.errors.NotFoundError()
            return await real_info(name, *args, **kwargs)

        js.stream_info = nothing_yet  # type: ignore[method-assign]
        await asyncio.gather(ensure_stream(js, plain), ensure_stream(js, history))
        js.stream_info = real_info  # type: ignore[method-assign]
        info = await js.stream_info("PROMETHEUS")
    finally:
        await nc.close()
    # The history a remote-write output needs wins, whichever came first.
    assert info.config.max_msgs_per_subject == -1


async def test_stream_without_our_subjects_is_a_clear_error(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="PROMETHEUS", subjects=["other.>"])
        with pytest.raises(StreamMismatchError, match=r"does not take prometheus\.>"):
            await ensure_stream(js, _stream_config(tmp_path, nats_server.url))
        await js.delete_stream("PROMETHEUS")
        await js.add_stream(
            name="PROMETHEUS", subjects=["prometheus.>"], storage=api.StorageType.MEMORY
        )
        with pytest.raises(StreamMismatchError, match="memory storage"):
            await ensure_stream(js, _stream_config(tmp_path, nats_server.url))
    finally:
        await nc.close()


async def test_receiver_binds_again_after_its_stream_was_deleted(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    receiver, rreg = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(receiver):
        await async_wait_for(lambda: receiver.ready()[0])
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().delete_stream("PROMETHEUS")
        finally:
            await nc.close()
        await async_wait_for(
            lambda: "binding again" in receiver.status()["last_error"],
            timeout=60,
            message="the receiver never said it binds again",
        )
        await async_wait_for(lambda: receiver.ready()[0], timeout=60)
        await publish_scrape(nats_server.url, b"# TYPE back gauge\nback 1\n")
        await async_wait_for(
            lambda: metric(rreg, "receiver_pushes_total", result="success") >= 1, timeout=60
        )
    assert pushgateway.group_labels(), "nothing reached the Pushgateway after rebinding"
