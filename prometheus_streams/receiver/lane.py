"""One output with its own durable consumer: fetch, decode, one delivery per group, ack.

Each output gets a lane, so a slow or down destination holds back neither
the Pushgateway nor another store. A lane whose output needs every scrape in
order (remote write) is led by one receiver at a time through a lease
(transport/lease.py); the others keep their consumer bound and wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nats.aio.msg import Msg
from nats.errors import Error as NATSError

from prometheus_streams.config import StreamConfig
from prometheus_streams.receiver.consumer import Consumer
from prometheus_streams.receiver.decode import Decoder, too_old
from prometheus_streams.receiver.output import Action, Context, Delivery, Output, Wants
from prometheus_streams.receiver.series import SeriesTracker
from prometheus_streams.transport.lease import Lease

if TYPE_CHECKING:
    from prometheus_streams.receiver.app import Receiver

log = logging.getLogger(__name__)


@dataclass
class _GroupLock:
    """Serialises deliveries of one group; dropped when nobody uses it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def partition_of(topic: str, subject: str, partitions: int) -> int | None:
    """The partition of a message by its publisher (the subject's token after the topic).

    A stable hash, the same in every receiver and every run; None for a
    subject without one (partition 0's decoder refuses it).
    """
    prefix = topic + "."
    if not subject.startswith(prefix):
        return None
    publisher = subject[len(prefix) :].split(".", 1)[0]
    return zlib.crc32(publisher.encode()) % partitions


