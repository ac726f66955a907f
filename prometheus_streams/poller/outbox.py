"""The poller's outbox: the newest unpublished scrape per target, and its publish workers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from nats.errors import Error as NATSError

from prometheus_streams import wire
from prometheus_streams.config import StreamConfig
from prometheus_streams.exposition import health_series
from prometheus_streams.poller import LOGGER_NAME
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

# A message as JetStream gets it: subject, body, headers.
Message = tuple[str, bytes, dict[str, str]]
# A scrape waiting: itself, its compressed page, and the term it was scraped in.
Pending = tuple[wire.Scrape, bytes, int]
# A publish the scrape sent itself, until its ack: its deadline (monotonic), the
# scrape, its payload and term, and when it was sent (perf_counter).
Direct = tuple[float, wire.Scrape, bytes, int, float]
# A target's subject, headers (Msg-Id and scrape time to be set), the Msg-Id
# without the scrape time, and the headers' wire size without the two times.
# Made per scrape (escaping the instance's `:` twice, the id, the size) they
# cost 2-6 % of the poller's CPU (docs/performance.md, "Poller, round two").
Template = tuple[str, dict[str, str], str, int]
TEMPLATES = 100_000


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
        self.replica = replica  # sent in a header by a member of an HA group
        self._pending: dict[str, Pending] = {}
        # Read when /metrics is scraped, not set twice per scrape.
        metrics.buffered.set_function(lambda: len(self._pending))
        self._templates: dict[tuple[object, ...], Template] = {}
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
        if busy or self._outage.active or not self.readiness.ok:
            self.put(scrape, payload, term)
            return
        # A page that would fill nats-py's buffer in this loop turn (large
        # pages answered together) goes to a worker: the scrape's task must
        # not wait for the socket to drain (nats-py's forced flush).
        if len(payload) + SEND_MARGIN > self.conn.write_room():
            self.put(scrape, payload, term)
            return
        self._in_flight += 1
        try:
            sent = await self._send(scrape, payload, term)
        except Exception as exc:  # counted by type; a worker tries again
            self._in_flight -= 1
            self._failed(scrape, payload, term, exc)
            return
        except BaseException:
            # Cancelled (a reload, the exit): a worker publishes it.
            self._in_flight -= 1
            self._requeue(scrape, payload, term)
            self._wake_for_pending()
            raise
        if sent is None:
            self._in_flight -= 1
            return
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
        subject = self._subject(scrape, term)
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

    def _subject(self, scrape: wire.Scrape, term: int) -> str:
        return self._template(scrape, term)[0]

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
        subject = self._subject(scrape, term)
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
        message = self._fitting(scrape, compressed, term)
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
            subject = self._subject(scrape, term)
            log.debug("published %s/%s: %d bytes on %s", scrape.job, scrape.instance, size, subject)

    def _encode(self, scrape: wire.Scrape, term: int, compressed: bytes | None = None) -> Message:
        """The message; a member of an HA group names its replica and term (subject and id stay)."""
        subject, payload, headers = wire.encode(self.stream.topic, scrape, payload=compressed)
        if self.replica is not None:
            headers[wire.H_REPLICA] = self.replica
            # The term's fencing token: the receiver's backstop switches to a
            # newer term at once and knows a fenced leader's late messages.
            headers[wire.H_TERM] = str(term)
        return subject, payload, headers

    def _template(self, scrape: wire.Scrape, term: int) -> Template:
        """What every message of this target in this term repeats, made once."""
        key: tuple[object, ...] = (scrape.publisher, scrape.job, scrape.instance, scrape.labels)
        key += (scrape.honor_labels, self.stream.topic, self.replica, term)
        template = self._templates.get(key)
        if template is None:
            subject, _, headers = self._encode(scrape, term, b"")
            # The id ends in the scrape time, which each message sets with
            # H_SCRAPE_TIME; both ASCII digits, so characters count as bytes.
            stamp = str(scrape.scrape_time_ms)
            size = wire.header_size(headers) - 2 * len(stamp)
            template = (subject, headers, headers[wire.H_MSG_ID][: -len(stamp)], size)
            if len(self._templates) >= TEMPLATES:
                self._templates.clear()  # targets come and go: a bound, rarely reached
            self._templates[key] = template
        return template

    def _message(self, scrape: wire.Scrape, term: int, compressed: bytes) -> tuple[Message, int]:
        """As _encode, with the target's template; and the headers' size on the wire."""
        subject, template, id_prefix, size = self._template(scrape, term)
        stamp = str(scrape.scrape_time_ms)
        headers = template.copy()  # the same order: the keys are set in place
        headers[wire.H_MSG_ID] = id_prefix + stamp
        headers[wire.H_SCRAPE_TIME] = stamp
        return (subject, compressed, headers), size + 2 * len(stamp)

    def _fitting(self, scrape: wire.Scrape, compressed: bytes, term: int) -> Message | None:
        """The message, or up 0 in its place when too large; None when even that is."""
        message, header_size = self._message(scrape, term, compressed)
        # The server counts headers and body against max_payload, and closes the
        # connection of a client that sends more.
        limit = self.conn.max_payload
        if len(compressed) + header_size <= limit:
            return message
        self.metrics.dropped.labels("too_large").inc()
        log.warning(
            "scrape of %s/%s is %d bytes compressed, above the server's max_payload %d; "
            "publishing up 0 instead",
            scrape.job,
            scrape.instance,
            len(compressed),
            limit,
        )
        down = replace(scrape, body=health_series(False, 0.0, 0))
        subject, payload, headers = self._encode(down, term)
        if len(payload) + wire.header_size(headers) <= limit:
            return subject, payload, headers
        log.error(
            "even up 0 for %s/%s does not fit the server's max_payload %d",
            scrape.job,
            scrape.instance,
            limit,
        )
        return None
