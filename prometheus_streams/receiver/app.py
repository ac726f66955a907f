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
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry

from prometheus_streams import runtime
from prometheus_streams.config import Config, StreamConfig
from prometheus_streams.errors import StreamMismatchError
from prometheus_streams.exposition import NATIVE_SHAPE
from prometheus_streams.management import Management
from prometheus_streams.receiver.acks import Acks
from prometheus_streams.receiver.backstop import Backstop
from prometheus_streams.receiver.backstop_state import BackstopMetrics
from prometheus_streams.receiver.breaker import Breaker
from prometheus_streams.receiver.checks import BodyChecker
from prometheus_streams.receiver.consumer import Consumer
from prometheus_streams.receiver.election import ElectionStore
from prometheus_streams.receiver.expected import ExpectedPublishers
from prometheus_streams.receiver.metrics import Publishers, ReceiverMetrics
from prometheus_streams.receiver.output import Delivery, Output
from prometheus_streams.receiver.outputs import build_lanes
from prometheus_streams.receiver.outputs.pushgateway import PushgatewayOutput
from prometheus_streams.receiver.outputs.remote_write import RemoteWriteOutput
from prometheus_streams.receiver.pushgateway import PushGateway
from prometheus_streams.receiver.series import BudgetMetrics, SeriesTracker, top
from prometheus_streams.service import Supervisor
from prometheus_streams.transport import Connection, bind_stream

log = logging.getLogger(__name__)


def warn_without_c_pass(native: object = NATIVE_SHAPE) -> bool:
    """Log a warning when the package was built without _speedups; whether it did."""
    cost = "every message costs the receiver about 0.1 ms more CPU"
    return runtime.warn_without_speedups(native, cost, log)


