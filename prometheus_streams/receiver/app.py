"""The receiver: fetch scrapes from a durable consumer, push each group, ack after a 2xx."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from nats.aio.msg import Msg
from nats.errors import Error as NATSError
from nats.js import api as js_api
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from prometheus_streams import wire
from prometheus_streams.config import Config, PushGatewayConfig, StreamConfig
from prometheus_streams.exposition import (
    NATIVE_SHAPE,
    SHAPE_VALUE_MAX,
    body_limits,
    body_shape,
    health_series,
    index_samples,
    longest_line,
    rename_labels,
    shape_covers_samples,
    strip_timestamps,
)
from prometheus_streams.management import Management
from prometheus_streams.receiver.breaker import HALF_OPEN, OPEN, Breaker
from prometheus_streams.receiver.consistency import (
    CheckedShapes,
    ConsistencyError,
    TypeRegistry,
    TypeSet,
    check_body,
)
from prometheus_streams.receiver.pushgateway import (
    PushGateway,
    PushResult,
    group_path,
    path_of_labels,
)
from prometheus_streams.receiver.stale import PUBLISHER_REFRESH, SweepState, stream_publishers
from prometheus_streams.runtime import (
    PauseGate,
    Readiness,
    RecentErrors,
    SharedRole,
    warn_without_speedups,
)
from prometheus_streams.service import Supervisor
from prometheus_streams.transport import Connection, Puller, bind_stream

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 1.0
MAX_NAK_DELAY = 30.0
# Acks of pushes answered within this window share one write. Every write to
# nats-server wakes it and costs both sides more than the bytes: at 2 ms the
# drain spent 0.063 ms of nats-server CPU per push, at 20 ms 0.038.
ACK_DELAY = 0.02
# A fetched batch inflates its bodies up front, back to back, while they add
# up to this; the rest are inflated when their push is next. Up front is
# cheaper (measured: 15-20 % less CPU per push in a drain of node pages); the
# bound keeps two batches of large pages (kube-state-metrics, 10 MB and more)
# from holding 128 inflated bodies at once.
INFLATE_AHEAD = 32 * 1024 * 1024
# What a group holds once its page cannot be pushed: the health series, up 0.
DOWN_BODY = health_series(False, 0.0, 0)
DOWN_TYPES = check_body(DOWN_BODY)
# The refusals of a page after which its group gets DOWN_BODY.
DOWN_REASONS = ("rejected", "inconsistent", "line_too_long", "too_many_labels", "type_conflict")

PUSH_RESULTS = ("success", "rejected", "failed")
NAK_REASONS = ("breaker_open", "pushgateway_unavailable")
# Our own reasons, the wire format's (wire.WireError) and the body limits'.
DROP_REASONS = (
    "too_old",
    "superseded",
    "type_conflict",
    "inconsistent",
    "rejected",
    "bad_compression",
    "bad_header",
    "header_too_large",
    "header_mismatch",
    "bad_subject",
    "bad_version",
    "too_large",
    "line_too_long",
    "too_many_labels",
)
# A sweep with a backlog looks up at most this many stale groups on the stream;
# the rest wait for the next sweep.
STALE_LOOKUPS = 256


class ReceiverMetrics:
    """The receiver's own metrics, on the registry it is given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        p = "prometheus_streams_receiver_"
        self.received = Counter(p + "received_total", "Messages fetched", registry=registry)
        self.received_bytes = Counter(
            p + "received_bytes_total", "Compressed bytes fetched", registry=registry
        )
        self.pushes = Counter(
            p + "pushes_total", "Pushes by outcome", ["result"], registry=registry
        )
        self.push_duration = Histogram(
            p + "push_duration_seconds", "Time taken by Pushgateway PUTs", registry=registry
        )
        self.latency = Histogram(
            p + "scrape_to_push_seconds",
            "From the scrape on the poller to the Pushgateway's 2xx",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.dropped = Counter(
            p + "dropped_total",
            "Messages acked or terminated without a push, by reason",
            ["reason"],
            registry=registry,
        )
        self.naks = Counter(
            p + "naks_total", "Messages handed back for redelivery", ["reason"], registry=registry
        )
        self.timestamps_stripped = Counter(
            p + "timestamps_stripped_total",
            "Sample timestamps removed because the Pushgateway refuses them",
            registry=registry,
        )
        self.future_scrapes = Counter(
            p + "future_scrapes_total",
            "Scrapes dated more than a minute ahead of the receiver's clock",
            registry=registry,
        )
        self.labels_renamed = Counter(
            p + "labels_renamed_total",
            "Labels renamed to exported_<name> because the grouping key sets them",
            registry=registry,
        )
        self.pending = Gauge(
            p + "consumer_pending", "Messages in the stream not yet fetched", registry=registry
        )
        self.last_seen = Gauge(
            p + "publisher_last_seen_timestamp_seconds",
            "Scrape time of the newest message pushed for each publisher",
            ["publisher"],
            registry=registry,
        )
        self.lag = Gauge(
            p + "publisher_lag_seconds",
            "Age of the newest scrape pushed per publisher, when it was pushed",
            ["publisher"],
            registry=registry,
        )
        self.paused = Gauge(
            p + "paused", "1 while paused by an operator (nothing is fetched)", registry=registry
        )
        self.stale_deleted = Counter(
            p + "stale_groups_deleted_total",
            "Pushgateway groups deleted because nothing was pushed to them for stale_after",
            registry=registry,
        )
        self.stale_errors = Counter(
            p + "stale_sweep_errors_total",
            "Stale-group sweeps that could not list or delete groups",
            registry=registry,
        )
        self.shape_hits = Counter(
            p + "known_shape_bodies_total",
            "Bodies whose shape (all but the sample values) passed the checks before",
            registry=registry,
        )
        self.down_pushes = Counter(
            p + "down_pushes_total",
            "Groups replaced by up 0 and the health series because their page"
            " could not be pushed, by reason",
            ["reason"],
            registry=registry,
        )
        for reason in DOWN_REASONS:
            self.down_pushes.labels(reason)
        self.messages_by_publisher = Counter(
            p + "publisher_messages_total",
            "Valid messages received per publisher",
            ["publisher"],
            registry=registry,
        )
        # Known label values exist at 0 from the start, so rate() and absent() see them.
        for result in PUSH_RESULTS:
            self.pushes.labels(result)
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        for reason in NAK_REASONS:
            self.naks.labels(reason)


@dataclass(frozen=True)
class _PublisherMetrics:
    """One publisher's labelled metric children."""

    messages: Counter
    last_seen: Gauge
    lag: Gauge


@dataclass
class _GroupLock:
    """Serialises pushes of one group; dropped when nobody uses it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass
class _Work:
    """One decoded message on its way to the Pushgateway."""

    msg: Msg
    scrape: wire.Scrape  # the body is in `body`, or not inflated yet
    encoding: str
    body: bytes | None
    fetched: float = field(default_factory=time.monotonic)


def warn_without_c_pass(native: object = NATIVE_SHAPE) -> bool:
    """Log a warning when the package was built without _speedups; whether it did."""
    cost = "every message costs the receiver about 0.1 ms more CPU"
    return warn_without_speedups(native, cost, log)


def _nak_delay(msg: Msg) -> float:
    try:
        delivered = msg.metadata.num_delivered
    except (NATSError, ValueError):
        delivered = 1
    return float(min(MAX_NAK_DELAY, 0.5 * 2 ** max(0, delivered - 1)))


class Receiver(SharedRole):
    """Consumes the stream through a durable pull consumer shared by every copy."""

    def __init__(self, config: Config, registry: CollectorRegistry) -> None:
        assert config.receiver_stream is not None and config.push_gateway is not None
        self.config = config
        self.stream: StreamConfig = config.receiver_stream
        self.push_config: PushGatewayConfig = config.push_gateway
        self.metrics = ReceiverMetrics(registry)
        self.conn = Connection(
            self.stream,
            "receiver_stream",
            f"prometheus-streams receiver {config.identity}",
            registry,
        )
        self.gateway = PushGateway(self.push_config)
        self.readiness = Readiness(self.conn)
        self.errors = RecentErrors()
        self.gate = PauseGate(
            "receiver", self.metrics.paused, "messages now wait in the stream", log
        )
        # Scrape time of the newest push per group, so a group never goes back in time.
        self._last_pushed: dict[tuple[str, str, str], int] = {}
        self._publishers_seen: dict[str, float] = {}
        self._sweep = SweepState(registry)
        self._grouping_labels = _grouping_labels(self.push_config)
        self._limit = asyncio.Semaphore(self.push_config.concurrency)
        self._sub: Puller | None = None
        self._per_subject = -1
        self._group_locks: dict[tuple[str, str, str], _GroupLock] = {}
        self._supervisor = Supervisor("receiver")
        self.management = Management(config.management, "receiver", config.identity)
        self.types = TypeRegistry()
        self.checked_shapes = CheckedShapes()
        self._by_publisher: dict[str, _PublisherMetrics] = {}
        self._acks: list[Msg] = []
        self._ack_timer: asyncio.TimerHandle | None = None
        self._ack_tasks: set[asyncio.Future[None]] = set()
        self._pushed_ok = self.metrics.pushes.labels("success")
        self.breaker = Breaker(
            self.push_config.breaker_failures, self.push_config.breaker_cooldown, registry
        )
        self._pending_count = -1

    def status(self) -> dict[str, Any]:
        """Publishers and when they were last seen, for the status page."""
        return {
            **self._shared_status("receiver"),
            "durable": self.stream.durable,
            "pushgateway": self.push_config.url,
            "breaker": self.breaker.state,
            "consumer_pending": self._pending_count,
            "stale_sweep": self._sweep.status(),
            "publishers": [
                {"publisher": p, "last_seen": seen, "age_seconds": round(time.time() - seen, 3)}
                for p, seen in sorted(self._publishers_seen.items())
            ],
            "last_error": self.last_error,
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; in-flight pushes finish and are acked first."""
        warn_without_c_pass()
        await self.gateway.start()
        consumer = self._supervisor.spawn(self._consume(stop), "consume")
        self._supervisor.spawn(self._stale_loop(stop), "stale-groups")
        await self._supervisor.wait(stop)
        try:
            # The consume loop notices `stop` between batches and returns by itself;
            # while it is still connecting there is nothing in flight to wait for.
            if self.readiness.stream_checked:
                await asyncio.wait_for(asyncio.shield(consumer), self.config.shutdown_grace)
        except TimeoutError:
            log.warning("in-flight pushes did not finish within the grace period")
        except Exception:  # noqa: S110 - already reported by the supervisor
            pass
        await self._supervisor.cancel_all()
        await self._flush_acks()
        await self.gateway.close()
        await self.conn.close()
        self._supervisor.raise_if_failed()

    async def _subscribe(self) -> Puller:
        await self.conn.connect()
        sub = await self._rebind()
        self._supervisor.spawn(self.management.run(self.conn, self), "management")
        log.info(
            "receiver %s consuming %s from stream %s as %s, pushing to %s",
            self.config.identity,
            self.stream.subjects,
            self.stream.stream,
            self.stream.durable,
            self.push_config.url,
        )
        return sub

    async def _rebind(self) -> Puller:
        assert self.conn.nc is not None
        sub = self._sub or Puller(
            self.conn.nc, self.conn.js, self.stream.stream, self.stream.durable
        )

        async def bind(info: js_api.StreamInfo) -> None:
            self._per_subject = info.config.max_msgs_per_subject or -1
            await sub.bind(
                self.stream.subjects,
                js_api.ConsumerConfig(
                    ack_policy=js_api.AckPolicy.EXPLICIT,
                    ack_wait=self.stream.ack_wait,
                    max_deliver=-1,
                    deliver_policy=js_api.DeliverPolicy.ALL,
                ),
            )

        await bind_stream(self.conn, self.stream, f"bind consumer {self.stream.durable}", bind)
        self.readiness.stream_checked = True
        return sub

    async def _consume(self, stop: asyncio.Event) -> None:
        sub = self._sub = await self._subscribe()
        errors = 0
        batches: list[asyncio.Future[list[bool | None]]] = []
        while not stop.is_set():
            if self.paused:
                await self._idle(sub, stop, self.gate.wait_resumed())
                continue
            delay = self.breaker.wait_time()
            if delay > 0:
                # The breaker is open: fetch nothing, so messages wait in the stream.
                await self._idle(sub, stop, asyncio.sleep(delay))
                continue
            batch = 1 if self.breaker.state == HALF_OPEN else self.stream.fetch_batch
            try:
                msgs = await sub.fetch(batch, FETCH_TIMEOUT)
            except NATSError as exc:
                errors += 1
                log.warning(
                    "fetch from consumer %s failed: %s",
                    self.stream.durable,
                    exc or type(exc).__name__,
                )
                if errors >= 5 and self.conn.connected.is_set():
                    # Connected yet failing: the stream or the consumer was deleted
                    # or changed under us. Check and bind again.
                    self.readiness.stream_checked = False
                    self._note_error(
                        f"consumer {self.stream.durable} failed {errors} times: binding again"
                    )
                    sub = self._sub = await self._rebind()
                    errors = 0
                else:
                    await asyncio.sleep(0.5)
                continue
            errors = 0
            if not msgs:
                continue
            if self.paused:
                # Paused while this fetch was waiting: hand the messages straight back.
                await self._give_back(msgs)
                continue
            # The next fetch overlaps this batch's pushes, so the Pushgateway is not
            # left idle between batches; at most two batches are in flight.
            batches.append(asyncio.ensure_future(self._handle_batch(msgs)))
            if len(batches) >= 2:
                await batches.pop(0)
        await asyncio.gather(*batches)
        self._sub = None
        await self._give_back(await sub.close())
        await self._flush_acks()

    async def _idle(
        self, sub: Puller, stop: asyncio.Event, until: Coroutine[Any, Any, Any]
    ) -> None:
        """Fetch nothing until `until` or `stop`; what the stream delivered goes back.

        Before and after: what came meanwhile may be older than ack_wait by
        now, and another receiver may have it too.
        """
        await self._give_back(sub.take_all())
        await _first(stop.wait(), until, self._follow_consumer(sub))
        await self._give_back(sub.take_all())

    async def _follow_consumer(self, sub: Puller) -> None:
        """While nothing is fetched, keep consumer_pending and the lags true to the stream."""
        # No message metadata arrives meanwhile to update them from; frozen at
        # their last values they would hide the backlog the pause is building.
        while True:
            with contextlib.suppress(NATSError, TimeoutError):
                info = await sub.consumer_info()
                self._pending_count = info.num_pending or 0
                self.metrics.pending.set(self._pending_count)
            now = time.time()
            for publisher, seen in self._publishers_seen.items():
                self._publisher_metrics(publisher).lag.set(max(0.0, now - seen))
            await asyncio.sleep(FETCH_TIMEOUT)

    async def _give_back(self, msgs: list[Msg]) -> None:
        """Hand messages delivered late to a finished fetch back to the stream at once."""
        for msg in msgs:
            with contextlib.suppress(NATSError):
                await msg.nak()

    async def _handle_batch(self, msgs: list[Msg]) -> list[bool | None]:
        """Process one fetched batch; per group: True answered, False failed, None not tried."""
        newest: dict[tuple[str, str, str], _Work] = {}
        self.metrics.received.inc(len(msgs))
        self.metrics.received_bytes.inc(sum(len(msg.data) for msg in msgs))
        if msgs:
            self._note_pending(msgs[-1])
        inflated = 0
        for msg in msgs:
            try:
                scrape, encoding = wire.decode_headers(self.stream.topic, msg.subject, msg.headers)
                body = None
                if inflated < INFLATE_AHEAD:
                    body = wire.decode_body(msg.data, encoding, self.config.body_size_limit)
                    inflated += len(body)
            except wire.WireError as exc:
                await self._term(msg, exc.reason, str(exc))
                continue
            self._publisher_metrics(scrape.publisher).messages.inc()
            work = _Work(msg, scrape, encoding, body)
            previous = newest.get(scrape.group)
            if previous is None or scrape.scrape_time_ms > previous.scrape.scrape_time_ms:
                newest[scrape.group] = work
                if previous is not None:
                    await self._drop(previous, "superseded")
            else:
                await self._drop(work, "superseded")
        return list(await asyncio.gather(*(self._process(work) for work in newest.values())))

    def _publisher_metrics(self, publisher: str) -> _PublisherMetrics:
        # Looked up per message: the labelled children are kept, not found each time.
        found = self._by_publisher.get(publisher)
        if found is None:
            m = self.metrics
            found = self._by_publisher[publisher] = _PublisherMetrics(
                m.messages_by_publisher.labels(publisher),
                m.last_seen.labels(publisher),
                m.lag.labels(publisher),
            )
        return found

    def _note_pending(self, msg: Msg) -> None:
        with contextlib.suppress(NATSError, ValueError):
            self._pending_count = msg.metadata.num_pending
            self.metrics.pending.set(self._pending_count)

    async def _process(self, work: _Work) -> bool | None:
        """Push one group; True pushed, False transient failure, None nothing tried."""
        # Two batches may hold the same group: one push per group at a time, in
        # fetch order, so the group never goes back in time.
        group = work.scrape.group
        entry = self._group_locks.get(group)
        if entry is None:
            entry = self._group_locks[group] = _GroupLock()
        entry.users += 1
        try:
            async with entry.lock:
                return await self._process_locked(work)
        finally:
            entry.users -= 1
            if not entry.users:
                del self._group_locks[group]

    async def _process_locked(self, work: _Work) -> bool | None:
        scrape = work.scrape
        age = time.time() - scrape.scrape_time_ms / 1000
        if self.config.max_age and age > self.config.max_age:
            await self._drop(work, "too_old")
            log.info(
                "dropped scrape of %s/%s from %s: %.0fs old, max_age is %gs",
                scrape.job,
                scrape.instance,
                scrape.publisher,
                age,
                self.config.max_age,
                extra={"job": scrape.job, "target": scrape.instance, "publisher": scrape.publisher},
            )
            return None
        if scrape.scrape_time_ms <= self._last_pushed.get(scrape.group, -1):
            await self._drop(work, "superseded")
            return None
        if await self._newer_in_stream(work):
            await self._drop(work, "superseded")
            return None
        publisher = scrape.publisher if self.push_config.publisher_label else None
        path = group_path(scrape.job, scrape.instance, publisher, scrape.labels)
        async with self._limit:
            if self.breaker.state == OPEN:
                # Opened by pushes of this batch that ran before us: do not add to the pile.
                self.metrics.naks.labels("breaker_open").inc()
                await work.msg.nak(delay=self.breaker.cooldown)
                return None
            # Checked once a push slot is free: the checks of a whole batch run
            # one by one between answers, not back to back while answers wait.
            checked = await self._checked(work, path)
            if checked is None:
                return None
            body, types = checked
            conflict = self.types.conflict(path, types)
            if conflict:
                await self._push_down(work, path, "type_conflict", f"{path}: {conflict}")
                return None
            # Claimed before the push so two groups of one batch cannot both pass.
            previous = self.types.record(path, types)
            if time.monotonic() - work.fetched > self.stream.ack_wait / 3:
                # Waiting for a slot took a while: restart the ack timer.
                with contextlib.suppress(NATSError):
                    await work.msg.in_progress()
            t0 = time.perf_counter()
            result = await self.gateway.put(path, body)
            self.metrics.push_duration.observe(time.perf_counter() - t0)
            self.breaker.record(result.ok or result.permanent)
        if not result.ok:
            self.types.record(path, previous)
        return await self._settle(work, path, result)

    async def _checked(self, work: _Work, path: str) -> tuple[bytes, TypeSet] | None:
        """The body to push and its types; None when the message was terminated."""
        body, work.body = work.body, None  # held no longer than its push
        if body is None:
            # Beyond the batch's INFLATE_AHEAD. A body that turns out broken
            # only now has already made older scrapes of its group superseded.
            try:
                body = wire.decode_body(work.msg.data, work.encoding, self.config.body_size_limit)
            except wire.WireError as exc:
                await self._term(work.msg, exc.reason, str(exc))
                return None
        limits = body_limits(self.config.max_line_length, self.config.max_label_count)
        shape = body_shape(body)
        known = self.checked_shapes.get(shape)
        if known is not None:
            # Same lines as a body that passed, but for the numbers ending them;
            # shapes are kept only where such numbers cannot make a line too long.
            self.metrics.shape_hits.inc()
            return body, known
        # One pass splits every sample line; the checks below share it.
        samples = index_samples(body)
        violation = limits.violation(body, samples)
        if violation is not None:
            await self._push_down(work, path, *violation)
            return None
        body, stripped = strip_timestamps(body, samples)
        if stripped:
            self.metrics.timestamps_stripped.inc(stripped)
        body, renamed = rename_labels(body, self._grouping_labels)
        if renamed:
            self.metrics.labels_renamed.inc(renamed)
            samples = index_samples(body)
        try:
            types = check_body(body, samples)
        except ConsistencyError as exc:
            await self._push_down(work, path, "inconsistent", f"{path}: {exc}")
            return None
        if (
            not stripped
            and not renamed
            and shape_covers_samples(body, shape, len(samples))
            # A value can also come onto a line that had none: its space too.
            and longest_line(body) + SHAPE_VALUE_MAX + 1 <= limits.max_line_length
        ):
            self.checked_shapes.add(shape, types)
        return body, types

    async def _newer_in_stream(self, work: _Work) -> bool:
        """In a backlog, is a newer scrape of this group already stored? Then skip this one."""
        if self._per_subject == 1:
            return False  # the stream itself keeps only the newest scrape of a target
        try:
            meta = work.msg.metadata
            # Look when a backlog follows, or on a redelivery (another receiver
            # may have pushed a newer scrape of the group meanwhile).
            if meta.num_pending == 0 and meta.num_delivered <= 1:
                return False
            last = await self.conn.js.get_last_msg(self.stream.stream, work.msg.subject)
            return (last.seq or 0) > work.msg.metadata.sequence.stream
        except (NATSError, TimeoutError, ValueError) as exc:
            log.debug("cannot look up the newest message of %s: %s", work.msg.subject, exc)
            return False

    async def _settle(self, work: _Work, path: str, result: PushResult) -> bool:
        scrape = work.scrape
        if result.ok:
            self._ack_soon(work.msg)
            self._pushed_ok.inc()
            self.metrics.latency.observe(max(0.0, time.time() - scrape.scrape_time_ms / 1000))
            # Clamped to our clock: a poller whose clock ran ahead and is then set
            # right must not see its next scrapes taken for old ones.
            now_ms = int(time.time() * 1000)
            if scrape.scrape_time_ms > now_ms + 60_000:
                self.metrics.future_scrapes.inc()
                log.warning(
                    "scrape of %s/%s from %s is dated %.0fs in the future: check its clock",
                    scrape.job,
                    scrape.instance,
                    scrape.publisher,
                    (scrape.scrape_time_ms - now_ms) / 1000,
                )
            self._last_pushed[scrape.group] = min(scrape.scrape_time_ms, now_ms)
            seen = scrape.scrape_time_ms / 1000
            children = self._publisher_metrics(scrape.publisher)
            children.last_seen.set(seen)
            children.lag.set(max(0.0, time.time() - seen))
            self._publishers_seen[scrape.publisher] = seen
            return True
        if result.permanent:
            self.metrics.pushes.labels("rejected").inc()
            detail = f"Pushgateway refused {path} (HTTP {result.status}): {result.detail}"
            async with self._limit:
                return await self._push_down(work, path, "rejected", detail)
        await self._retry_later(work, path, result)
        return False

    async def _retry_later(self, work: _Work, path: str, result: PushResult) -> None:
        self.metrics.pushes.labels("failed").inc()
        delay = _nak_delay(work.msg)
        self.metrics.naks.labels("pushgateway_unavailable").inc()
        self._note_error(f"push to {path} failed: HTTP {result.status or '-'} {result.detail}")
        log.warning("%s; retrying in %.1fs", self.last_error, delay)
        await work.msg.nak(delay=delay)

    async def _push_down(self, work: _Work, path: str, reason: str, detail: str) -> bool:
        """The page cannot be pushed: replace its group with the health series and up 0.

        Else the group would go on showing the target's last good page, up 1
        included, for as long as the page stays bad. The message is then
        terminated (counted in dropped_total by `reason`); when even up 0
        cannot be pushed for now, it comes back and is tried again whole.
        """
        t0 = time.perf_counter()
        result = await self.gateway.put(path, DOWN_BODY)
        self.metrics.push_duration.observe(time.perf_counter() - t0)
        self.breaker.record(result.ok or result.permanent)
        if result.ok:
            self.types.record(path, DOWN_TYPES)
            now_ms = int(time.time() * 1000)
            self._last_pushed[work.scrape.group] = min(work.scrape.scrape_time_ms, now_ms)
            self.metrics.down_pushes.labels(reason).inc()
            detail += "; pushed up 0 in its place"
        elif result.permanent:
            detail += f"; up 0 was refused too (HTTP {result.status}): {result.detail}"
        else:
            await self._retry_later(work, path, result)
            return False
        await self._term(work.msg, reason, detail)
        return True

    def _ack_soon(self, msg: Msg) -> None:
        """Ack after ACK_DELAY, together with the acks of pushes answered meanwhile.

        Acks sent one by one cost a write each on both ends; a few milliseconds
        later they go out in one. A crash in between only means a redelivery,
        which is dropped as superseded.
        """
        self._acks.append(msg)
        if self._ack_timer is None:
            loop = asyncio.get_running_loop()
            self._ack_timer = loop.call_later(ACK_DELAY, self._send_acks)

    def _send_acks(self) -> None:
        self._ack_timer = None
        msgs, self._acks = self._acks, []
        task = asyncio.ensure_future(self._ack_all(msgs))
        self._ack_tasks.add(task)
        task.add_done_callback(self._ack_tasks.discard)

    async def _ack_all(self, msgs: list[Msg]) -> None:
        for msg in msgs:
            try:
                await msg.ack()
            except NATSError as exc:
                log.warning("cannot ack %s (it will be redelivered): %s", msg.subject, exc)

    async def _flush_acks(self) -> None:
        """Send every ack still waiting, and wait for those under way."""
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._send_acks()
        if self._ack_tasks:
            await asyncio.gather(*self._ack_tasks)

    async def _drop(self, work: _Work, reason: str) -> None:
        self.metrics.dropped.labels(reason).inc()
        await work.msg.ack()

    async def _term(self, msg: Msg, reason: str, detail: str) -> None:
        self.metrics.dropped.labels(reason).inc()
        self._note_error(f"{msg.subject}: {detail}")
        log.error(
            "discarding message on %s (%s): %s",
            msg.subject,
            reason,
            detail,
            extra={"subject": msg.subject, "reason": reason, "error": detail},
        )
        await msg.term()

    def reload(self, config: Config) -> None:
        """Apply a new config: limits, max_age and Pushgateway settings; NATS stays."""
        if config.receiver_stream != self.stream:
            log.warning("receiver_stream changed: that takes effect only after a restart")
        assert config.push_gateway is not None
        if config.push_gateway != self.push_config:
            self.push_config = config.push_gateway
            new = PushGateway(self.push_config)
            self._supervisor.spawn(self._swap_gateway(new), "swap-pushgateway")
            self.breaker.failures = self.push_config.breaker_failures
            self.breaker.cooldown = self.push_config.breaker_cooldown
            self._grouping_labels = _grouping_labels(self.push_config)
            self._limit = asyncio.Semaphore(self.push_config.concurrency)
        # The limits or the grouping labels may have changed what passes.
        self.checked_shapes.clear()
        self.config = config

    async def _swap_gateway(self, new: PushGateway) -> None:
        await new.start()
        old, self.gateway = self.gateway, new
        try:
            await asyncio.sleep(old.config.timeout)  # pushes in flight on the old pool end
        finally:
            # also when the receiver stops meanwhile: its sockets must not outlive it
            await old.close()

    # -- stale groups -------------------------------------------------------

    async def _stale_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await _first(stop.wait(), asyncio.sleep(self.push_config.stale_check_interval))
            if stop.is_set():
                return
            await self.stale_tick()

    async def stale_tick(self) -> int:
        """One stale-group check; returns how many groups were deleted."""
        if not self.push_config.stale_after or self._sub is None:
            return 0
        # Paused or breaker open: scrapes wait in the stream because we hold
        # them back, and every group would look stale.
        if self.paused or self.breaker.state != "closed":
            return 0
        ok, floor = await self._ack_floor()
        if not ok:
            return 0
        return await self.sweep_stale_groups(floor)

    async def _ack_floor(self) -> tuple[bool, int | None]:
        """Whether the consumer could be asked; then the stream sequence through
        which it has finished every message, None when nothing waits at all."""
        assert self._sub is not None
        try:
            info = await self._sub.consumer_info()
        except (NATSError, TimeoutError) as exc:
            log.debug("cannot read consumer info: %s", exc)
            return False, None
        self._pending_count = info.num_pending or 0
        self.metrics.pending.set(self._pending_count)
        if not info.num_pending and not info.num_ack_pending:
            return True, None
        return True, info.ack_floor.stream_seq if info.ack_floor else 0

    async def sweep_stale_groups(self, floor: int | None = None) -> int:
        """Delete our groups whose last push is older than stale_after.

        Ours: a publisher seen on the stream (now or earlier in this process)
        or listed in stale_publishers; nothing else is ever touched. With a
        `floor` (messages after that stream sequence are not finished yet), a
        group whose newest message on the stream lies beyond it is kept: a
        newer scrape of it is waiting or being pushed. That is what keeps a
        backlog after an outage from blanking the dashboards, without waiting
        for an instant when nothing at all is in flight.
        """
        sweep = self._sweep
        stale_after = self.push_config.stale_after
        try:
            groups = await self.gateway.push_times()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.metrics.stale_errors.inc()
            log.warning("cannot list Pushgateway groups for the stale check: %s", exc)
            return 0
        now = time.time()
        deleted = foreign = lookups = 0
        no_push_time: dict[str, float] = {}
        for group in groups:
            labels = group.labels
            path = path_of_labels(labels)
            publisher = labels.get("publisher")
            if path is None or publisher is None or "instance" not in labels:
                # Not our grouping key: someone else's, whatever its age.
                if group.pushed and now - group.pushed > stale_after:
                    foreign += 1
                continue
            since = group.pushed
            if not since:
                if not await self._is_ours(publisher):
                    continue
                since = no_push_time[path] = self._report_no_push_time(path, group.failed, now)
            age = now - since
            if age <= stale_after:
                continue
            if not await self._is_ours(publisher):
                foreign += 1
                self._report_foreign(publisher)
                continue
            key = (publisher, labels["job"], labels["instance"])
            if self._last_pushed.get(key, 0) / 1000 > now - stale_after:
                continue  # pushed by us since the listing was read
            if floor is not None:
                if lookups >= STALE_LOOKUPS:
                    sweep.skipped.labels("lookup_limit").inc()
                    continue
                lookups += 1
                reason = await self._waiting_in_stream(key, floor)
                if reason:
                    sweep.skipped.labels(reason).inc()
                    continue
            if await self._delete_stale(path, key):
                deleted += 1
                no_push_time.pop(path, None)
                what = "last push %.0fs ago" if group.pushed else "no successful push for %.0fs"
                log.info("deleted stale group %s: " + what, path, age)
        sweep.no_push_time = no_push_time
        sweep.sweeps.inc()
        sweep.foreign.set(foreign)
        sweep.without_push_time.set(len(no_push_time))
        sweep.last = {
            "time": now,
            "groups": len(groups),
            "deleted": deleted,
            "foreign_groups": foreign,
            "without_push_time": sorted(no_push_time)[:20],
        }
        return deleted

    async def _is_ours(self, publisher: str) -> bool:
        """Whether the publisher's groups are ours; reads the stream again now and then."""
        if (
            publisher in self._sweep.stream_publishers
            or publisher in self._publishers_seen
            or publisher in self.push_config.stale_publishers
        ):
            return True
        sweep = self._sweep
        if time.monotonic() - sweep.publishers_read_at < PUBLISHER_REFRESH:
            return False
        sweep.publishers_read_at = time.monotonic()
        assert self.conn.nc is not None
        try:
            found = await stream_publishers(self.conn.nc, self.stream.stream, self.stream.topic)
        except (NATSError, TimeoutError, ValueError) as exc:
            self.metrics.stale_errors.inc()
            log.warning("cannot read the publishers of stream %s: %s", self.stream.stream, exc)
            return False
        # Kept for the life of the process, even once their subjects age out.
        sweep.stream_publishers |= found
        return publisher in sweep.stream_publishers

    def _report_foreign(self, publisher: str) -> None:
        reported = self._sweep.reported_foreign
        if publisher in reported or len(reported) >= 1000:
            return
        reported.add(publisher)
        log.info(
            "leaving stale Pushgateway groups of publisher %r alone: not seen on stream %s;"
            " list it in push_gateway.stale_publishers if they are ours",
            publisher,
            self.stream.stream,
        )

    def _report_no_push_time(self, path: str, failed: float, now: float) -> float:
        """Log a group of ours that never had a successful push, once; since when it is so."""
        first_seen = self._sweep.no_push_time.get(path)
        if first_seen is None:
            first_seen = failed or now
            detail = f"last failed push {now - failed:.0f}s ago" if failed else "no push recorded"
            log.warning(
                "Pushgateway group %s has no successful push (push_time_seconds 0; %s)",
                path,
                detail,
            )
        return first_seen

    async def _waiting_in_stream(self, key: tuple[str, str, str], floor: int) -> str:
        """Why the group must be kept ('' if it need not): its newest message is unfinished."""
        subject = wire.subject_for(self.stream.topic, *key)
        try:
            last = await self.conn.js.get_last_msg(self.stream.stream, subject)
        except NotFoundError:
            return ""
        except (NATSError, TimeoutError) as exc:
            log.debug("cannot look up the newest message of %s: %s", subject, exc)
            return "lookup_failed"
        return "waiting_in_stream" if (last.seq or 0) > floor else ""

    async def _delete_stale(self, path: str, key: tuple[str, str, str] | None) -> bool:
        result = await self.gateway.delete(path)
        if not result.ok:
            self.metrics.stale_errors.inc()
            log.warning(
                "cannot delete stale group %s: HTTP %s %s", path, result.status, result.detail
            )
            return False
        self.types.record(path, None)
        if key is not None:
            self._last_pushed.pop(key, None)
        self.metrics.stale_deleted.inc()
        return True


async def _first(*aws: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of several awaitables finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _grouping_labels(config: PushGatewayConfig) -> frozenset[bytes]:
    """Labels the grouping key sets, which pushed series must not carry."""
    names = {b"job", b"instance"}
    if config.publisher_label:
        names.add(b"publisher")
    return frozenset(names)