class Lane:
    """The path of one output's messages, from its consumer to its acks."""

    def __init__(
        self,
        role: Receiver,
        stream: StreamConfig,
        first: bool,
        lease: Lease | None = None,
        on_pending: Callable[[int], None] | None = None,
        partition: tuple[int, int] = (0, 1),
    ) -> None:
        self.role = role
        self.stream = stream
        self.first = first  # the first lane counts what is received, once for all lanes
        self.lease = lease
        # (k, n): this lane writes the publishers whose name hashes to k of n.
        self.partition = partition
        self.consumer = Consumer(
            role.conn,
            stream,
            role.acks,
            role.metrics,
            role.publishers,
            role._note_error,
            on_pending=on_pending,
        )
        self.decoder = Decoder(
            stream.topic, role.acks, role.publishers, count=first, backstop=role.backstop
        )
        self.output: Output | None = None
        self.series = SeriesTracker(role.config.series_budget, role.budget_metrics)
        self._group_locks: dict[tuple[str, str, str], _GroupLock] = {}
        self.task: asyncio.Task[None] | None = None

    def context(self) -> Context:
        """What this lane lends its output."""
        role = self.role
        return Context(
            conn=role.conn,
            stream=self.stream,
            checker=role.checker,
            per_subject=lambda: self.consumer.per_subject,
            publishers_seen=role.publishers.seen,
            paused=lambda: role.paused,
            ack_floor=self.consumer.ack_floor,
            in_progress=role.acks.in_progress,
            note_error=role._note_error,
            spawn=role._supervisor.spawn,
            fence=self.leading,
            pending=lambda: self.consumer.pending,
            series=self.series,
        )

    def leading(self) -> bool:
        """Whether this receiver may deliver this lane's messages now."""
        return self.lease is None or self.lease.leading()

    async def consume(self, stop: asyncio.Event) -> None:
        """Bind the consumer, then consume (while leading, for a leased lane) until `stop`."""
        assert self.output is not None
        await self.consumer.bind()
        if self.lease is None:
            await self._term(stop)
        else:
            await self._led(stop, self.lease)
        await self._close()

    async def _close(self) -> None:
        await self.consumer.close()
        await self.role.acks.flush()
        if self.lease is not None:
            # Settled: what we held is acked or back in the stream, so the next
            # leader may start at once.
            await self.lease.release()

    async def _led(self, stop: asyncio.Event, lease: Lease) -> None:
        """Consume during each term of the lease; between terms, fetch nothing."""
        while await lease.wait_leading(stop):
            await self._settled(stop, lease)
            log.info(
                "leading %s: consuming %s from stream %s",
                self.stream.durable,
                self.stream.subjects,
                self.stream.stream,
            )
            term = asyncio.Event()
            watcher = asyncio.ensure_future(self._watch(lease, stop, term))
            try:
                await self._term(term)
            finally:
                watcher.cancel()
            await self.role.acks.give_back(self.consumer.take_all())
            if lease.resigning:
                # Settled: hand over at once (to a receiver below its share).
                await self.role.acks.flush()
                await lease.release()
            elif not stop.is_set():
                log.warning("no longer leading %s: another receiver writes", self.stream.durable)

    async def _watch(self, lease: Lease, stop: asyncio.Event, term: asyncio.Event) -> None:
        """Set `term` once `stop` is set or the lease is lost."""
        while not stop.is_set() and lease.leading():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
        term.set()

    async def _settled(self, stop: asyncio.Event, lease: Lease) -> None:
        """Wait until no previous leader can still hold a message of the consumer.

        A leader that gave the lease up settled its messages first. One whose
        lease expired may have held messages, with its last progress note
        before we took the lease: they come back, ahead of newer ones, once
        ack_wait has passed since then. Fetching earlier would let newer
        scrapes overtake them.
        """
        if lease.clean_handover:
            return
        try:
            info = await self.consumer.info()
        except (NATSError, TimeoutError):
            info = None
        if info is not None and not info.num_ack_pending:
            return
        left = lease.taken_at + self.stream.ack_wait + 0.5 - time.monotonic()
        if left > 0:
            log.info(
                "%s: the previous leader's lease expired; waiting %.1fs for what it held"
                " to come back before fetching",
                self.stream.durable,
                left,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), left)

    async def _term(self, stop: asyncio.Event) -> None:
        """Fetch and deliver until `stop` is set."""
        output = self.output
        assert output is not None
        role = self.role
        batches: list[asyncio.Task[None]] = []
        async for msgs in self.consumer.batches(
            stop, output, lambda: role.paused, role.gate.wait_resumed
        ):
            # The next fetch overlaps this batch's deliveries, so the output is
            # not left idle between batches; at most two batches are in flight.
            batches.append(role._supervisor.spawn(self._handle_batch(msgs), "batch"))
            if len(batches) >= 2:
                await batches.pop(0)
        await asyncio.gather(*batches)

    async def _handle_batch(self, msgs: list[Msg]) -> None:
        """Decode one fetched batch and deliver it, each group in turn."""
        assert self.output is not None
        metrics = self.role.metrics
        if self.first:
            metrics.received.inc(len(msgs))
            metrics.received_bytes.inc(sum(len(msg.data) for msg in msgs))
        if msgs:
            self.consumer.note_pending(msgs[-1])
        if self.partition[1] > 1:
            msgs = await self._own(msgs)
        newest_only = self.output.wants is Wants.NEWEST_PER_GROUP
        items = await self.decoder.batch(msgs, self.role.config.body_size_limit, newest_only)
        if len(items) == 1:
            # A steady trickle fetches one message at a time: no task of its own for it.
            await self._process(items[0])
        else:
            await asyncio.gather(*(self._process(item) for item in items))

    async def _own(self, msgs: list[Msg]) -> list[Msg]:
        """The messages of this lane's partition; the others are acked: another lane has them."""
        own: list[Msg] = []
        mine, partitions = self.partition
        for msg in msgs:
            found = partition_of(self.stream.topic, msg.subject, partitions)
            if found == mine or (found is None and mine == 0):
                own.append(msg)
            else:
                self.role.acks.ack_soon(msg)
        return own

    async def _process(self, item: Delivery) -> None:
        """Deliver one message once the group's earlier ones are answered."""
        # Two batches may hold the same group: one delivery per group at a time,
        # in fetch order, so the group never goes back in time.
        group = item.scrape.group
        entry = self._group_locks.get(group)
        if entry is None:
            entry = self._group_locks[group] = _GroupLock()
        entry.users += 1
        try:
            async with entry.lock:
                await self._deliver(item)
        finally:
            entry.users -= 1
            if not entry.users:
                del self._group_locks[group]

    async def _deliver(self, item: Delivery) -> None:
        assert self.output is not None
        acks = self.role.acks
        if too_old(item.scrape, self.role.config.max_age):
            await acks.drop(item.msg, "too_old")
            return
        outcome = await self.output.deliver(item)
        if outcome.action is Action.DELIVERED:
            if self.first:
                self.role.delivered(item)
            acks.ack_soon(item.msg)  # settle() would too, one await later
        else:
            await acks.settle(item.msg, outcome)