class Receiver(runtime.SharedRole, runtime.Phases):
    """Consumes the stream through a durable pull consumer shared by every copy."""

    def __init__(self, config: Config, registry: CollectorRegistry) -> None:
        assert config.receiver_stream is not None
        assert config.push_gateway is not None or config.remote_write
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
        # One per process, before the lanes: every output takes the same decisions.
        backstop_metrics = BackstopMetrics(registry)
        store = None
        if config.ha_backstop.shared:
            store = ElectionStore(
                lambda: self.conn.js, self.stream.replicas, backstop_metrics.store_errors.inc
            )
        self.backstop = Backstop(
            config.ha_backstop, backstop_metrics, store, self._supervisor.spawn
        )
        self.expected = ExpectedPublishers(config, self.publishers, registry)
        self.acks = Acks(self._supervisor, self.metrics, self._note_error)
        self.checker = BodyChecker(self.metrics)
        self.budget_metrics = BudgetMetrics(registry)
        self.lanes, self.shares = build_lanes(self, config, registry)
        self.readiness = runtime.Readiness(
            self.conn, lambda: all(lane.consumer.stream_ready for lane in self.lanes)
        )
        self.gate = runtime.PauseGate(
            "receiver", self.metrics.paused, "messages now wait in the stream", log
        )
        self._stop = asyncio.Event()
        self._consumer_tasks: list[asyncio.Task[None]] = []

    @property
    def output(self) -> Output:
        """The first lane's output (the Pushgateway when there is one)."""
        output = self.lanes[0].output
        assert output is not None
        return output

    @property
    def consumer(self) -> Consumer:
        """The first lane's consumer."""
        return self.lanes[0].consumer

    def status(self) -> dict[str, Any]:
        """Publishers and when they were last seen, for the status page."""
        return {
            **self._shared_status("receiver"),
            "durable": self.lanes[0].stream.durable,
            **(self.output.status() if self.config.push_gateway is not None else {}),
            "consumer_pending": self.consumer.pending,
            "remote_write": [
                lane.output.status()
                for lane in self.lanes
                if isinstance(lane.output, RemoteWriteOutput)
            ],
            "publishers": [
                {"publisher": p, "last_seen": seen, "age_seconds": round(time.time() - seen, 3)}
                for p, seen in sorted(self.publishers.seen.items())
            ],
            "ha_backstop": self.backstop.status(),
            "expected_publishers": self.expected.status(),
            "last_error": self.last_error,
        }

    def top(self, n: int) -> dict[str, Any]:
        """The top offenders in series, as the first output stores them."""
        first = self.lanes[0].output
        assert first is not None
        trackers: list[SeriesTracker] = [
            lane.series
            for lane in self.lanes
            if lane.output is not None and lane.output.name == first.name
        ]
        return {"role": "receiver", "output": first.name, **top(trackers, n)}

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; in-flight pushes finish and are acked first."""
        self._stop = stop
        await self.run_phases(stop, self.config.shutdown_grace)

    async def start(self) -> None:
        """Start the outputs, then the consume loops (they connect and bind first)."""
        warn_without_c_pass()
        for lane in self.lanes:
            assert lane.output is not None
            await lane.output.start()
            log.debug(
                "output %s started: consumer %s, %s",
                lane.output.name,
                lane.stream.durable,
                "led by one receiver at a time" if lane.lease else "shared by every receiver",
            )
        self._consumer_tasks = [self._supervisor.spawn(self._consume(self._stop), "consume")]
        for lane in self.lanes:
            assert lane.output is not None
            self._supervisor.spawn(lane.output.run(self._stop), f"output {lane.output.name}")

    async def shutdown(self, grace: float) -> None:
        """Let the batches in flight finish within `grace`, settle their acks, close."""
        try:
            # The consume loop notices `stop` between batches and returns by itself;
            # while it is still connecting there is nothing in flight to wait for.
            if self.readiness.stream_checked and self._consumer_tasks:
                await asyncio.wait_for(asyncio.shield(asyncio.gather(*self._consumer_tasks)), grace)
        except TimeoutError:
            log.warning("in-flight pushes did not finish within the grace period")
        except Exception:  # noqa: S110 - already reported by the supervisor
            pass
        await self.acks.flush()  # before cancel_all: acks under way are not cut off
        await self.backstop.flush()  # a restarted receiver judges silence by it
        closers = [lane.output.close for lane in self.lanes if lane.output is not None]
        await self._release(self.acks.flush, *closers, self.conn.close)

    async def _consume(self, stop: asyncio.Event) -> None:
        """Connect, then run every lane (each binds its own consumer) until `stop`."""
        await self.conn.connect()
        for lane in self.lanes:
            if lane.lease is not None:
                self._supervisor.spawn(lane.lease.run(stop), f"lease {lane.lease.key}")
        for share in self.shares:
            self._supervisor.spawn(share.run(stop), f"lease share {share.prefix}")
        if self.backstop.store is not None:
            self._supervisor.spawn(self.backstop.store.run(stop, self.backstop.follow), "HA watch")
        self._supervisor.spawn(self.management.run(self.conn, self), "management")
        log.info(
            "receiver %s consuming %s from stream %s to %s",
            self.config.identity,
            self.stream.subjects,
            self.stream.stream,
            ", ".join(
                f"{lane.output.name} as {lane.stream.durable}" for lane in self.lanes if lane.output
            ),
        )
        await asyncio.gather(*(lane.consume(stop) for lane in self.lanes))

    def delivered(self, item: Delivery) -> None:
        """Note a delivered scrape: latency, clock check, publisher last seen."""
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
        new = config.receiver_stream
        if (
            new is not None
            and new != self.stream
            and replace(new, sources=self.stream.sources) == self.stream
        ):
            self._align_sources(new)
        elif new != self.stream:
            log.warning("receiver_stream changed: that takes effect only after a restart")
        had = {rw.name for rw in self.config.remote_write}
        has = {rw.name for rw in config.remote_write}
        if had != has or (config.push_gateway is None) != (self.config.push_gateway is None):
            log.warning(
                "outputs added or removed (remote_write %s -> %s): that takes effect only"
                " after a restart; the outputs running keep their new settings",
                sorted(had) or "none",
                sorted(has) or "none",
            )
        for lane in self.lanes:
            assert lane.output is not None
            lane.output.reload(config)
            lane.series.reload(config.series_budget)
        self.backstop.reload(config.ha_backstop)
        self.expected.reload(config)
        # The limits or the grouping labels may have changed what passes.
        self.checker.clear()
        self.config = config

    def _align_sources(self, new: StreamConfig) -> None:
        """A datacenter added to (or removed from) `sources`: update the central stream."""
        log.info("receiver_stream.sources changed: updating stream %s", new.stream)
        self.stream = new
        for lane in self.lanes:
            # A lane that binds again later must not put the old list back.
            lane.stream = lane.consumer.stream = replace(lane.stream, sources=new.sources)
        stream = self.lanes[0].stream

        async def align() -> None:
            await self.conn.connected.wait()
            try:
                await bind_stream(
                    self.conn, stream, f"update the sources of stream {stream.stream}"
                )
            except StreamMismatchError as exc:
                # A reload must not stop a receiver that consumes well.
                self.errors.note(str(exc))
                log.error("%s", exc)

        self._supervisor.spawn(align(), "align stream sources")

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
