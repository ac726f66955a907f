"""The receiver's own pull loop against a real nats-server: batches, waits, statuses."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import nats
import pytest
from harness import (
    TOPIC,
    metric,
    new_receiver,
    publish_raw,
    receiver_config,
    running,
)
from nats.aio.msg import Msg
from nats.errors import Error as NATSError
from nats.js import api as js_api
from servers import NatsServer, Pushgateway, async_wait_for

from prometheus_streams import wire
from prometheus_streams.transport.puller import Puller, status_is_error

CONSUMER = js_api.ConsumerConfig(ack_policy=js_api.AckPolicy.EXPLICIT, ack_wait=30)


@asynccontextmanager
async def puller(url: str) -> AsyncIterator[Puller]:
    """A Puller bound to durable `test` on the PROMETHEUS stream (made if missing)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        await js.stream_info("PROMETHEUS")
    except nats.js.errors.NotFoundError:
        await js.add_stream(name="PROMETHEUS", subjects=[f"{TOPIC}.>"])
    sub = Puller(nc, js, "PROMETHEUS", "test")
    await sub.bind(f"{TOPIC}.>", CONSUMER)
    try:
        yield sub
    finally:
        await nc.close()


async def _publish(url: str, count: int, headers: dict[str, str] | None = None) -> None:
    for i in range(count):
        await publish_raw(url, f"{TOPIC}.dc1.node.t{i}", f"m{i}".encode(), headers)


async def test_fetch_hands_out_what_is_stored_in_batches_then_nothing(
    nats_server: NatsServer,
) -> None:
    await _publish(nats_server.url, 5)
    async with puller(nats_server.url) as sub:
        first = await sub.fetch(3, 5.0)
        second = await sub.fetch(3, 5.0)
        assert [m.data for m in first] == [b"m0", b"m1", b"m2"]
        assert [m.data for m in second] == [b"m3", b"m4"]
        assert [m.subject for m in second] == [f"{TOPIC}.dc1.node.t3", f"{TOPIC}.dc1.node.t4"]
        for msg in first + second:
            await msg.ack()
        assert await sub.fetch(3, 0.3) == []

        async def settled() -> bool:  # nats-server takes acks on its own time
            info = await sub.consumer_info()
            return info.num_pending == 0 and info.num_ack_pending == 0

        await async_wait_for(settled, message="acks still pending")


async def test_a_waiting_fetch_returns_with_the_first_message(nats_server: NatsServer) -> None:
    async with puller(nats_server.url) as sub:
        waiting = asyncio.ensure_future(sub.fetch(10, 60.0))
        await asyncio.sleep(0)  # let it ask first
        await _publish(nats_server.url, 1)
        # Bounded well below the fetch's own wait: a fetch that waited for the
        # whole batch, or for its deadline, fails here.
        msgs = await asyncio.wait_for(waiting, 30.0)
        assert [m.data for m in msgs] == [b"m0"]


async def test_a_stream_message_with_a_status_header_is_still_a_message(
    nats_server: NatsServer,
) -> None:
    # nats-py's fetch takes any message with a Status header for the server's
    # own status and drops it unacked; a publisher must not be able to do that.
    await _publish(nats_server.url, 1, {"Status": "404", "Description": "No Messages"})
    async with puller(nats_server.url) as sub:
        msgs = await sub.fetch(5, 5.0)
        assert [m.data for m in msgs] == [b"m0"]


async def test_fetch_from_a_deleted_consumer_is_an_error(nats_server: NatsServer) -> None:
    async with puller(nats_server.url) as sub:
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().delete_consumer("PROMETHEUS", "test")
        finally:
            await nc.close()
        with pytest.raises(NATSError):
            await sub.fetch(5, 5.0)


async def test_a_fetch_that_found_nothing_leaves_nothing_behind(
    nats_server: NatsServer,
) -> None:
    async with puller(nats_server.url) as sub:
        # Its waiting request asked for one message and ended with the wait:
        # what is published afterwards all comes with the next fetch.
        assert await sub.fetch(4, 0.3) == []
        await _publish(nats_server.url, 2)
        msgs = await sub.fetch(4, 5.0)
        assert sorted(m.data for m in msgs) == [b"m0", b"m1"]
        assert sub.take_all() == []


