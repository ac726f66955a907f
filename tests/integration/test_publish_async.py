"""The transport's publish_async against a real nats-server: acks and errors as nats-py's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import nats
import pytest
from nats.js import api
from nats.js.errors import NoStreamResponseError
from servers import NatsServer

from prometheus_streams.transport.headers import Client
from prometheus_streams.transport.pubacks import JetStream


async def test_publish_async_acks_and_errors_as_nats_py(nats_server: NatsServer) -> None:
    ours = Client()
    await ours.connect(servers=[nats_server.url])
    theirs = await nats.connect(nats_server.url)
    try:
        js, plain = ours.jetstream(), theirs.jetstream()
        assert isinstance(js, JetStream) and not isinstance(plain, JetStream)
        await plain.add_stream(name="ACKS", subjects=["acks.>"])
        sides: list[tuple[str, Callable[..., Awaitable[asyncio.Future[api.PubAck]]]]] = [
            ("ours", js.publish_async),
            ("nats-py", plain.publish_async),
        ]
        seq = 0
        for name, publish in sides:
            seq += 1
            ack = await (await publish(f"acks.{name}", b"x", stream="ACKS"))
            assert ack == api.PubAck(stream="ACKS", seq=seq), name
            headers = {"Nats-Msg-Id": f"once-{name}"}
            for duplicate in (None, True):
                if duplicate is None:
                    seq += 1
                ack = await (await publish(f"acks.{name}", b"x", headers=dict(headers)))
                assert ack == api.PubAck(stream="ACKS", seq=seq, duplicate=duplicate), name
        for _name, publish in sides:
            with pytest.raises(NoStreamResponseError):
                await (await publish("nowhere.x", b"x"))
            # nats-py 2.16 raises the stream's refusal inside its reply callback
            # (APIError.from_error raises), so the ack never comes: ours alike.
            refused = await publish("acks.x", b"x", stream="OTHER")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.shield(refused), 1.0)
            refused.cancel()
        await asyncio.sleep(0)  # the cancelled future's done callback
        assert not ours._pending  # written at the end of each loop turn, no flusher
        assert not js._publish_async_futures and js._publish_async_completed_event.is_set()
    finally:
        await ours.close()
        await theirs.close()
