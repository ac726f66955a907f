"""The receiver's consumer: batches fetched from the durable pull consumer, as they come."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from nats.aio.msg import Msg
from nats.errors import Error as NATSError
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from prometheus_streams.config import StreamConfig
from prometheus_streams.receiver.acks import Acks
from prometheus_streams.receiver.metrics import Publishers, ReceiverMetrics
from prometheus_streams.receiver.output import Output
from prometheus_streams.service import first_of
from prometheus_streams.transport import Connection, Puller, bind_stream, num_pending
from prometheus_streams.transport.retry import Outage, leaderless

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 1.0
# While the consumer has no leader (an election in a cluster): fetch this often,
# and ask whether the consumer still exists at most this often, this briefly.
PROBE_INTERVAL = 0.25
LOOKUP_EVERY = 2.0
PROBE_TIMEOUT = 1.0


class Consumer:
    """Fetches batches unless paused or held back by the output; gives back what it cannot use."""

    def __init__(
        self,
        conn: Connection,
        stream: StreamConfig,
        acks: Acks,
        metrics: ReceiverMetrics,
        publishers: Publishers,
        note_error: Callable[[str], None],
        on_pending: Callable[[int], None] | None = None,
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.acks = acks
        self.metrics = metrics
        self.publishers = publishers
        self.note_error = note_error
        self.on_pending = on_pending or metrics.pending.set
        self.sub: Puller | None = None
        self.stream_ready = False
        self.per_subject = -1  # the stream's max_msgs_per_subject, once bound
        self.pending = -1
        self._outage = Outage(log, f"consumer {stream.durable} on stream {stream.stream}")
        self._looked_up = 0.0

    async def bind(self) -> Puller:
        """Check the stream and bind (or create) the durable consumer; retried until done."""
        assert self.conn.nc is not None
        stream = self.stream
        sub = self.sub or Puller(
            self.conn.nc, self.conn.js, stream.stream, stream.durable, stream.api_prefix
        )

        async def bind(info: js_api.StreamInfo) -> None:
            self.per_subject = info.config.max_msgs_per_subject or -1
            await sub.bind(
                stream.subjects,
                js_api.ConsumerConfig(
                    ack_policy=js_api.AckPolicy.EXPLICIT,
                    ack_wait=stream.ack_wait,
                    max_deliver=-1,
                    deliver_policy=js_api.DeliverPolicy.ALL,
                ),
            )

        await bind_stream(self.conn, stream, f"bind consumer {stream.durable}", bind)
        self.stream_ready = True
        self.sub = sub
        return sub

    async def batches(
        self,
        stop: asyncio.Event,
        output: Output,
        paused: Callable[[], bool],
        resumed: Callable[[], Coroutine[Any, Any, Any]],
    ) -> AsyncIterator[list[Msg]]:
        """Fetched batches until `stop`; none while `paused` or while the output holds back."""
        assert self.sub is not None, "bind() first"
        errors = 0
        while not stop.is_set():
            if paused():
                await self._idle(stop, resumed())
                continue
            delay = output.hold_back()
            if delay > 0:
                # The breaker is open: fetch nothing, so messages wait in the stream.
                await self._idle(stop, asyncio.sleep(delay))
                continue
            try:
                msgs = await self.sub.fetch(
                    output.fetch_size(self.stream.fetch_batch),
                    FETCH_TIMEOUT,
                    output.fetch_linger(),
                    stop,
                )
            except NATSError as exc:
                if leaderless(exc):
                    await self._leaderless(exc)
                else:
                    errors = await self._fetch_failed(errors + 1, exc)
                continue
            errors = 0
            self._outage.answered()
            if not msgs:
                continue
            if paused():
                # Paused while this fetch was waiting: hand the messages straight back.
                await self.acks.give_back(msgs)
                continue
            yield msgs

    async def _leaderless(self, exc: NATSError) -> None:
        """Wait a moment while the consumer elects a leader; bind again if it is gone.

        The next fetch is the probe: it gets its answer the moment the
        consumer has a leader. Binding again meanwhile would only send
        lookups that wait out their timeouts for the same election.
        """
        self._outage.failed(
            str(exc) or type(exc).__name__,
            f"no leader (an election?): fetching again every {PROBE_INTERVAL}s",
        )
        now = time.monotonic()
        if now - self._looked_up >= LOOKUP_EVERY:
            self._looked_up = now
            assert self.sub is not None
            try:
                await self.sub.consumer_info(within=PROBE_TIMEOUT)
            except NotFoundError:
                # Not an election: the consumer (or its stream) was deleted.
                self.stream_ready = False
                self.note_error(f"consumer {self.stream.durable} is gone: binding again")
                await self.bind()
                return
            except (NATSError, TimeoutError):
                pass  # still electing
        await asyncio.sleep(PROBE_INTERVAL)

    async def _fetch_failed(self, errors: int, exc: NATSError) -> int:
        """Log a failed fetch; bind again after five in a row while connected. The new count."""
        durable = self.stream.durable
        log.warning("fetch from consumer %s failed: %s", durable, exc or type(exc).__name__)
        if errors >= 5 and self.conn.connected.is_set():
            # Connected yet failing: the stream or the consumer was deleted
            # or changed under us. Check and bind again.
            self.stream_ready = False
            self.note_error(f"consumer {durable} failed {errors} times: binding again")
            await self.bind()
            return 0
        await asyncio.sleep(0.5)
        return errors

    async def close(self) -> None:
        """Stop fetching; what the stream still delivers goes back to it."""
        sub, self.sub = self.sub, None
        if sub is not None:
            await self.acks.give_back(await sub.close())

    async def _idle(self, stop: asyncio.Event, until: Coroutine[Any, Any, Any]) -> None:
        """Fetch nothing until `until` or `stop`; what the stream delivered goes back.

        Before and after: what came meanwhile may be older than ack_wait by
        now, and another receiver may have it too.
        """
        assert self.sub is not None
        await self.acks.give_back(self.sub.take_all())
        await first_of(stop.wait(), until, self._follow())
        await self.acks.give_back(self.sub.take_all())

    async def _follow(self) -> None:
        """While nothing is fetched, keep consumer_pending and the lags true to the stream."""
        # No message metadata arrives meanwhile to update them from; frozen at
        # their last values they would hide the backlog the pause is building.
        assert self.sub is not None
        while True:
            with contextlib.suppress(NATSError, TimeoutError):
                info = await self.sub.consumer_info()
                self._set_pending(info.num_pending or 0)
            self.publishers.refresh_lags(time.time())
            await asyncio.sleep(FETCH_TIMEOUT)

    def note_pending(self, msg: Msg) -> None:
        """Take consumer_pending from a fetched message's metadata."""
        with contextlib.suppress(NATSError, ValueError):
            self._set_pending(num_pending(msg))

    def _set_pending(self, pending: int) -> None:
        self.pending = pending
        self.on_pending(pending)

    async def info(self) -> js_api.ConsumerInfo:
        """The consumer's state as the server has it; raises NATSError or TimeoutError."""
        assert self.sub is not None, "bind() first"
        return await self.sub.consumer_info()

    def take_all(self) -> list[Msg]:
        """What was delivered and not handed out yet, to give back."""
        return self.sub.take_all() if self.sub is not None else []

    async def ack_floor(self) -> tuple[bool, int | None]:
        """Whether the consumer could be asked; then the stream sequence through
        which it has finished every message, None when nothing waits at all."""
        if self.sub is None:
            return False, None
        try:
            info = await self.sub.consumer_info()
        except (NATSError, TimeoutError) as exc:
            log.debug("cannot read consumer info: %s", exc)
            return False, None
        self._set_pending(info.num_pending or 0)
        if not info.num_pending and not info.num_ack_pending:
            return True, None
        return True, info.ack_floor.stream_seq if info.ack_floor else 0