async def test_binding_brings_an_existing_consumers_ack_wait_in_line(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with puller(nats_server.url) as sub:
        assert (await sub.consumer_info()).config.ack_wait == 30
        longer = js_api.ConsumerConfig(ack_policy=js_api.AckPolicy.EXPLICIT, ack_wait=45)
        with caplog.at_level(logging.WARNING):
            await sub.bind(f"{TOPIC}.>", longer)
        assert (await sub.consumer_info()).config.ack_wait == 45
        assert "has ack_wait 30s, the config says 45s: updating it" in caplog.text


async def test_receiver_pushes_a_scrape_that_carries_a_status_header(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    scrape = wire.Scrape("dc1", "node", "web-1", int(time.time() * 1000), b"s 1\n")
    subject, payload, headers = wire.encode(TOPIC, scrape)
    headers["Status"] = "404"
    receiver, rreg = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    async with running(receiver):
        await async_wait_for(lambda: receiver.ready()[0])
        await publish_raw(nats_server.url, subject, payload, headers)
        await async_wait_for(lambda: metric(rreg, "receiver_pushes_total", result="success") == 1)
    assert pushgateway.group_labels()


@pytest.mark.parametrize(
    ("code", "description", "error"),
    [
        ("404", "No Messages", False),
        ("408", "Request Timeout", False),
        ("409", "Leadership Change", False),
        ("409", "Exceeded MaxWaiting", False),
        ("409", "Consumer Deleted", True),
        ("409", "Exceeded MaxRequestBatch of 10", True),
        ("503", "", True),
    ],
)
def test_which_statuses_are_errors(code: str, description: str, error: bool) -> None:
    # Errors count towards binding again; the others end a request quietly.
    headers = {"Status": code, "Description": description}
    msg = Msg(_client=None, subject="_INBOX.x.1", headers=headers)  # type: ignore[arg-type]
    assert status_is_error(msg) is error


async def test_a_trickle_is_one_request_a_message_and_a_backlog_still_comes_in_a_batch(
    nats_server: NatsServer,
) -> None:
    async with puller(nats_server.url) as sub:
        asked = []
        for i in range(4):
            before = sub._request
            waiting = asyncio.ensure_future(sub.fetch(10, 60.0))
            # Published once the fetch waits for one message (not while it asks what is there).
            await async_wait_for(lambda: sub._waiter is not None and sub._want == 1)
            await publish_raw(nats_server.url, f"{TOPIC}.dc1.node.t{i}", f"m{i}".encode())
            msgs = await asyncio.wait_for(waiting, 30.0)
            assert [m.data for m in msgs] == [f"m{i}".encode()]
            await msgs[0].ack()
            asked.append(sub._request - before)
        # The first fetch asks what is there, then waits; the next ones only wait.
        assert asked == [2, 1, 1, 1]
        await _publish(nats_server.url, 3)
        # The waiting request brings one, with two behind it: those come in one batch.
        first = await sub.fetch(10, 5.0)
        rest = await sub.fetch(10, 5.0)
        assert [m.data for m in first] == [b"m0"]
        assert [m.data for m in rest] == [b"m1", b"m2"]


async def test_a_lingering_fetch_takes_a_trickle_in_one_request_and_leaves_none_open(
    nats_server: NatsServer,
) -> None:
    async with puller(nats_server.url) as sub:
        # Caught up: the first message came to a waiting request, nothing behind it.
        waiting = asyncio.ensure_future(sub.fetch(10, 60.0, linger=30.0))
        await async_wait_for(lambda: sub._waiter is not None and sub._want == 1)
        await publish_raw(nats_server.url, f"{TOPIC}.dc1.node.t0", b"m0")
        assert [m.data for m in await asyncio.wait_for(waiting, 30.0)] == [b"m0"]
        # The next fetch lingers before asking: a trickle published meanwhile
        # comes in one batch, from one request (without the linger, one: m1).
        # Published over a connection opened beforehand, so that three
        # publishes fit in the linger on a loaded machine too.
        nc = await nats.connect(nats_server.url)
        try:
            js = nc.jetstream()
            before = sub._request
            lingering = asyncio.ensure_future(sub.fetch(10, 60.0, linger=5.0))
            for i in range(1, 4):
                await js.publish(f"{TOPIC}.dc1.node.t{i}", f"m{i}".encode(), stream="PROMETHEUS")
            assert not lingering.done(), "the linger was over before the trickle was published"
            msgs = await asyncio.wait_for(lingering, 30.0)
        finally:
            await nc.close()
        assert [m.data for m in msgs] == [b"m1", b"m2", b"m3"]
        assert sub._request - before == 1
        # That request asked for what was there: none is left waiting on the server.
        info = await sub.consumer_info()
        assert info.num_waiting == 0
        assert sub.take_all() == []


async def test_a_full_batch_of_redeliveries_is_followed_by_a_fetch_that_does_not_linger(
    nats_server: NatsServer,
) -> None:
    """num_pending counts only what was never delivered: a batch of redeliveries
    ends with 0 although more redeliveries wait. A full batch means more may wait."""
    await _publish(nats_server.url, 6)
    async with puller(nats_server.url) as sub:
        given = await sub.fetch(6, 5.0)
        assert len(given) == 6
        for msg in given:
            await msg.nak()  # given back, as a lane that pauses does
        await sub._nc.flush()
        first = await sub.fetch(3, 30.0, linger=60.0)
        assert [m.data for m in first] == [b"m0", b"m1", b"m2"]
        assert all(m.metadata.num_delivered == 2 for m in first)
        assert not sub._trickle, "caught up after a full batch, with three more waiting"
        rest = await asyncio.wait_for(sub.fetch(3, 30.0, linger=60.0), 20.0)
        assert [m.data for m in rest] == [b"m3", b"m4", b"m5"]


async def test_a_lingering_fetch_ends_without_asking_when_told_to_stop(
    nats_server: NatsServer,
) -> None:
    """A stop (or the end of a lease term) during the linger: nothing is fetched
    that would only be handed back; the message stays in the stream for the next."""
    async with puller(nats_server.url) as sub:
        waiting = asyncio.ensure_future(sub.fetch(10, 60.0, linger=30.0))
        await async_wait_for(lambda: sub._waiter is not None and sub._want == 1)
        await publish_raw(nats_server.url, f"{TOPIC}.dc1.node.t0", b"m0")
        [m0] = await asyncio.wait_for(waiting, 30.0)
        await m0.ack()
        await publish_raw(nats_server.url, f"{TOPIC}.dc1.node.t1", b"m1")
        before = sub._request
        stop = asyncio.Event()
        lingering = asyncio.ensure_future(sub.fetch(10, 60.0, linger=60.0, until=stop))
        stop.set()
        assert await asyncio.wait_for(lingering, 20.0) == []
        assert sub._request == before

        async def left_in_the_stream() -> bool:  # nats-server takes acks on its own time
            info = await sub.consumer_info()
            return info.num_pending == 1 and info.num_ack_pending == 0

        await async_wait_for(left_in_the_stream, message="m1 was fetched after the stop")
        # The next fetch, with no stop, lingers and takes it.
        assert [m.data for m in await sub.fetch(10, 60.0, linger=0.1)] == [b"m1"]
