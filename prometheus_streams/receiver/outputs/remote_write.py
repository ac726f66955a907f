"""The remote-write output: every scrape, at its own time, into a Prometheus remote-write store.

Each delivered scrape becomes one sample per series at the scrape's time (or
the body's own timestamp), labelled as Prometheus labels a scraped target
(`job`, `instance`, the target's labels, clashing body labels renamed
`exported_*`) plus the publisher label, and staleness markers for the
series that the scrape no longer has. Scrapes are batched into requests of
at most `max_samples_per_send` samples. A request the store cannot take for
now (5xx, 429, 401/403, no answer) is retried in place, with backoff, while its
messages stay unacked and in progress: retrying by redelivery would let a
newer scrape of the same series overtake it, which stores without
out-of-order ingestion refuse. Order across receivers is the lane's lease
(receiver/app.py); order within one is the core's one delivery per group.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Gauge, Histogram

from prometheus_streams import wire
from prometheus_streams.config import Config, RemoteWriteConfig
from prometheus_streams.exposition import count_samples
from prometheus_streams.receiver.decode import take_body
from prometheus_streams.receiver.metrics import counter, own
from prometheus_streams.receiver.output import (
    DELIVERED,
    Context,
    Delivery,
    Outcome,
    Wants,
    failed,
    retry,
    skipped,
)
from prometheus_streams.receiver.remote_write import protocol
from prometheus_streams.receiver.remote_write.text import ParseError, parse_page, series_labels
from prometheus_streams.secret import redact_text, redact_url

log = logging.getLogger(__name__)

# A batch is sent once no scrape joined it for this long, or when full, or at
# batch_send_deadline. Scrapes of a steady poller arrive one by one (200 targets
# every 5 s: one per 25 ms): at 10 ms nearly every scrape was a request of its
# own, and a request costs the receiver about as much as encoding a scrape.
LINGER = 0.05
# Requests in flight at once per output; one group is in at most one of them.
CONCURRENCY = 4
REQUEST_RESULTS = ("success", "retried", "refused")
# dropped_total reasons known in advance (at 0 from the start); refusals add http_<status>.
DROP_REASONS = (
    "not_newer",
    "bad_page",
    "bad_label",
    "duplicate_series",
    "out_of_order",
    "duplicate",
    "out_of_bounds",
)
# Refusals of our credentials are retried like a 5xx, not dropped: during a
# rotation the store may already want the new secret while we still send the
# old one, and the stream keeps the scrapes until a reload brings the new one.
AUTH_REFUSALS = (401, 403)


class RemoteWriteMetrics:
    """The remote-write outputs' metrics, one child per output (label `output`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("output",)
        self.samples = counter(
            registry, "remote_write_samples", "Samples written (2xx) by output", labels
        )
        self.stale_markers = counter(
            registry,
            "remote_write_stale_markers",
            "Staleness markers written for series that vanished, by output",
            labels,
        )
        self.retried = counter(
            registry,
            "remote_write_samples_retried",
            "Samples sent again after a 5xx, a 429 or no answer, by output",
            labels,
        )
        self.dropped = counter(
            registry,
            "remote_write_samples_dropped",
            "Samples not written, by output and reason",
            ("output", "reason"),
        )
        self.requests = counter(
            registry, "remote_write_requests", "Requests by output and result", ("output", "result")
        )
        self.duration = Histogram(
            "remote_write_request_duration_seconds",
            "Time taken by remote-write requests",
            labels,
            **own(registry),
        )
        self.lag = Gauge(
            "remote_write_lag_seconds",
            "How far behind the output is, by output: the age of the newest scrape written"
            " (growing while scrapes wait in the stream)",
            labels,
            **own(registry),
        )
        self.pending = Gauge(
            "remote_write_pending",
            "Messages in the stream not yet fetched by the output's consumer",
            labels,
            **own(registry),
        )
        self.leading = Gauge(
            "remote_write_leading",
            "1 while this receiver holds the output's lease and writes, else 0",
            labels,
            **own(registry),
        )


