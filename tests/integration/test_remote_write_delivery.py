"""How the remote-write output answers a store's 5xx, 429 and 4xx, through a real nats-server.

The store here is a fake (tests/stores.py FakeStore): no real store can be
made to answer 503 or 429 on demand. Auth and TLS against the real stores
are in test_remote_write_auth.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import nats
import pytest
from harness import (
    TOPIC,
    group_samples,
    metric,
    new_poller,
    new_receiver,
    poller_config,
    publish_scrape,
    running,
    write_config,
)
from servers import NatsServer, Pushgateway, Target, async_wait_for
from stores import FakeStore, Reply
from test_remote_write import rw_receiver

from prometheus_streams import config
from prometheus_streams.receiver.remote_write import protocol

BODY = b"# TYPE demo gauge\ndemo 1\n"


def written(store: FakeStore) -> list[tuple[dict[str, str], list[tuple[float, int]]]]:
    """Every series of every accepted request, decoded."""
    out = []
    for request in store.accepted:
        out += protocol.decode_write_request(protocol.decompress(request.body))
    return out


async def consumer_settled(nats_url: str, durable: str) -> bool:
    """Whether the consumer has nothing pending and nothing unacked."""
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info("PROMETHEUS", durable)
        return not info.num_pending and not info.num_ack_pending
    except nats.js.errors.NotFoundError:
        return False  # not created yet
    finally:
        await nc.close()


async def unacked(nats_url: str, durable: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info("PROMETHEUS", durable)
        return int(info.num_ack_pending or 0)
    finally:
        await nc.close()


DURABLE = "central-rw-store"


async def test_a_store_that_fails_is_retried_in_place_and_acked_after_2xx(
    tmp_path: Path, nats_server: NatsServer, fake_store: FakeStore
) -> None:
    fake_store.script(Reply(503, b"overloaded\n"), times=3)
    receiver, registry = new_receiver(rw_receiver(tmp_path, nats_server.url, fake_store.write_url))
    await publish_scrape(nats_server.url, BODY)
    async with running(receiver):
        await fake_store.wait_for_requests(2)
        # Held, not nak'ed: the message is still out with this receiver.
        assert await unacked(nats_server.url, DURABLE) == 1
        await async_wait_for(lambda: fake_store.accepted, message="never written")
        await async_wait_for(lambda: consumer_settled(nats_server.url, DURABLE))
    series = written(fake_store)
    names = {labels["__name__"] for labels, _ in series}
    assert {
        "demo",
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
    } <= names or "demo" in names
    demo = [labels for labels, _ in series if labels["__name__"] == "demo"]
    assert demo == [{"__name__": "demo", "job": "node", "instance": "web-1", "publisher": "dc1"}]
    assert [r.status for r in fake_store.requests[:4]] == [503, 503, 503, 204]
    assert metric(registry, "receiver_remote_write_samples_retried_total", output="store") >= 3
    # Every request carries the remote-write headers.
    headers = fake_store.requests[0].headers
    assert headers["Content-Encoding"] == "snappy"
    assert headers["X-Prometheus-Remote-Write-Version"] == "0.1.0"


async def test_retry_after_is_honoured(
    tmp_path: Path, nats_server: NatsServer, fake_store: FakeStore
) -> None:
    fake_store.script(Reply(429, b"slow down\n", {"Retry-After": "2"}))
    receiver, _ = new_receiver(rw_receiver(tmp_path, nats_server.url, fake_store.write_url))
    await publish_scrape(nats_server.url, BODY)
    async with running(receiver):
        requests = await fake_store.wait_for_requests(2)
    assert requests[0].status == 429 and requests[1].status == 204
    # The backoff alone (min_backoff 30 ms) would have asked again at once.
    assert requests[1].received_at - requests[0].received_at >= 1.9


async def test_a_refused_scrape_is_dropped_alone_and_logged_once(
    tmp_path: Path,
    nats_server: NatsServer,
    fake_store: FakeStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Both scrapes are on the stream before the receiver starts: one fetch, one request.
    await publish_scrape(nats_server.url, BODY, instance="web-1")
    await publish_scrape(nats_server.url, BODY, instance="web-2")
    refusal = Reply(400, b"out of order sample\n")
    fake_store.script(refusal)  # the request with both
    fake_store.script(Reply(204))  # web-1 alone
    fake_store.script(refusal)  # web-2 alone
    caplog.set_level(logging.ERROR)
    receiver, registry = new_receiver(rw_receiver(tmp_path, nats_server.url, fake_store.write_url))
    async with running(receiver):
        await fake_store.wait_for_requests(3)
        await async_wait_for(lambda: consumer_settled(nats_server.url, DURABLE))
    instances = {labels["instance"] for labels, _ in written(fake_store)}
    assert instances == {"web-1"}
    dropped = metric(
        registry,
        "receiver_remote_write_samples_dropped_total",
        output="store",
        reason="out_of_order",
    )
    assert dropped >= 1
    assert metric(registry, "receiver_dropped_total", reason="remote_write_out_of_order") == 1
    assert caplog.text.count("refused a request") == 1
    assert "out of order sample" in caplog.text


async def test_bearer_token_from_a_file(tmp_path: Path, nats_server: NatsServer) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    token_file.chmod(0o600)
    async with FakeStore(bearer_token="s3cret-token") as store:  # noqa: S106 - a test token
        auth: dict[str, Any] = {"authorization": {"credentials_file": str(token_file)}}
        receiver, _ = new_receiver(rw_receiver(tmp_path, nats_server.url, store.write_url, **auth))
        await publish_scrape(nats_server.url, BODY)
        async with running(receiver):
            await async_wait_for(lambda: store.accepted, message="the token was not sent")
        assert all(r.status != 401 for r in store.requests)


async def test_a_store_that_is_down_holds_back_neither_the_pushgateway_nor_another_store(
    tmp_path: Path,
    nats_server: NatsServer,
    pushgateway: Pushgateway,
    target: Target,
    fake_store: FakeStore,
) -> None:
    target.body = BODY
    down = Reply(503, b"down for maintenance\n")
    fake_store.default = down
    async with FakeStore() as healthy:
        data = {
            "identity": "central",
            "receiver_stream": {
                "urls": nats_server.url,
                "topic": TOPIC,
                "client_id": "central",
                "fetch_batch": 16,
            },
            "push_gateway": {"url": pushgateway.url, "publisher_label": True, "timeout": "2s"},
            "remote_write": [
                {"url": fake_store.write_url, "name": "down", "remote_timeout": "5s"},
                {"url": healthy.write_url, "name": "up", "remote_timeout": "5s"},
            ],
            "shutdown_grace": "5s",
        }
        receiver, registry = new_receiver(
            config.load(write_config(tmp_path, data, "receiver.yaml"))
        )
        jobs = {"node": {"targets": [{"name": "web-1", "url": target.url}]}}
        poller, preg = new_poller(poller_config(tmp_path, nats_server.url, jobs))
        async with running(receiver), running(poller):
            await async_wait_for(
                lambda: metric(preg, "poller_published_total") >= 10, message="no scrapes"
            )
            # The Pushgateway and the healthy store keep up while the other store is down.
            await async_wait_for(
                lambda: (
                    'demo{publisher="dc1"}'
                    in group_samples(pushgateway.metrics_text(), "node", "web-1")
                ),
                message="the Pushgateway was held back",
            )
            await async_wait_for(
                lambda: (
                    metric(registry, "receiver_remote_write_samples_total", output="up") >= 10 * 5
                ),
                message="the healthy store was held back",
            )
            assert not fake_store.accepted
            assert metric(registry, "receiver_remote_write_samples_total", output="down") == 0
            # Back: the store that was down gets every scrape it missed.
            fake_store.default = Reply(204)
            await async_wait_for(
                lambda: len({t for _, samples in written(fake_store) for _, t in samples}) >= 10,
                message="the store that was down did not catch up",
            )


async def test_bad_input_is_counted_and_never_stops_the_output(
    tmp_path: Path, nats_server: NatsServer, fake_store: FakeStore
) -> None:
    # Published straight on the stream, as a foreign or broken publisher could.
    await publish_scrape(nats_server.url, b"demo{broken 1\n", instance="bad-page")
    await publish_scrape(nats_server.url, b"demo 1\ndemo 2\nother 3\n", instance="duplicate-series")
    await publish_scrape(nats_server.url, BODY, instance="good")
    receiver, registry = new_receiver(rw_receiver(tmp_path, nats_server.url, fake_store.write_url))
    async with running(receiver):
        await async_wait_for(lambda: consumer_settled(nats_server.url, DURABLE))
    by_instance: dict[str, set[str]] = {}
    for labels, _ in written(fake_store):
        by_instance.setdefault(labels["instance"], set()).add(labels["__name__"])
    assert "bad-page" not in by_instance
    assert by_instance["duplicate-series"] == {"demo", "other"}
    assert "demo" in by_instance["good"]

    def dropped(reason: str) -> float:
        return metric(
            registry, "receiver_remote_write_samples_dropped_total", output="store", reason=reason
        )

    assert dropped("bad_page") == 1
    assert dropped("duplicate_series") == 1
    assert metric(registry, "receiver_dropped_total", reason="bad_page") == 1
