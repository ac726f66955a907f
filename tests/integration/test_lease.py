"""Leases in a real JetStream key-value bucket: a resigned lease reaches the next holder."""

from __future__ import annotations

import asyncio
import contextlib

import nats
from servers import NatsServer, async_wait_for

from prometheus_streams.transport.lease import Lease

TTL = 2.0


async def test_a_lease_resigned_before_its_lane_starts_a_term_is_handed_over(
    nats_server: NatsServer,
) -> None:
    """Share resigns a lease its lane has not started working under yet (the lane was
    still binding its consumer): the lane, waiting to lead, must give it up, or the
    holder renews it forever and no other receiver can take it."""
    nc = await nats.connect(nats_server.url)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[object]] = []
    try:
        js = nc.jetstream()
        first = Lease(lambda: js, "rw-p0", "first", ttl=TTL)
        second = Lease(lambda: js, "rw-p0", "second", ttl=TTL)
        tasks.append(asyncio.ensure_future(first.run(stop)))
        await async_wait_for(first.leading, timeout=30, message="the first never led")
        first.resign()  # the fair share says so, before the lane's first term
        # The lane, its consumer bound, now waits to lead, as Lane._led does.
        tasks.append(asyncio.ensure_future(first.wait_leading(stop)))
        tasks.append(asyncio.ensure_future(second.run(stop)))
        await async_wait_for(
            second.leading,
            timeout=10 * TTL,
            message="the resigned lease never reached the other holder",
        )
        assert await second.current_holder() == "second"
        assert not first.leading()
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await nc.close()