@dataclass
class _Group:
    """What the output remembers of one target: its series in the last written scrape."""

    series: dict[bytes, bytes] = field(default_factory=dict)  # series key -> encoded labels
    # Every line of the last written scrape is in `series`, in page order (nothing dropped).
    whole: bool = False
    last_ms: int = 0  # scrape time of the last written scrape
    last_seen: float = field(default_factory=time.monotonic)


@dataclass
class _Job:
    """One scrape's samples waiting for their request."""

    item: Delivery
    series: list[bytes]  # encoded TimeSeries fields, one sample each
    done: asyncio.Future[Outcome]


class _Refused(Exception):
    """The store refused a request for good (a 4xx other than 429)."""

    def __init__(self, status: int, answer: str) -> None:
        super().__init__(answer)  # it starts with "HTTP <status>:" already
        self.status = status
        self.answer = answer


class _Abort(Exception):
    """Sending stopped: shutting down, or the lease was lost."""


def refusal_reason(status: int, answer: str) -> str:
    """A dropped_total reason for a store's refusal, from its status and answer."""
    text = answer.lower()
    for needle, reason in (
        ("out of order", "out_of_order"),
        ("out-of-order", "out_of_order"),
        ("duplicate sample", "duplicate"),
        ("out of bounds", "out_of_bounds"),
        ("too old", "out_of_bounds"),
    ):
        if needle in text:
            return reason
    return f"http_{status}"


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), or None."""
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


class RemoteWriteOutput:
    """Writes every scrape to one remote-write endpoint, in order per series."""

    wants = Wants.EVERY_SCRAPE

    def __init__(
        self,
        config: Config,
        rw: RemoteWriteConfig,
        metrics: RemoteWriteMetrics,
        context: Context,
    ) -> None:
        self.config = config
        self.rw = rw
        self.ctx = context
        self.metrics = metrics
        self.label = rw.name
        self._groups: dict[tuple[str, str, str], _Group] = {}
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._carry: _Job | None = None  # taken from the queue, first of the next batch
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False
        self._refusals_logged: set[str] = set()
        self._auth_refused = False
        self.last_error = ""
        self.last_error_time = 0.0
        self._written = False
        self.partition = (0, 1)  # (k, n): which publishers this instance writes
        for name in ("samples", "stale_markers", "retried"):
            getattr(metrics, name).labels(self.label)
        for result in REQUEST_RESULTS:
            metrics.requests.labels(self.label, result)
        for reason in DROP_REASONS:
            metrics.dropped.labels(self.label, reason)
        # Read at each scrape of /metrics: set only when sending, it would stay 0
        # on an idle leader and 1 on a receiver that lost the lease while idle.
        metrics.leading.labels(self.label).set_function(lambda: 1.0 if self.ctx.fence() else 0.0)
        self._lag_at_write = 0.0
        context.series.output = rw.name
        self._waiting = 0  # scrapes handed to deliver() and not answered yet
        self._newest_written = 0.0  # scrape time (s) of the newest scrape written
        metrics.lag.labels(self.label).set_function(self.lag)

    def lag(self) -> float:
        """How far behind the output is: while scrapes wait, the age of the newest written;
        when none waits, that age when it was written (0 before the first write)."""
        if self._newest_written and (self._waiting or self.ctx.pending() > 0):
            return max(self._lag_at_write, time.time() - self._newest_written)
        return self._lag_at_write

    @property
    def name(self) -> str:
        """The endpoint, for the logs (user info redacted)."""
        return f"remote_write {self.label} ({redact_url(self.rw.url)})"

    async def start(self) -> None:
        """Open the HTTP session."""
        self._session = self._new_session()

    def _new_session(self) -> aiohttp.ClientSession:
        ssl_context = self.rw.ssl_context()
        connector = aiohttp.TCPConnector(
            ssl=ssl_context if ssl_context is not None else True, limit=CONCURRENCY
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.rw.remote_timeout),
            auto_decompress=False,
        )

    def hold_back(self) -> float:
        """Never: a store that is down holds its requests, not the fetching."""
        return 0.0

    def fetch_size(self, batch: int) -> int:
        """The configured batch."""
        return batch

    # -- one scrape -----------------------------------------------------------

    async def deliver(self, item: Delivery) -> Outcome:
        """Turn one scrape into samples, queue them for a request, answer when it is written."""
        scrape = item.scrape
        if self._stopping:
            return retry("shutting_down", 0.0)
        try:
            body = take_body(item, self.config.body_size_limit)
        except wire.WireError as exc:
            return failed(exc.reason, str(exc))
        group = self._groups.get(scrape.group)
        if group is not None and scrape.scrape_time_ms <= group.last_ms:
            # A newer scrape of this target is written already; the store would
            # refuse this one as out of order (it came back from another receiver).
            self.metrics.dropped.labels(self.label, "not_newer").inc(count_samples(body))
            return skipped("not_newer")
        try:
            rows = parse_page(body)
        except ParseError as exc:
            self.metrics.dropped.labels(self.label, "bad_page").inc(count_samples(body))
            return failed(
                "bad_page", f"page of {scrape.job}/{scrape.instance} line {exc.line}: {exc}"
            )
        rows = self.ctx.series.filter_rows(scrape.group, rows)
        series, present, stale, whole = self._series(scrape, group, rows)
        job = _Job(item, series, asyncio.get_running_loop().create_future())
        self._waiting += 1
        try:
            await self._queue.put(job)
            outcome = await job.done
        finally:
            self._waiting -= 1
        if outcome is DELIVERED:
            if stale:
                self.metrics.stale_markers.labels(self.label).inc(stale)
            if group is None:
                group = self._groups[scrape.group] = _Group()
            group.series = present
            group.whole = whole
            group.last_ms = scrape.scrape_time_ms
            group.last_seen = time.monotonic()
        return outcome

    def _series(
        self,
        scrape: wire.Scrape,
        group: _Group | None,
        rows: list[tuple[bytes, float, int | None]],
    ) -> tuple[list[bytes], dict[bytes, bytes], int, bool]:
        """The scrape's encoded samples and stale markers, the series it has (key -> labels),
        how many of the samples are stale markers, and whether no line was dropped."""
        known = group.series if group is not None else {}
        at = scrape.scrape_time_ms
        encode = protocol.encode_series
        if (
            group is not None
            and group.whole
            and len(rows) == len(known)
            and [row[0] for row in rows] == list(known)
        ):
            # The same lines as the last written scrape, in the same order (most
            # scrapes): every label set is known and unique, and nothing went stale.
            same = [
                encode(labels, ((value, at if stamp is None else stamp),))
                for labels, (_, value, stamp) in zip(known.values(), rows, strict=True)
            ]
            return same, known, 0, True
        target = self._target_labels(scrape)
        present: dict[bytes, bytes] = {}
        written: set[bytes] = set()
        out: list[bytes] = []
        dropped: dict[str, int] = {}
        for key, value, timestamp in rows:
            labels = known.get(key) or present.get(key)
            if labels is None:
                try:
                    labels = protocol.encode_labels(_merge(series_labels(key), target))
                except ParseError as exc:
                    dropped[exc.reason] = dropped.get(exc.reason, 0) + 1
                    continue
            if labels in written:
                dropped["duplicate_series"] = dropped.get("duplicate_series", 0) + 1
                continue
            written.add(labels)
            present[key] = labels
            out.append(
                protocol.encode_series(labels, ((value, at if timestamp is None else timestamp),))
            )
        stale = 0
        for key, labels in known.items():
            if key not in present and labels not in written:
                out.append(protocol.encode_series(labels, ((protocol.STALE_NAN, at),)))
                stale += 1
        for reason, count in dropped.items():
            self.metrics.dropped.labels(self.label, reason).inc(count)
        return out, present, stale, not dropped

    def _target_labels(self, scrape: wire.Scrape) -> list[tuple[str, str]]:
        labels = [("job", scrape.job), ("instance", scrape.instance), *scrape.labels]
        if self.config.publisher_label:
            labels.append((self.config.publisher_label, scrape.publisher))
        return labels

    # -- requests ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Gather queued scrapes into requests and send them until `stop`; then the stale sweep."""
        sweeper = self.ctx.spawn(self._sweep(stop), f"stale markers {self.label}")
        try:
            while not stop.is_set():
                first, self._carry = self._carry or await _first(self._queue, stop), None
                if first is None:
                    break
                batch = [first]
                await self._gather(batch)
                await self._slots.acquire()
                task = self.ctx.spawn(self._send_batch(batch, stop), f"write {self.label}")
                task.add_done_callback(lambda _: self._slots.release())
        finally:
            sweeper.cancel()
            self._stopping = True
            if self._carry is not None:
                _answer(self._carry, retry("shutting_down", 0.0))
            while not self._queue.empty():
                job = self._queue.get_nowait()
                _answer(job, retry("shutting_down", 0.0))

    async def _gather(self, batch: list[_Job]) -> None:
        """Add queued scrapes to `batch` until full, idle for LINGER, or the deadline.

        A scrape that would take the batch past max_samples_per_send starts the
        next one: filled past it, a batch was a full request and a small one.
        """
        limit = self.rw.max_samples_per_send
        deadline = time.monotonic() + self.rw.batch_send_deadline
        samples = len(batch[0].series)
        while samples < limit:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                job = await asyncio.wait_for(self._queue.get(), min(LINGER, left))
            except TimeoutError:
                break
            if samples + len(job.series) > limit:
                self._carry = job
                break
            batch.append(job)
            samples += len(job.series)

    async def _send_batch(self, batch: list[_Job], stop: asyncio.Event) -> None:
        """Send a batch; on a refusal, send its scrapes one by one to find the one refused."""
        try:
            await self._send(batch, stop)
        except _Abort:
            for job in batch:
                _answer(job, retry("not_written", 0.0))
            return
        except _Refused as exc:
            if len(batch) > 1:
                for job in batch:
                    await self._send_batch([job], stop)
                return
            (job,) = batch
            reason = refusal_reason(exc.status, exc.answer)
            self.metrics.dropped.labels(self.label, reason).inc(len(job.series))
            self._note(f"{self.label} refused a scrape of {job.item.scrape.instance}: {exc}")
            if reason not in self._refusals_logged:
                self._refusals_logged.add(reason)
                log.error(
                    "remote write %s refused a request (%s), dropped; further refusals for"
                    " this reason are only counted: %s",
                    self.label,
                    reason,
                    exc,
                )
            _answer(job, failed(f"remote_write_{reason}", str(exc)))
            return
        now = time.time()
        newest = max(job.item.scrape.scrape_time_ms for job in batch) / 1000
        self._newest_written = max(self._newest_written, newest)
        self._lag_at_write = max(0.0, now - newest)
        self._written = True
        for job in batch:
            _answer(job, DELIVERED)

    async def _send(self, batch: list[_Job], stop: asyncio.Event) -> None:
        """Write every sample of `batch`, in order, in requests of max_samples_per_send."""
        flat = [series for job in batch for series in job.series]
        limit = self.rw.max_samples_per_send
        for start in range(0, max(1, len(flat)), limit):
            chunk = flat[start : start + limit]
            await self._post(
                protocol.compress(protocol.write_request(chunk)), len(chunk), batch, stop
            )
        self.metrics.samples.labels(self.label).inc(len(flat))

    async def _post(
        self, body: bytes, samples: int, batch: list[_Job], stop: asyncio.Event
    ) -> None:
        """One request, retried in place until 2xx; raises _Refused or _Abort."""
        delay = self.rw.min_backoff
        touched = time.monotonic()
        while True:
            if stop.is_set() or self._stopping or not self._leading():
                raise _Abort()
            if time.monotonic() - touched > self.ctx.stream.ack_wait / 3:
                for job in batch:
                    await self.ctx.in_progress(job.item.msg)
                touched = time.monotonic()
            status, answer, wait = await self._request(body)
            if 200 <= status < 300:
                self.metrics.requests.labels(self.label, "success").inc()
                if self._auth_refused:
                    self._auth_refused = False
                    log.info("remote write %s: the store accepts our credentials again", self.label)
                return
            if status in AUTH_REFUSALS:
                self._auth_refused_once(answer)
            elif status and status != 429 and status < 500:
                self.metrics.requests.labels(self.label, "refused").inc()
                raise _Refused(status, answer)
            self.metrics.requests.labels(self.label, "retried").inc()
            self.metrics.retried.labels(self.label).inc(samples)
            self._note(f"{self.label}: {answer}")
            pause = wait if wait is not None else delay
            delay = min(self.rw.max_backoff, delay * 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(pause, 0.001))

    def _auth_refused_once(self, answer: str) -> None:
        """Log the first refusal of our credentials until the store accepts them again."""
        if self._auth_refused:
            return
        self._auth_refused = True
        log.error(
            "remote write %s: the store refused our credentials (%s); retrying with backoff,"
            " nothing is dropped while the stream keeps the scrapes (max_age): check %s,"
            " and reload (SIGHUP) after rotating them",
            self.label,
            answer,
            self.rw.describe_auth(),
        )

    async def _request(self, body: bytes) -> tuple[int, str, float | None]:
        """POST one request: (status or 0 for no answer, what it said, Retry-After)."""
        assert self._session is not None
        # Identity: the answer is logged and searched for the refusal's reason, and
        # VictoriaMetrics gzips it for a client that accepts gzip (aiohttp's default).
        headers = {**self.rw.request_headers(), **protocol.HEADERS, "Accept-Encoding": "identity"}
        started = time.monotonic()
        try:
            async with self._session.post(
                self.rw.url, data=body, headers=headers, server_hostname=self.rw.tls_server_name
            ) as response:
                text = (await response.content.read(512)).decode("utf-8", "replace").strip()
                # Some stores quote the credentials they refused (vmauth: the token).
                text = redact_text(text, self._secrets())
                wait = retry_after(response.headers.get("Retry-After"))
                return response.status, f"HTTP {response.status}: {text}", wait
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return 0, f"no answer: {exc or type(exc).__name__}", None
        finally:
            self.metrics.duration.labels(self.label).observe(time.monotonic() - started)

    def _secrets(self) -> tuple[str, ...]:
        """The credentials we send, never to be shown."""
        given = [s.reveal() for s in (self.rw.password, self.rw.bearer_token) if s is not None]
        # Basic auth's user:password in base64, as it went into the header.
        given.append(self.rw.request_headers().get("Authorization", "").partition(" ")[2])
        return tuple(sorted({s for s in given if s}, key=len, reverse=True))

    def _note(self, error: str) -> None:
        self.last_error = error
        self.last_error_time = time.time()
        self.ctx.note_error(error)

    # -- targets that went away ------------------------------------------------

    async def _sweep(self, stop: asyncio.Event) -> None:
        """Mark the series of groups silent past stale_after stale, once the consumer caught up."""
        stale_after = self.rw.stale_after
        if not stale_after:
            return
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(stale_after / 4, 15.0))
            if stop.is_set() or not self.ctx.fence():
                continue
            silent = [
                (key, group)
                for key, group in self._groups.items()
                if time.monotonic() - group.last_seen > stale_after
            ]
            if not silent:
                continue
            # Not while a backlog is being written: its scrapes would then come after the markers.
            asked, floor = await self.ctx.ack_floor()
            if not asked or floor is not None:
                continue
            await self._mark_stale(silent, stop)

    async def _mark_stale(
        self, silent: list[tuple[tuple[str, str, str], _Group]], stop: asyncio.Event
    ) -> None:
        at = int(time.time() * 1000)
        series = [
            protocol.encode_series(labels, ((protocol.STALE_NAN, max(at, group.last_ms + 1)),))
            for _, group in silent
            for labels in group.series.values()
        ]
        try:
            for start in range(0, len(series), self.rw.max_samples_per_send):
                chunk = series[start : start + self.rw.max_samples_per_send]
                await self._post(
                    protocol.compress(protocol.write_request(chunk)), len(chunk), [], stop
                )
        except (_Abort, _Refused) as exc:
            log.warning("remote write %s: stale markers not written: %s", self.label, exc)
            return
        for key, _ in silent:
            self._groups.pop(key, None)
        self.metrics.stale_markers.labels(self.label).inc(len(series))
        log.info(
            "remote write %s: %d targets silent for %gs, %d series marked stale",
            self.label,
            len(silent),
            self.rw.stale_after,
            len(series),
        )

    # -- life cycle -------------------------------------------------------------

    def reload(self, config: Config) -> None:
        """Take the new settings of this output (matched by name); the session is replaced."""
        self.config = config
        for rw in config.remote_write:
            # Every time, not only when the settings differ: a rotated password or
            # certificate keeps its file name, so the settings compare equal.
            if rw.name == self.label:
                self.rw = rw
                old, self._session = self._session, self._new_session()
                if old is not None:
                    self.ctx.spawn(self._close_later(old), "close old session")

    async def _close_later(self, session: aiohttp.ClientSession) -> None:
        """Close a replaced session once the requests under way on it have ended."""
        try:
            await asyncio.sleep(self.rw.remote_timeout)
        finally:
            await session.close()

    def status(self) -> dict[str, Any]:
        """This output's entry of the status page's remote_write list."""
        m = self.metrics
        dropped = sum(
            sample.value
            for family in m.dropped.collect()
            for sample in family.samples
            if sample.name.endswith("_total") and sample.labels.get("output") == self.label
        )
        k, n = self.partition
        return {
            "name": self.label if n == 1 else f"{self.label} {k + 1}/{n}",
            "url": redact_url(self.rw.url),
            "leading": self._leading(),
            "pending": self.ctx.pending(),
            "lag_seconds": self.lag() if self._written else None,
            "samples_sent": int(m.samples.labels(self.label)._value.get()),
            "samples_retried": int(m.retried.labels(self.label)._value.get()),
            "samples_dropped": int(dropped),
            "targets": len(self._groups),
            "last_error": self.last_error,
            "last_error_time": self.last_error_time or None,
        }

    def _leading(self) -> bool:
        """Whether we may write now (the `remote_write_leading` gauge reads the same)."""
        return self.ctx.fence()

    async def close(self) -> None:
        """Close the HTTP session."""
        self._stopping = True
        if self._session is not None:
            await self._session.close()


def _merge(body: list[tuple[str, str]], target: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A body series' labels with the target's, as Prometheus does without honor_labels."""
    taken = {name for name, _ in target}
    present = {name for name, _ in body}
    merged: list[tuple[str, str]] = []
    for name, value in body:
        if name in taken:
            new = "exported_" + name
            while new in present or new in taken:
                new = "exported_" + new
            present.add(new)
            name = new
        merged.append((name, value))
    return merged + [(name, value) for name, value in target if value]


def _answer(job: _Job, outcome: Outcome) -> None:
    if not job.done.done():
        job.done.set_result(outcome)


async def _first(queue: asyncio.Queue[_Job], stop: asyncio.Event) -> _Job | None:
    """The next queued scrape, or None once `stop` is set."""
    getter = asyncio.ensure_future(queue.get())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((getter, stopper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if getter.done():
        return getter.result()
    getter.cancel()
    return None
