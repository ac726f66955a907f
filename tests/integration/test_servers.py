"""The test servers themselves work (real processes, real clients)."""

from __future__ import annotations

import asyncio
import gzip
import urllib.request

import aiohttp
import nats
from servers import NatsServer, Pushgateway, Target, wait_for


async def test_nats_jetstream_roundtrip_survives_restart(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url, allow_reconnect=False)
    try:
        js = nc.jetstream()
        await js.add_stream(name="CHECK", subjects=["check.>"])
        ack = await js.publish("check.one", b"hello")
        msg = await js.get_msg("CHECK", ack.seq)
        assert msg.data == b"hello"
    finally:
        await nc.close()

    await asyncio.to_thread(nats_server.restart)

    nc = await nats.connect(nats_server.url, allow_reconnect=False)
    try:
        js = nc.jetstream()
        info = await js.stream_info("CHECK")
        assert info.state.messages == 1
        msg = await js.get_msg("CHECK", ack.seq)
        assert msg.subject == "check.one"
        assert msg.data == b"hello"
    finally:
        await nc.close()


def test_pushgateway_accepts_push(pushgateway: Pushgateway) -> None:
    request = urllib.request.Request(  # noqa: S310 - loopback test server
        f"{pushgateway.url}/metrics/job/x", data=b"foo 1\n", method="PUT"
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        assert response.status == 200

    groups = wait_for(pushgateway.groups, message="pushed group never appeared")
    assert [g["labels"] for g in groups] == [{"job": "x"}]
    assert "foo" in groups[0]
    assert 'foo{instance="",job="x"} 1' in pushgateway.metrics_text()

    pushgateway.restart()  # persistence file keeps the group
    assert pushgateway.group_labels() == [{"job": "x"}]

    pushgateway.wipe()
    wait_for(lambda: pushgateway.groups() == [], message="wipe left groups")


async def test_target_serves_body_and_records_headers(target: Target) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(target.url, headers={"X-Probe": "yes"}) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == ("text/plain; version=0.0.4; charset=utf-8")
            assert await response.read() == target.body

        target.content_encoding = "gzip"
        target.status = 503
        async with session.get(target.url, auto_decompress=False) as response:
            assert response.status == 503
            assert response.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(await response.read()) == target.body

    assert target.requests == 2
    assert target.headers_seen[0]["X-Probe"] == "yes"
