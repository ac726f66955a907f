"""How the remote-write output packs scrapes into requests, through a real nats-server.

The store is the scripted fake (tests/stores.py FakeStore), which keeps every
request, so the test can see how the samples were split.
"""

from __future__ import annotations

from pathlib import Path

from harness import new_receiver, publish_scrape, running
from servers import NatsServer, async_wait_for
from stores import FakeStore
from test_remote_write import rw_receiver
from test_remote_write_delivery import DURABLE, consumer_settled

from prometheus_streams.receiver.remote_write import protocol

BODY = b"# TYPE demo gauge\ndemo 1\ndemo_other 2\ndemo_third 3\n"


async def test_a_scrape_that_would_overfill_a_request_goes_whole_into_the_next(
    tmp_path: Path, nats_server: NatsServer, fake_store: FakeStore
) -> None:
    # Three samples a scrape: a request of at most 5 holds one whole scrape;
    # filling past the limit, the next scrape was split between two requests.
    instances = [f"web-{i}" for i in range(6)]
    for instance in instances:
        await publish_scrape(nats_server.url, BODY, instance=instance)
    receiver, _ = new_receiver(
        rw_receiver(
            tmp_path,
            nats_server.url,
            fake_store.write_url,
            queue_config={"batch_send_deadline": "1s", "max_samples_per_send": 5},
        )
    )
    async with running(receiver):
        await async_wait_for(lambda: len(fake_store.accepted) >= 6, timeout=30)
        await async_wait_for(lambda: consumer_settled(nats_server.url, DURABLE), timeout=30)
    seen: list[str] = []
    for request in fake_store.accepted:
        series = protocol.decode_write_request(protocol.decompress(request.body))
        assert len(series) <= 5
        in_request = {labels["instance"] for labels, _ in series}
        assert not set(seen) & in_request, f"a scrape split between requests: {in_request}"
        seen += sorted(in_request)
    assert sorted(seen) == instances
