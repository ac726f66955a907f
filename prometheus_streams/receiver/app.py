"""The receiver: fetch scrapes from a durable consumer, hand each to the output, ack after it.

The path of a message: `consumer.py` fetches it, `decode.py` decodes it and
keeps the newest per group, the role waits for the group's turn and checks
max_age, the output (`outputs/`) stores it, and `acks.py` acks, naks or
terminates it as the output answered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry

from prometheus_streams import runtime
from prometheus_streams.config import Config, StreamConfig
from prometheus_streams.exposition import NATIVE_SHAPE
from prometheus_streams.management import Management
from prometheus_streams.receiver.acks import Acks
from prometheus_streams.receiver.breaker import Breaker
from prometheus_streams.receiver.checks import BodyChecker
from prometheus_streams.receiver.consumer import Consumer
from prometheus_streams.receiver.decode import Decoder, too_old
from prometheus_streams.receiver.metrics import Publishers, ReceiverMetrics
from prometheus_streams.receiver.output import Action, Context, Delivery, Wants
from prometheus_streams.receiver.outputs import build_output
from prometheus_streams.receiver.outputs.pushgateway import PushgatewayOutput
from prometheus_streams.receiver.pushgateway import PushGateway
from prometheus_streams.service import Supervisor
from prometheus_streams.transport import Connection

log = logging.getLogger(__name__)


@dataclass
class _GroupLock:
    """Serialises deliveries of one group; dropped when nobody uses it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def warn_without_c_pass(native: object = NATIVE_SHAPE) -> bool:
    """Log a warning when the package was built without _speedups; whether it did."""
    cost = "every message costs the receiver about 0.1 ms more CPU"
    return runtime.warn_without_speedups(native, cost, log)


