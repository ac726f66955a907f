"""nats-py's JetStream context with a cheaper `publish_async` and reading of its acks.

The poller publishes every scrape with `publish_async` and waits for its ack.
Per publish nats-py 2.16 makes its reply token from a NUID and `token_hex`
(a getrandom call) and reads each ack with `json.loads` and
`PubAck.from_response` (a walk over the dataclass's fields): together 11 %
of the poller's samples in user space (py-spy; docs/performance.md, "Issue 16,
third pass"). Here the token is a counter under the context's own reply prefix
(itself a fresh NUID) and an ack of the usual form is read by one regular
expression into the same PubAck; anything else (an error, another field, a
stream name JSON would escape) goes through nats-py's own code.
tests/unit/test_pubacks.py holds it to nats-py's.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext

# {"stream":"<name>",["domain":"<name>",]"seq":<n>[,"duplicate":true]}, as nats-server writes it.
_PLAIN_ACK = re.compile(
    rb'\{"stream":"([A-Za-z0-9_-]+)",(?:"domain":"([A-Za-z0-9_-]*)",)?"seq":(\d+)'
    rb'(,"duplicate":true)?\}'
)


def read_ack(data: bytes) -> api.PubAck | None:
    """The PubAck of an ack of the usual form; None for anything else."""
    found = _PLAIN_ACK.fullmatch(data)
    if found is None:
        return None
    stream, domain, seq, duplicate = found.groups()
    return api.PubAck(
        stream=stream.decode(),
        seq=int(seq),
        domain=None if domain is None else domain.decode(),
        duplicate=True if duplicate else None,
    )


class JetStream(JetStreamContext):
    """nats-py's JetStream context; publish_async and its acks cost less."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sent = 0
        self._reply_prefix = ""  # _async_reply_prefix as a str, once made

    async def publish_async(
        self,
        subject: str,
        payload: bytes = b"",
        wait_stall: float | None = None,
        stream: str | None = None,
        headers: dict[str, Any] | None = None,
        msg_ttl: float | None = None,
    ) -> asyncio.Future[api.PubAck]:
        """As nats-py's, with a counter for the reply token; wait_stall or msg_ttl: nats-py's."""
        if wait_stall is not None or msg_ttl is not None:
            return await super().publish_async(
                subject, payload, wait_stall, stream, headers, msg_ttl
            )
        if not self._reply_prefix:
            if not self._async_reply_prefix:
                await self._init_async_reply()
            assert self._async_reply_prefix
            self._reply_prefix = self._async_reply_prefix.decode()
        if stream is not None:
            headers = headers or {}
            headers[api.Header.EXPECTED_STREAM] = stream
        # nats-py waits here through wait_for with no timeout: a plain await.
        await self._publish_async_pending_semaphore.acquire()
        self._sent += 1
        token = f"{self._sent:x}"
        future: asyncio.Future[api.PubAck] = asyncio.get_running_loop().create_future()
        futures = self._publish_async_futures

        def done(_: asyncio.Future[api.PubAck]) -> None:
            futures.pop(token, None)
            if not futures:
                self._publish_async_completed_event.set()
            self._publish_async_pending_semaphore.release()

        future.add_done_callback(done)
        futures[token] = future
        if self._publish_async_completed_event.is_set():
            self._publish_async_completed_event.clear()
        await self._nc.publish(subject, payload, reply=self._reply_prefix + token, headers=headers)
        return future

    async def _handle_async_reply(self, msg: Msg) -> None:
        # The reply prefix is nats-py's (its inbox, a NUID, a dot), so nats-py
        # finds the token where it looks for its own.
        ack = None if msg.headers or not self._reply_prefix else read_ack(msg.data)
        if ack is None:
            await super()._handle_async_reply(msg)
            return
        future = self._publish_async_futures.get(msg.subject[len(self._reply_prefix) :])
        if future is not None and not future.done():
            future.set_result(ack)
