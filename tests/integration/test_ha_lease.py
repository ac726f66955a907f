"""The lease under the HA pollers, against a real nats-server: fencing by the bucket, new terms."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import nats
import pytest_asyncio
from nats.aio.client import Client
from servers import NatsServer, async_wait_for

from prometheus_streams.transport.lease import Lease

BUCKET = "prometheus-streams-ha-test"


@pytest_asyncio.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    """A client of the test's nats-server."""
    client = await nats.connect(nats_server.url)
    try:
        yield client
    finally:
        await client.close()


def _lease(nc: Client, holder: str, ttl: float, take_delay: float = 0.0) -> Lease:
    js = nc.jetstream()
    return Lease(lambda: js, "publisher.dc1", holder, ttl=ttl, bucket=BUCKET, take_delay=take_delay)


async def test_a_holder_fences_by_the_buckets_ttl_when_another_created_it_shorter(
    nc: Client,
) -> None:
    # b created the bucket with a 2s TTL; a asks for 10s. The server expires
    # a's write after 2s: a must not lead past that, or two would lead.
    b = _lease(nc, "b", ttl=2.0)
    await b._bucket()
    a = _lease(nc, "a", ttl=10.0)
    await a._step()
    assert a.leading()
    await async_wait_for(_takes(b), timeout=30, message="b never took the expired lease")
    assert not a.leading(), "a and b lead at once"
    assert a.ttl == 2.0


def _takes(lease: Lease) -> Callable[[], Awaitable[bool]]:
    async def step() -> bool:
        await lease._step()
        return lease.leading()

    return step


async def test_a_lapsed_fence_is_renewed_as_a_new_term_while_nobody_wrote(nc: Client) -> None:
    a = _lease(nc, "a", ttl=3.0)
    await a._step()
    assert a.fence() == 1
    # No renewal for longer than the fence (2s) but less than the TTL (3s):
    # a paused event loop. Nobody else wrote, so a leads on, in a new term.
    await async_wait_for(lambda: not a.leading(), timeout=10)
    await a._step()
    assert a.fence() == 2, "a had to wait for its own lease to expire"
    assert a.changes == 0
    assert a.holder_seen == "a"


async def test_a_less_preferred_replica_lets_a_free_lease_lie(nc: Client) -> None:
    late = _lease(nc, "late", ttl=2.0, take_delay=1.0)
    soon = _lease(nc, "soon", ttl=2.0)
    await late._step()
    assert not late.leading(), "the less preferred replica took the free lease at once"
    await soon._step()
    assert soon.leading()
    await asyncio.sleep(1.2)
    await late._step()
    assert not late.leading()
    assert late.holder_seen == "soon"


async def test_every_term_has_a_higher_token_whoever_takes_it(nc: Client) -> None:
    a = _lease(nc, "a", ttl=3.0)
    b = _lease(nc, "b", ttl=3.0)
    await a._step()
    first = a.token()
    assert first > 0
    await a._step()  # a renewal: the same term, the same token
    assert a.token() == first and a._revision > first
    # A lapsed fence renewed as a new term (nobody wrote meanwhile): a higher token.
    await async_wait_for(lambda: not a.leading(), timeout=10)
    assert a.token() == 0
    await a._step()
    second = a.token()
    assert second > first
    # Handed over: the other replica's term is newer still.
    await a.release()
    await async_wait_for(_takes(b), timeout=30, message="b never took the released lease")
    assert b.token() > second
    # The old holder takes it back once b released it: higher again.
    third = b.token()
    await b.release()
    await async_wait_for(_takes(a), timeout=30, message="a never took it back")
    assert a.token() > third
