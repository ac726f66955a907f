"""Pull batches from a durable JetStream consumer through one long-lived inbox.

nats-py's `PullSubscription.fetch` waits for every message with a task of its
own (named by a fresh uuid4, one getrandom call each) and a timer, a cost
per message that shows in a drain (docs/performance.md has the figures).
Here the messages land in a list from the subscription's callback and a fetch
waits once per batch.

Protocol (the JetStream pull API): a request on
`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` with `{"batch": n}` and a
reply subject; the server delivers up to n messages to that subject, each
under its own stream subject, and ends a request it cannot fill with a status
message (no payload, a `Status` header) addressed to the reply subject itself.
Every request gets its own reply subject under one wildcard subscription, so a
late status of an old request is never taken for the current one, and a
stream message can never pass for a status, whatever headers it carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NATSError
from nats.js import api as js_api
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError

log = logging.getLogger(__name__)

API_PREFIX = "$JS.API"
END_OF_REQUEST = frozenset({"404", "408"})  # no messages; the request expired
# 409s that pass by themselves; others (consumer deleted, a request beyond the
# consumer's limits) are errors, so the receiver counts them and binds again.
PASSING_CONFLICTS = ("Leadership Change", "Exceeded MaxWaiting")
HEARTBEAT = "100"
V1_ACK_TOKENS = 9  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>


def num_pending(msg: Msg) -> int:
    """`msg.metadata.num_pending`, without the rest of the metadata.

    nats-py's `metadata` makes a datetime and two dataclasses from the reply
    subject; only this number is read per fetch (docs/performance.md). Raises
    nats-py's NotJSMessageError for a reply that is not a JetStream ack, and
    ValueError for a num_pending that is not a number (the other fields are
    not looked at).
    """
    tokens = Msg.Metadata._get_metadata_fields(msg.reply)
    return int(tokens[8] if len(tokens) == V1_ACK_TOKENS else tokens[Msg.Ack.NumPending])


def status_is_error(status: Msg) -> bool:
    """Whether a status that ended a pull request without messages is an error."""
    headers = status.headers or {}
    code = headers.get(js_api.Header.STATUS, "")
    if code in END_OF_REQUEST:
        return False
    if code == "409":
        description = headers.get(js_api.Header.DESCRIPTION, "")
        return not any(text in description for text in PASSING_CONFLICTS)
    return True


class Puller:
    """Fetches from one durable pull consumer; one fetch at a time."""

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        stream: str,
        durable: str,
        api_prefix: str = API_PREFIX,
    ) -> None:
        self._nc = nc
        self._js = js
        self.stream = stream
        self.durable = durable
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._inbox_prefix = self._inbox + "."
        self._sub: Subscription | None = None
        self._buffer: list[Msg] = []  # delivered, not yet handed out
        self._request = 0
        self._reply = ""  # reply subject of the request being waited for
        self._want = 0  # wake the fetch once the buffer holds this many
        self._status: Msg | None = None  # the status that ended the current request
        self._waiter: asyncio.Future[None] | None = None
        self._trickle = False  # the last message came to a waiting request, none behind it

    async def bind(self, subject: str, config: js_api.ConsumerConfig) -> None:
        """Create the consumer, or bring its ack_wait in line with `config`; subscribe once.

        Another setting that differs (made by hand, say) is left as it is: an
        update the server refuses is logged, and the consumer used as found.
        """
        config.name = config.durable_name = self.durable
        if not config.filter_subjects:
            config.filter_subject = subject
        try:
            info = await self._js.consumer_info(self.stream, self.durable)
        except NotFoundError:
            await self._js.add_consumer(self.stream, config=config)
            log.info("created consumer %s on stream %s", self.durable, self.stream)
        else:
            have = info.config.ack_wait
            if config.ack_wait is not None and abs((have or 0) - config.ack_wait) > 0.001:
                log.warning(
                    "consumer %s on stream %s has ack_wait %gs, the config says %gs: updating it",
                    self.durable,
                    self.stream,
                    have or 0,
                    config.ack_wait,
                )
                try:
                    await self._js.add_consumer(self.stream, config=config)
                except APIError as exc:
                    log.error("cannot update consumer %s, used as it is: %s", self.durable, exc)
        if self._sub is None:
            self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_msg)

    async def consumer_info(self, within: float | None = None) -> js_api.ConsumerInfo:
        """The consumer's state as the server has it; `within` bounds the wait (default: 5 s)."""
        info: js_api.ConsumerInfo = await self._js.consumer_info(
            self.stream, self.durable, timeout=within
        )
        return info

    async def fetch(
        self, batch: int, max_wait: float, linger: float = 0.0, until: asyncio.Event | None = None
    ) -> list[Msg]:
        """Up to `batch` messages; [] when none came within `max_wait` seconds.

        Like nats-py's fetch: first ask for what is there now (`no_wait`);
        only when that was nothing, wait up to `max_wait` for one message. That
        request asks for one only, so it ends on the server when it is
        answered and delivers nothing after the fetch returned. After a wait
        that brought a message with nothing behind it, the next fetch waits at once.
        The wait is a parameter, not a timeout around the call, because the
        server is told it too (`expires`). With a `linger`, a fetch caught up
        with the stream (the last message had nothing behind it) first waits
        that long, then asks for what gathered meanwhile: a trickle comes in
        one request per linger instead of one per message, and no request is
        left open on the server. `until` set during the linger (a stop, the
        end of a lease term) ends the fetch with nothing asked: what it would
        take would only be handed back.
        Raises APIError when the server answers with another status (the
        consumer is gone, for example).
        """
        if self._buffer:
            return self._take(batch)  # delivered after an earlier fetch returned
        deadline = time.monotonic() + max_wait
        trickle, self._trickle = self._trickle, False
        if trickle and linger > 0:
            until = until or asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), min(linger, max_wait))
            if until.is_set():
                self._trickle = True  # still caught up, as far as we know
                return []
            trickle = False
        if not trickle and await self._ask({"batch": batch, "no_wait": True}, batch, deadline):
            # Caught up: with a linger, the next fetch lets the next ones gather.
            # A full batch is not caught up even with nothing behind its last
            # message: num_pending leaves out redeliveries that wait.
            self._trickle = (
                linger > 0 and len(self._buffer) < batch and num_pending(self._buffer[-1]) == 0
            )
            return self._take(batch)
        left = deadline - time.monotonic()
        if left > 0.01 and not self._passing_conflict():
            # The server ends the request a little before we give up on it.
            expires = int((left - 0.005) * 1e9)
            if await self._ask({"batch": 1, "expires": expires}, 1, deadline):
                # Nothing behind the message that came: the next fetch waits at
                # once, without asking what is there (a steady trickle was two
                # requests a message); if more came meanwhile, it gets one of
                # them, sees the rest behind it, and the fetch after asks again.
                self._trickle = num_pending(self._buffer[-1]) == 0
        if not self._buffer and self._passing_conflict():
            # Asking again at once would only add to the conflict: wait it out.
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        return self._take(batch)

    async def close(self) -> list[Msg]:
        """End the inbox subscription; return what it delivered and nobody took, to give back."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            if self._nc.is_connected:  # else the server has forgotten the inbox already
                with contextlib.suppress(NATSError, TimeoutError):
                    # Unsubscribes, then lets the messages already received reach the buffer.
                    await asyncio.wait_for(sub.drain(), 2.0)  # type: ignore[no-untyped-call]
        return self.take_all()

    def take_all(self) -> list[Msg]:
        """Everything delivered and not handed out (to give back when pausing or stopping)."""
        msgs, self._buffer = self._buffer, []
        return msgs

    async def _ask(self, request: dict[str, object], want: int, deadline: float) -> bool:
        """Send one pull request; wait for `want` messages, its end, or the deadline.

        True when messages arrived. A status that ended it without messages
        raises APIError when status_is_error says so.
        """
        self._request += 1
        self._reply = f"{self._inbox}.{self._request}"
        self._want = want
        self._status = None
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        await self._nc.publish(self._next_subject, json.dumps(request).encode(), self._reply)
        try:
            async with asyncio.timeout_at(loop.time() + max(0.0, deadline - time.monotonic())):
                await waiter
        except TimeoutError:
            pass
        finally:
            self._waiter = None
            self._reply = ""
        status = self._status
        if status is not None and not self._buffer and status_is_error(status):
            raise APIError.from_msg(status)
        return bool(self._buffer)

    def _passing_conflict(self) -> bool:
        """Whether the last request ended with a 409 that passes (others raised)."""
        status = self._status
        code = (status.headers or {}).get(js_api.Header.STATUS) if status is not None else None
        return code == "409"

    def _take(self, batch: int) -> list[Msg]:
        msgs, self._buffer = self._buffer[:batch], self._buffer[batch:]
        return msgs

    async def _on_msg(self, msg: Msg) -> None:
        if not msg.subject.startswith(self._inbox_prefix):
            self._buffer.append(msg)  # a stream message: it carries its own subject
            if len(self._buffer) >= self._want:
                self._wake()
            return
        code = (msg.headers or {}).get(js_api.Header.STATUS)
        if code == HEARTBEAT or msg.subject != self._reply:
            return  # a heartbeat, or the end of a request nobody waits for any more
        self._status = msg
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
