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
import logging
import time
from typing import Any

from prometheus_streams import wire
from prometheus_streams.config import Config, RemoteWriteConfig
from prometheus_streams.exposition import count_samples
from prometheus_streams.receiver.decode import take_body
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
from prometheus_streams.receiver.outputs.rw_batch import Batcher, Job, answer
from prometheus_streams.receiver.outputs.rw_client import (
    CONCURRENCY,
    Abort,
    Refused,
    StoreClient,
    refusal_reason,
)
from prometheus_streams.receiver.outputs.rw_metrics import (
    DROP_REASONS,
    REQUEST_RESULTS,
    RemoteWriteMetrics,
)
from prometheus_streams.receiver.outputs.rw_series import Group, Samples, scrape_samples
from prometheus_streams.receiver.outputs.rw_stale import StaleSweep
from prometheus_streams.receiver.remote_write import protocol
from prometheus_streams.receiver.remote_write.text import ParseError, parse_page
from prometheus_streams.secret import redact_url

__all__ = ["RemoteWriteMetrics", "RemoteWriteOutput"]

log = logging.getLogger(__name__)

# Caught up with the stream, a fetch first lets scrapes gather for this long
# and then takes them all in one request (benchmarks/rw_side_by_side.py, 200
# targets every 5 s: the receiver's CPU per sample about -35 %; one fetch, one
# lane pass and one ack flush a message was most of a trickle's cost). A scrape
# reaches the store at most this much later; vmagent flushes once a second.
FETCH_LINGER = 0.25


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
        self._groups: dict[tuple[str, str, str], Group] = {}
        self._stale = StaleSweep(self.label, self._groups, context, metrics)
        self._batches = Batcher()
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._client = StoreClient(rw, metrics, self._note, context.spawn)
        self._stopping = False
        self._refusals_logged: set[str] = set()
        self.last_error = ""
        self.last_error_time = 0.0
        self._written = False
        self.partition = (0, 1)  # (k, n): which publishers this instance writes
        for name in ("samples", "stale_markers", "retried"):
            getattr(metrics, name).labels(self.label)
        self._samples_sent = metrics.samples.labels(self.label)  # kept: one lookup a request
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
        self._client.open()

    def hold_back(self) -> float:
        """Never: a store that is down holds its requests, not the fetching."""
        return 0.0

    def fetch_linger(self) -> float:
        """FETCH_LINGER, within batch_send_deadline: a request waits to fill anyway."""
        return min(FETCH_LINGER, self.rw.batch_send_deadline)

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
        samples = self._samples(scrape, group, body)
        if not isinstance(samples, Samples):
            return samples
        for reason, count in samples.dropped.items():
            self.metrics.dropped.labels(self.label, reason).inc(count)
        job = Job(item, samples.encoded, samples.count, asyncio.get_running_loop().create_future())
        self._waiting += 1
        try:
            await self._batches.queue.put(job)
            outcome = await job.done
        finally:
            self._waiting -= 1
        if outcome is DELIVERED:
            if samples.stale:
                self.metrics.stale_markers.labels(self.label).inc(samples.stale)
            if group is None:
                group = self._groups[scrape.group] = Group()
            group.series = samples.present
            group.whole = not samples.dropped
            group.honor_labels = scrape.honor_labels
            group.last_ms = scrape.scrape_time_ms
            group.last_seen = time.monotonic()
        return outcome

    def _samples(self, scrape: wire.Scrape, group: Group | None, body: bytes) -> Samples | Outcome:
        """The scrape's samples for a request, or why it has none (a page that does not parse)."""
        refused: set[bytes] | None = None
        if (
            group is not None
            and group.whole
            and group.honor_labels == scrape.honor_labels
            and protocol.encode_known_page is not None
        ):
            # Most scrapes have the same series as the last written one, in the
            # same order, labels merged the same way: then the page is read and
            # encoded in one C pass.
            page = protocol.encode_known_page(body, group.series, scrape.scrape_time_ms)
            if page is not None:
                # What filter_rows would ask with this page's keys (the same
                # dict as the last page's, which the tracker recognises).
                refused = self.ctx.series.admit(scrape.group, group.series)
                if not refused:
                    return Samples([page], len(group.series), group.series, 0, {})
        try:
            rows = parse_page(body)
        except ParseError as exc:
            self.metrics.dropped.labels(self.label, "bad_page").inc(count_samples(body))
            return failed(
                "bad_page", f"page of {scrape.job}/{scrape.instance} line {exc.line}: {exc}"
            )
        if refused is None:
            rows = self.ctx.series.filter_rows(scrape.group, rows)
        else:  # admitted above already: the tracker counts a page once
            rows = [row for row in rows if row[0] not in refused]
        return scrape_samples(scrape, group, rows, self.config.publisher_label)

    # -- requests ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Gather queued scrapes into requests and send them until `stop`; then the stale sweep."""
        sweeper = self.ctx.spawn(
            self._stale.run(stop, lambda: self.rw, self._post_markers),
            f"stale markers {self.label}",
        )
        try:
            while not stop.is_set():
                batch = await self._batches.next(
                    stop, self.rw.max_samples_per_send, self.rw.batch_send_deadline
                )
                if batch is None:
                    break
                await self._slots.acquire()
                task = self.ctx.spawn(self._send_batch(batch, stop), f"write {self.label}")
                task.add_done_callback(lambda _: self._slots.release())
        finally:
            sweeper.cancel()
            self._stopping = True
            self._batches.drain(retry("shutting_down", 0.0))

    async def _send_batch(self, batch: list[Job], stop: asyncio.Event) -> None:
        """Send a batch; on a refusal, send its scrapes one by one to find the one refused."""
        try:
            await self._send(batch, stop)
        except Abort:
            for job in batch:
                answer(job, retry("not_written", 0.0))
            return
        except Refused as exc:
            if len(batch) > 1:
                for job in batch:
                    await self._send_batch([job], stop)
                return
            (job,) = batch
            reason = refusal_reason(exc.status, exc.answer)
            self.metrics.dropped.labels(self.label, reason).inc(job.samples)
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
            answer(job, failed(f"remote_write_{reason}", str(exc)))
            return
        now = time.time()
        newest = max(job.item.scrape.scrape_time_ms for job in batch) / 1000
        self._newest_written = max(self._newest_written, newest)
        self._lag_at_write = max(0.0, now - newest)
        self._written = True
        for job in batch:
            answer(job, DELIVERED)

    async def _send(self, batch: list[Job], stop: asyncio.Event) -> None:
        """Write every sample of `batch`, in order, in requests of max_samples_per_send."""
        limit = self.rw.max_samples_per_send
        total = sum(job.samples for job in batch)
        if total <= limit:  # the batcher's batches: one request, a page's samples in one bytes
            await self._post([series for job in batch for series in job.series], total, batch, stop)
        else:  # a scrape larger than the limit (or a limit lowered by a reload since)
            flat = [one for job in batch for one in _one_each(job)]
            for start in range(0, len(flat), limit):
                part = flat[start : start + limit]
                await self._post(part, len(part), batch, stop)
        self._samples_sent.inc(total)

    async def _post(
        self, series: list[bytes], samples: int, batch: list[Job], stop: asyncio.Event
    ) -> None:
        """One request, retried in place until 2xx, keeping `batch` in progress meanwhile."""

        async def touch() -> None:
            for job in batch:
                await self.ctx.in_progress(job.item.msg)

        await self._client.post(
            series,
            samples,
            stop,
            lambda: not self._stopping and self._leading(),
            touch,
            self.ctx.stream.ack_wait / 3,
        )

    async def _post_markers(self, series: list[bytes], stop: asyncio.Event) -> None:
        """One request of stale markers, with no scrape held in progress."""
        await self._post(series, len(series), [], stop)

    def _note(self, error: str) -> None:
        self.last_error = error
        self.last_error_time = time.time()
        self.ctx.note_error(error)

    # -- life cycle -------------------------------------------------------------

    def reload(self, config: Config) -> None:
        """Take the new settings of this output (matched by name); the session is replaced."""
        self.config = config
        for rw in config.remote_write:
            # Every time, not only when the settings differ: a rotated password or
            # certificate keeps its file name, so the settings compare equal.
            if rw.name == self.label:
                self.rw = rw
                self._client.reload(rw)

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
        await self._client.close()


def _one_each(job: Job) -> list[bytes]:
    """The job's TimeSeries fields one sample each (a repeated page comes as one bytes)."""
    if len(job.series) == job.samples:
        return job.series
    return protocol.split_series(b"".join(job.series))
