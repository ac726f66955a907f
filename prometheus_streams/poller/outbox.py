"""The poller's outbox: the newest unpublished scrape per target, and its publish workers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from nats.errors import Error as NATSError

from prometheus_streams import wire
from prometheus_streams.config import StreamConfig
from prometheus_streams.poller import LOGGER_NAME
from prometheus_streams.poller.messages import TEMPLATES, Messages
from prometheus_streams.poller.metrics import PollerMetrics
from prometheus_streams.runtime import Readiness
from prometheus_streams.service import Supervisor
from prometheus_streams.transport import Connection
from prometheus_streams.transport.retry import Outage, leaderless

log = logging.getLogger(LOGGER_NAME)

PUBLISH_TIMEOUT = 5.0
# While the stream does not answer (a leader election in a cluster), one worker
# tries this often, with this bound on each try; an election takes seconds.
PROBE_INTERVAL = 0.25
PROBE_TIMEOUT = 1.0
PUBLISH_WORKERS = 32
# Room left in nats-py's write buffer for a publish's subject and headers.
SEND_MARGIN = 4096
# How often unanswered direct publishes are looked at: their deadline is
# PUBLISH_TIMEOUT, kept to within this much.
EXPIRE_INTERVAL = 0.5

# A scrape waiting: itself, its compressed page, and the term it was scraped in.
Pending = tuple[wire.Scrape, bytes, int]
# A publish the scrape sent itself, until its ack: its deadline (monotonic), the
# scrape, its payload and term, and when it was sent (perf_counter).
Direct = tuple[float, wire.Scrape, bytes, int, float]


def always_leading() -> int:
    """The fence of a poller in no HA group: one endless term."""
    return 1


class Outbox:
    """Holds one scrape per subject, so memory stays bounded by the target count."""

    def __init__(
        self,
        conn: Connection,
        stream: StreamConfig,
        metrics: PollerMetrics,
        readiness: Readiness,
        max_age: float,
        fence: Callable[[], int] = always_leading,
        replica: str | None = None,
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.metrics = metrics
        self.readiness = readiness
        self.max_age = max_age  # the poller sets it again on reload
        # The term this poller leads its HA group in (0: it does not); a
        # scrape goes out only in the term it was scraped in, checked right
        # before the publish (docs/design.md, "HA pollers").
        self.fence = fence
        self.messages = Messages(stream.topic, metrics, replica)
        self._pending: dict[str, Pending] = {}
        # Read when /metrics is scraped, not set twice per scrape.
        metrics.buffered.set_function(lambda: len(self._pending))
        # Each idle worker waits on a future of its own, so that a scrape put
        # wakes one worker, not all: waking all 32 for each scrape cost
        # the poller a tenth of its CPU (docs/performance.md, "Against vmagent").
        self._idle: deque[asyncio.Future[None]] = deque()
        self._in_flight = 0
        self._direct: dict[asyncio.Future[Any], Direct] = {}
        # Per subject, the scrape time of the newest scrape handed to nats-py: a
        # failed older one is not published after it (a store would refuse it
        # as out of order; the receiver drops it as not newer).
        self._newest_sent: dict[str, int] = {}
        self._outage = Outage(log, f"stream {stream.stream} (publishing)")

    def __len__(self) -> int:
        return len(self._pending)

    def start(self, supervisor: Supervisor, workers: int = PUBLISH_WORKERS) -> None:
        """Start the publish workers under the supervisor."""
        for _ in range(workers):
            supervisor.spawn(self._publish_loop(), "publisher")
        supervisor.spawn(self._expire_loop(), "publish-deadlines")

    def wake(self) -> None:
        """Let every idle worker look again (connected, stream checked)."""
        idle, self._idle = self._idle, deque()
        for waiter in idle:
            if not waiter.done():
                waiter.set_result(None)

    def _wake_one(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _wait_idle(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        await waiter

    async def send(self, scrape: wire.Scrape, payload: bytes, term: int = 1) -> None:
        """Publish a scrape at once when nothing waits before it, else queue it for the workers.

        Sent by the scrape's own task, its ack read by a callback: no worker
        woken, no task waiting per ack, no timer per publish (the expiry loop
        keeps the deadlines), about half the loop turns of a scrape
        (docs/performance.md, "Issue 16, fifth pass: the poller").
        """
        busy = self._pending or self._in_flight >= PUBLISH_WORKERS
        # A page that would fill nats-py's buffer in this loop turn (large
        # pages answered together) goes to a worker too: the scrape's task
        # must not wait for the socket to drain (nats-py's forced flush).
        full = len(payload) + SEND_MARGIN > self.conn.write_room()
        if busy or full or self._outage.active or not self.readiness.ok:
            self.put(scrape, payload, term)
            return
        self._in_flight += 1
        sent = None
        try:
            sent = await self._send(scrape, payload, term)
        except Exception as exc:  # counted by type; a worker tries again
            self._failed(scrape, payload, term, exc)
        except BaseException:
            self._retry_later(scrape, payload, term)  # cancelled (a reload, the exit)
            raise
        finally:
            if sent is None:
                self._in_flight -= 1
        if sent is not None:
            ack, t0 = sent
            self._direct[ack] = (time.monotonic() + PUBLISH_TIMEOUT, scrape, payload, term, t0)
            ack.add_done_callback(self._answered)

    def _answered(self, ack: asyncio.Future[Any]) -> None:
        entry = self._direct.pop(ack, None)
        if entry is None:
            return
        _, scrape, payload, term, t0 = entry
        self._in_flight -= 1
        # Cancelled only by the expiry loop, past the deadline.
        failure = TimeoutError() if ack.cancelled() else ack.exception()
        if failure is None:
            self._acked(scrape, len(payload), term, t0)
            if self._outage.answered() is not None:
                self.wake()
            return
        self._failed(scrape, payload, term, failure)

    def _failed(self, scrape: wire.Scrape, payload: bytes, term: int, exc: BaseException) -> None:
        """A direct publish failed: counted, and a worker tries again (with backoff, probing)."""
        self.metrics.publish_errors.labels(type(exc).__name__).inc()
        self._retry_later(scrape, payload, term)

    def _retry_later(self, scrape: wire.Scrape, payload: bytes, term: int) -> None:
        """Leave the scrape to a worker, unless a newer one of its target is ahead of it."""
        self._requeue(scrape, payload, term)
        self._wake_for_pending()

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(EXPIRE_INTERVAL)
            now = time.monotonic()
            # In the order sent, so in deadline order: the first not due ends it.
            for ack, entry in list(self._direct.items()):
                if entry[0] > now:
                    break
                ack.cancel()  # _answered counts it as a timeout

    def put(self, scrape: wire.Scrape, payload: bytes, term: int = 1) -> None:
        """Queue a scrape made in `term`; an older one of the same target waiting is superseded."""
        subject = self.messages.subject(scrape, term)
        if subject in self._pending:
            self.metrics.dropped.labels("superseded").inc()
        self._pending[subject] = (scrape, payload, term)
        self._wake_for_pending()

    def _wake_for_pending(self) -> None:
        if self._outage.active:
            self.wake()  # the prober may be idle: waking one could miss it
        else:
            self._wake_one()

    async def flush(self, grace: float) -> None:
        """Publish what is buffered within `grace`; count the rest as dropped."""
        left = len(self._pending) + self._in_flight
        if not left:
            return
        log.info("publishing %d buffered scrapes before exit", left)
        deadline = time.monotonic() + grace
        while (self._pending or self._in_flight) and time.monotonic() < deadline:
            self.wake()
            await asyncio.sleep(0.05)
        left = len(self._pending) + self._in_flight
        if left:
            log.warning("exiting with %d scrapes unpublished", left)
            self.metrics.dropped.labels("shutdown").inc(left)

    @property
    def replica(self) -> str | None:
        """The HA replica named in each message's headers (None: no HA group)."""
        return self.messages.replica

    @replica.setter
    def replica(self, replica: str | None) -> None:
        self.messages.replica = replica

    def _take(self) -> Pending | None:
        while self._pending:
            subject = next(iter(self._pending))
            scrape, payload, term = self._pending.pop(subject)
            age = scrape.beyond(self.max_age)
            if age is not None:
                self.metrics.dropped.labels("too_old").inc()
                log.warning(
                    "dropping scrape of %s/%s: %.0fs old, beyond max_age",
                    scrape.job,
                    scrape.instance,
                    age,
                )
                continue
            return scrape, payload, term
        return None

    def _requeue(self, scrape: wire.Scrape, payload: bytes, term: int) -> None:
        subject = self.messages.subject(scrape, term)
        if subject in self._pending or self._newest_sent.get(subject, 0) > scrape.scrape_time_ms:
            # A newer scrape already waits, or was sent meanwhile.
            self.metrics.dropped.labels("superseded").inc()
        else:
            self._pending[subject] = (scrape, payload, term)

    async def _publish_loop(self) -> None:
        backoff = 0.1
        probing = False  # this worker tries the stream while the others wait
        while True:
            probing = probing and self._outage.active
            if not self.readiness.ok or not self._pending or (self._outage.active and not probing):
                await self._wait_idle()
                continue
            taken = self._take()
            if taken is None:
                continue
            scrape, payload, term = taken
            self._in_flight += 1
            try:
                await self._publish(
                    scrape, payload, term, PROBE_TIMEOUT if probing else PUBLISH_TIMEOUT
                )
            except (NATSError, TimeoutError) as exc:
                self.metrics.publish_errors.labels(type(exc).__name__).inc()
                self._requeue(scrape, payload, term)
                failure: BaseException | None = exc
            else:
                failure = None
            finally:
                self._in_flight -= 1
            if failure is None:
                backoff = 0.1
                if self._outage.answered() is not None:
                    self.wake()
                continue
            if leaderless(failure):
                # An election (or a stream gone): one worker probes at a short
                # interval and wakes the others the moment the stream answers,
                # instead of each backing off on its own past the election.
                if self._outage.failed(
                    str(failure) or type(failure).__name__,
                    f"holding scrapes, trying again every {PROBE_INTERVAL}s",
                ):
                    probing = True
                if probing:
                    await asyncio.sleep(PROBE_INTERVAL)
                continue
            log.warning(
                "publish of %s/%s failed: %s",
                scrape.job,
                scrape.instance,
                failure,
                extra={"job": scrape.job, "target": scrape.instance, "error": str(failure)},
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _publish(
        self, scrape: wire.Scrape, compressed: bytes, term: int, ack_within: float = PUBLISH_TIMEOUT
    ) -> None:
        sent = await self._send(scrape, compressed, term)
        if sent is None:
            return
        ack, t0 = sent
        try:
            await asyncio.wait_for(ack, timeout=ack_within)
        except TimeoutError:
            ack.cancel()
            raise
        self._acked(scrape, len(compressed), term, t0)

    async def _send(
        self, scrape: wire.Scrape, compressed: bytes, term: int
    ) -> tuple[asyncio.Future[Any], float] | None:
        """The publish's ack to come and when it was sent; None when nothing is sent."""
        message = self.messages.fitting(scrape, compressed, term, self.conn.max_payload)
        if message is None:
            return None
        subject, payload, headers = message
        # The fence, as late as we can check it: nothing between here and the
        # bytes leaving through nats-py's flusher waits on I/O.
        if self.fence() != term:
            self.metrics.dropped.labels("not_leader").inc()
            log.debug("not publishing %s/%s: not leading its term", scrape.job, scrape.instance)
            return None
        t0 = time.perf_counter()
        # Asynchronous publish shares one reply subscription instead of a request
        # inbox per message; the ack is still awaited before the scrape counts as sent.
        # No wait_stall: with it nats-py wraps its semaphore's acquire in wait_for,
        # a task per publish; we never have more acks pending (PUBLISH_WORKERS)
        # than its 4,000, so the acquire never waits.
        ack = await self.conn.js.publish_async(
            subject, payload, stream=self.stream.stream, headers=headers
        )
        if self._newest_sent.get(subject, 0) < scrape.scrape_time_ms:
            if len(self._newest_sent) >= TEMPLATES:
                self._newest_sent.clear()  # as the templates: a bound, rarely reached
            self._newest_sent[subject] = scrape.scrape_time_ms
        return ack, t0

    def _acked(self, scrape: wire.Scrape, size: int, term: int, t0: float) -> None:
        self.metrics.publish_duration.observe(time.perf_counter() - t0)
        self.metrics.published.inc()
        self.metrics.published_bytes.inc(size)
        if log.isEnabledFor(logging.DEBUG):
            subject = self.messages.subject(scrape, term)
            log.debug("published %s/%s: %d bytes on %s", scrape.job, scrape.instance, size, subject)