class Receiver(runtime.SharedRole, runtime.Phases):
    """Consumes the stream through a durable pull consumer shared by every copy."""

    def __init__(self, config: Config, registry: CollectorRegistry) -> None:
        assert config.receiver_stream is not None and config.push_gateway is not None
        self.config = config
        self.stream: StreamConfig = config.receiver_stream
        self.metrics = ReceiverMetrics(registry)
        self.conn = Connection(
            self.stream,
            "receiver_stream",
            f"prometheus-streams receiver {config.identity}",
            registry,
        )
        self.errors = runtime.RecentErrors()
        self._supervisor = Supervisor("receiver")
        self.management = Management(config.management, "receiver", config.identity)
        self.publishers = Publishers(self.metrics)
        self.acks = Acks(self._supervisor, self.metrics, self._note_error)
        self.consumer = Consumer(
            self.conn, self.stream, self.acks, self.metrics, self.publishers, self._note_error
        )
        self.decoder = Decoder(self.stream.topic, self.acks, self.publishers)
        self.checker = BodyChecker(self.metrics)
        self.output = build_output(config, registry, self._context())
        self._group_locks: dict[tuple[str, str, str], _GroupLock] = {}
        self.readiness = runtime.Readiness(self.conn, lambda: self.consumer.stream_ready)
        self.gate = runtime.PauseGate(
            "receiver", self.metrics.paused, "messages now wait in the stream", log
        )
        self._stop = asyncio.Event()
        self._consumer_task: asyncio.Task[None] | None = None

    def _context(self) -> Context:
        return Context(
            conn=self.conn,
            stream=self.stream,
            checker=self.checker,
            per_subject=lambda: self.consumer.per_subject,
            publishers_seen=self.publishers.seen,
            paused=lambda: self.paused,
            ack_floor=self.consumer.ack_floor,
            in_progress=self.acks.in_progress,
            note_error=self._note_error,
            spawn=self._supervisor.spawn,
        )

    def status(self) -> dict[str, Any]:
        """Publishers and when they were last seen, for the status page."""
        return {
            **self._shared_status("receiver"),
            "durable": self.stream.durable,
            **self.output.status(),
            "consumer_pending": self.consumer.pending,
            "publishers": [
                {"publisher": p, "last_seen": seen, "age_seconds": round(time.time() - seen, 3)}
                for p, seen in sorted(self.publishers.seen.items())
            ],
            "last_error": self.last_error,
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; in-flight pushes finish and are acked first."""
        self._stop = stop
        await self.run_phases(stop, self.config.shutdown_grace)

    async def start(self) -> None:
        """Start the output, then the consume loop (it connects and binds first)."""
        warn_without_c_pass()
        await self.output.start()
        self._consumer_task = self._supervisor.spawn(self._consume(self._stop), "consume")
        self._supervisor.spawn(self.output.run(self._stop), "output")

    async def shutdown(self, grace: float) -> None:
        """Let the batches in flight finish within `grace`, settle their acks, close."""
        try:
            # The consume loop notices `stop` between batches and returns by itself;
            # while it is still connecting there is nothing in flight to wait for.
            if self.readiness.stream_checked and self._consumer_task is not None:
                await asyncio.wait_for(asyncio.shield(self._consumer_task), grace)
        except TimeoutError:
            log.warning("in-flight pushes did not finish within the grace period")
        except Exception:  # noqa: S110 - already reported by the supervisor
            pass
        await self.acks.flush()  # before cancel_all: acks under way are not cut off
        await self._release(self.acks.flush, self.output.close, self.conn.close)

    async def _subscribe(self) -> None:
        await self.conn.connect()
        await self.consumer.bind()
        self._supervisor.spawn(self.management.run(self.conn, self), "management")
        log.info(
            "receiver %s consuming %s from stream %s as %s, pushing to %s",
            self.config.identity,
            self.stream.subjects,
            self.stream.stream,
            self.stream.durable,
            self.output.name,
        )

    async def _consume(self, stop: asyncio.Event) -> None:
        await self._subscribe()
        batches: list[asyncio.Task[None]] = []
        async for msgs in self.consumer.batches(
            stop, self.output, lambda: self.paused, self.gate.wait_resumed
        ):
            # The next fetch overlaps this batch's pushes, so the output is not
            # left idle between batches; at most two batches are in flight.
            batches.append(self._supervisor.spawn(self._handle_batch(msgs), "batch"))
            if len(batches) >= 2:
                await batches.pop(0)
        await asyncio.gather(*batches)
        await self.consumer.close()
        await self.acks.flush()

    async def _handle_batch(self, msgs: list[Msg]) -> None:
        """Decode one fetched batch and deliver it, each group in turn."""
        self.metrics.received.inc(len(msgs))
        self.metrics.received_bytes.inc(sum(len(msg.data) for msg in msgs))
        if msgs:
            self.consumer.note_pending(msgs[-1])
        newest_only = self.output.wants is Wants.NEWEST_PER_GROUP
        items = await self.decoder.batch(msgs, self.config.body_size_limit, newest_only)
        await asyncio.gather(*(self._process(item) for item in items))

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
        if too_old(item.scrape, self.config.max_age):
            await self.acks.drop(item.msg, "too_old")
            return
        outcome = await self.output.deliver(item)
        if outcome.action is Action.DELIVERED:
            self._delivered(item)
            self.acks.ack_soon(item.msg)  # settle() would too, one await later
        else:
            await self.acks.settle(item.msg, outcome)

    def _delivered(self, item: Delivery) -> None:
        scrape = item.scrape
        now = time.time()
        seen = scrape.scrape_time_ms / 1000
        self.metrics.latency.observe(max(0.0, now - seen))
        if scrape.scrape_time_ms > now * 1000 + 60_000:
            self.metrics.future_scrapes.inc()
            log.warning(
                "scrape of %s/%s from %s is dated %.0fs in the future: check its clock",
                scrape.job,
                scrape.instance,
                scrape.publisher,
                seen - now,
            )
        self.publishers.delivered(scrape.publisher, seen, now)

    def reload(self, config: Config) -> None:
        """Apply a new config: limits, max_age and output settings; NATS stays."""
        if config.receiver_stream != self.stream:
            log.warning("receiver_stream changed: that takes effect only after a restart")
        self.output.reload(config)
        # The limits or the grouping labels may have changed what passes.
        self.checker.clear()
        self.config = config

    # -- kept for the tests and benchmarks written before the output seam ----

    @property
    def pushgateway(self) -> PushgatewayOutput:
        """The Pushgateway output."""
        assert isinstance(self.output, PushgatewayOutput)
        return self.output

    @property
    def gateway(self) -> PushGateway:
        """The Pushgateway output's HTTP client."""
        return self.pushgateway.gateway

    @property
    def breaker(self) -> Breaker:
        """The Pushgateway output's breaker."""
        return self.pushgateway.breaker

    async def stale_tick(self) -> int:
        """One stale-group check of the Pushgateway output; how many groups it deleted."""
        return await self.pushgateway.sweep.tick()

    async def sweep_stale_groups(self, floor: int | None = None) -> int:
        """Delete the Pushgateway output's stale groups (see StaleSweep.sweep)."""
        return await self.pushgateway.sweep.sweep(floor)
