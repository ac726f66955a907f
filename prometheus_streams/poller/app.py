"""The poller: scrape every target on its schedule and publish each scrape to JetStream."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from nats.errors import Error as NATSError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from prometheus_streams import wire
from prometheus_streams.config import SELF_JOB, Config, Job, StreamConfig, Target
from prometheus_streams.exposition import (
    count_samples,
    drop_health_series,
    health_series,
    with_health,
)
from prometheus_streams.exposition_check import NATIVE_CHECK
from prometheus_streams.management import Management
from prometheus_streams.poller.discovery import FileDiscovery
from prometheus_streams.poller.scraper import RESULTS as SCRAPE_RESULTS
from prometheus_streams.poller.scraper import Scraper, ScrapeResult
from prometheus_streams.secret import redact_url
from prometheus_streams.service import Supervisor
from prometheus_streams.transport import Connection, bind_stream

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 5.0
PUBLISH_WORKERS = 32


def warn_without_c_check(native: object = NATIVE_CHECK) -> bool:
    """Log a warning when the package was built without _speedups; whether it did."""
    if native is not None:
        return False
    log.warning(
        "built without its C pass (prometheus_streams._speedups): checking a page"
        " costs the poller about 3 ms instead of 0.06 ms for a node_exporter page;"
        " reinstall with a C compiler and Python's headers (Debian: gcc python3-dev)"
    )
    return True


def scrape_jobs(config: Config, monitor_port: int) -> tuple[Job, ...]:
    """The configured jobs plus, with a monitor port, the poller scraping itself."""
    if not monitor_port:
        return config.jobs
    host = config.monitor_address
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - comparing, not binding
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    own = Job(
        name=SELF_JOB,
        targets=(Target(name=config.identity, url=f"http://{host}:{monitor_port}/metrics"),),
        scrape_interval=config.scrape_interval,
        scrape_timeout=config.scrape_timeout,
        body_size_limit=config.body_size_limit,
    )
    return (*config.jobs, own)


def stable_offset(key: str, interval: float) -> float:
    """A per-target phase inside the interval that survives restarts."""
    digest = hashlib.sha256(key.encode()).digest()
    return (int.from_bytes(digest[:8], "big") / 2**64) * interval


@dataclass
class TargetState:
    """What the status page shows of one target."""

    job: str
    name: str
    url: str
    last_scrape: float = 0.0
    last_duration: float = 0.0
    last_size: int = 0
    last_error: str = ""


# ScrapeResult.error values (poller/scraper.py), and success.
DROP_REASONS = ("superseded", "too_old", "too_large", "shutdown")


class PollerMetrics:
    """The poller's own metrics, on the registry it is given."""

    def __init__(self, registry: CollectorRegistry) -> None:
        p = "prometheus_streams_poller_"
        self.targets = Gauge(p + "targets", "Configured targets", ["poller_job"], registry=registry)
        self.scrapes = Counter(
            p + "scrapes_total", "Scrapes by outcome", ["poller_job", "result"], registry=registry
        )
        self.scraped_bytes = Counter(
            p + "scraped_bytes_total", "Bytes read from targets", ["poller_job"], registry=registry
        )
        self.scrape_duration = Histogram(
            p + "scrape_duration_seconds",
            "Time taken by scrapes",
            ["poller_job"],
            registry=registry,
        )
        self.missed = Counter(
            p + "missed_scrapes_total",
            "Scheduled scrapes skipped because the previous one overran",
            ["poller_job"],
            registry=registry,
        )
        self.published = Counter(
            p + "published_total", "Scrapes stored in JetStream", registry=registry
        )
        self.published_bytes = Counter(
            p + "published_bytes_total", "Compressed bytes stored in JetStream", registry=registry
        )
        self.publish_errors = Counter(
            p + "publish_errors_total", "Failed publish attempts", ["reason"], registry=registry
        )
        self.publish_duration = Histogram(
            p + "publish_duration_seconds", "Publish round trips to JetStream", registry=registry
        )
        self.dropped = Counter(
            p + "dropped_total", "Scrapes never published, by reason", ["reason"], registry=registry
        )
        self.replaced_lines = Counter(
            p + "replaced_health_lines_total",
            "Lines of a target's own up/scrape_* families dropped in favour of ours",
            ["poller_job"],
            registry=registry,
        )
        self.buffered = Gauge(
            p + "buffered_scrapes", "Scrapes waiting to be published", registry=registry
        )
        self.paused = Gauge(
            p + "paused",
            "1 while paused by an operator (only the own job is scraped)",
            registry=registry,
        )
        self.discovery_errors = Counter(
            p + "discovery_errors_total",
            "File-SD files that could not be read or parsed (their old targets are kept)",
            ["poller_job"],
            registry=registry,
        )
        # Known label values exist at 0 from the start, so rate() and absent() see them.
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        self.publish_errors.labels("TimeoutError")

    def known_job(self, job: Job) -> None:
        """Create a job's labelled series at 0 before its first scrape."""
        for result in SCRAPE_RESULTS:
            self.scrapes.labels(job.name, result)
        self.scraped_bytes.labels(job.name)
        self.missed.labels(job.name)
        self.replaced_lines.labels(job.name)
        if job.file_sd:
            self.discovery_errors.labels(job.name)


class Poller:
    """Runs every target on its own schedule and publishes through bounded buffers."""

    def __init__(self, config: Config, registry: CollectorRegistry, monitor_port: int = 0) -> None:
        assert config.poller_stream is not None, "config.require('poller') first"
        self.config = config
        self.stream: StreamConfig = config.poller_stream
        self.metrics = PollerMetrics(registry)
        self.jobs = scrape_jobs(config, monitor_port)
        self.conn = Connection(
            self.stream,
            "poller_stream",
            f"prometheus-streams poller {config.identity}",
            registry,
            on_reconnect=self._wake_publishers,
        )
        self.scraper = Scraper()
        self.stream_ready = False
        self.paused = False
        self.monitor_port = monitor_port
        self.targets: dict[tuple[str, str], TargetState] = {}
        # Running scrape loops by (job, target name), with what they were started for.
        self._loops: dict[tuple[str, str], tuple[Job, Target, asyncio.Task[None]]] = {}
        self._discovered: dict[str, tuple[Target, ...]] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self.recent_errors: list[tuple[float, str]] = []
        # Newest unpublished scrape per subject: memory stays bounded by the target count.
        self._pending: dict[str, tuple[wire.Scrape, bytes]] = {}
        self._wake = asyncio.Event()
        self._in_flight = 0
        self._supervisor = Supervisor("poller")
        self.management = Management(config.management, "poller", config.identity)

    # -- status -------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        """Ready once connected to NATS with the stream checked."""
        if not self.conn.connected.is_set():
            return False, self.conn.why_not_connected()
        if not self.stream_ready:
            return False, "stream not checked yet"
        return True, "ready"

    def status(self) -> dict[str, Any]:
        """Targets and their last scrape, for the status page."""
        return {
            "role": "poller",
            "identity": self.config.identity,
            "nats_connected": self.conn.connected.is_set(),
            "stream": self.stream.stream,
            "buffered_scrapes": len(self._pending),
            "paused": self.paused,
            "targets": [vars(t) for t in self.targets.values()],
            "recent_errors": [{"time": t, "error": e} for t, e in reversed(self.recent_errors)],
        }

    def _note_error(self, text: str) -> None:
        self.recent_errors.append((time.time(), text))
        del self.recent_errors[:-20]

    # -- operator actions -----------------------------------------------------

    def pause(self, why: str = "operator") -> bool:
        """Stop scraping targets (the own job goes on). Returns whether the state changed."""
        if self.paused:
            return False
        self.paused = True
        self.metrics.paused.set(1)
        log.warning("poller paused (%s): targets are not scraped", why)
        return True

    def resume(self, why: str = "operator") -> bool:
        """Scrape targets again. Returns whether the state changed."""
        if not self.paused:
            return False
        self.paused = False
        self.metrics.paused.set(0)
        log.warning("poller resumed (%s)", why)
        return True

    def reload(self, config: Config) -> None:
        """Apply a new config: targets start and stop, the NATS connection stays."""
        if config.poller_stream != self.stream:
            log.warning("poller_stream changed: that takes effect only after a restart")
        self.config = config
        self.jobs = scrape_jobs(config, self.monitor_port)
        self._discovered = {k: v for k, v in self._discovered.items() if self._job(k)}
        self._start_watchers()
        self._apply_targets()

    def _job(self, name: str) -> Job | None:
        return next((job for job in self.jobs if job.name == name), None)

    def _start_watchers(self) -> None:
        for task in self._watchers:
            task.cancel()
        self._watchers = []
        for job in self.jobs:
            if job.file_sd:
                watcher = FileDiscovery(job, self._on_discovered, self._on_discovery_error)
                self._watchers.append(self._supervisor.spawn(watcher.run(), f"file-sd:{job.name}"))

    def _on_discovered(self, job_name: str, targets: tuple[Target, ...]) -> None:
        log.info("job %s: file discovery found %d targets", job_name, len(targets))
        self._discovered[job_name] = targets
        self._apply_targets()

    def _on_discovery_error(self, job_name: str, message: str) -> None:
        self.metrics.discovery_errors.labels(job_name).inc()
        self._note_error(f"job {job_name}: {message}")
        log.error("file discovery for job %s: %s; keeping its previous targets", job_name, message)

    def _apply_targets(self) -> None:
        """Start loops for new or changed targets, stop those gone; leave the rest alone."""
        wanted: dict[tuple[str, str], tuple[Job, Target]] = {}
        for job in self.jobs:
            targets = job.targets + self._discovered.get(job.name, ())
            self.metrics.targets.labels(job.name).set(len(targets))
            self.metrics.known_job(job)
            for target in targets:
                wanted.setdefault((job.name, target.name), (job, target))
        for key, (job, target, task) in list(self._loops.items()):
            now = wanted.get(key)
            # Only what the loop uses counts: a target added to the job leaves the
            # job's other loops (and their schedules) alone.
            if now is None or _schedule(*now) != _schedule(job, target):
                task.cancel()
                del self._loops[key]
                if key not in wanted:
                    self.targets.pop(key, None)
                    log.info("stopped scraping %s/%s", *key)
        for key, (job, target) in wanted.items():
            if key in self._loops:
                continue
            self.targets[key] = TargetState(job.name, target.name, redact_url(target.url))
            task = self._supervisor.spawn(self._target_loop(job, target), "scrape")
            self._loops[key] = (job, target, task)

    # -- lifecycle ----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Scrape and publish until `stop` is set, then flush within the grace period."""
        warn_without_c_check()
        await self.scraper.start()
        self._supervisor.spawn(self._connect(), "nats-connect")
        for _ in range(PUBLISH_WORKERS):
            self._supervisor.spawn(self._publish_loop(), "publisher")
        self._apply_targets()
        self._start_watchers()
        log.info(
            "poller %s scraping %d targets in %d jobs",
            self.config.identity,
            len(self._loops),
            len(self.jobs),
        )
        await self._supervisor.wait(stop)
        loops = [task for _, _, task in self._loops.values()] + self._watchers
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await self._flush(self.config.shutdown_grace)
        await self._supervisor.cancel_all()
        await self.scraper.close()
        await self.conn.close()
        self._supervisor.raise_if_failed()

    async def _connect(self) -> None:
        await self.conn.connect()
        await bind_stream(self.conn, self.stream, f"check stream {self.stream.stream}")
        self.stream_ready = True
        self._wake.set()
        self._supervisor.spawn(self.management.run(self.conn, self), "management")

    async def _flush(self, grace: float) -> None:
        left = len(self._pending) + self._in_flight
        if not left:
            return
        log.info("publishing %d buffered scrapes before exit", left)
        deadline = time.monotonic() + grace
        while (self._pending or self._in_flight) and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.05)
        left = len(self._pending) + self._in_flight
        if left:
            log.warning("exiting with %d scrapes unpublished", left)
            self.metrics.dropped.labels("shutdown").inc(left)

    async def _wake_publishers(self) -> None:
        self._wake.set()

    # -- scraping -----------------------------------------------------------

    async def _target_loop(self, job: Job, target: Target) -> None:
        interval = job.scrape_interval
        key = f"{self.config.identity}/{job.name}/{target.name}"
        # Align to the wall clock so a restarted poller keeps each target's phase.
        offset = stable_offset(key, interval)
        now = time.time()
        first = now - (now % interval) + offset
        if first < now:
            first += interval
        # Then keep time with the monotonic clock: a wall-clock step (NTP at
        # boot) must not stop or bunch up the scrapes.
        loop = asyncio.get_running_loop()
        next_at = loop.time() + (first - now)
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if not self.paused or job.name == SELF_JOB:
                await self._scrape_once(job, target)
            next_at += interval
            now = loop.time()
            if next_at < now:
                missed = int((now - next_at) // interval) + 1
                self.metrics.missed.labels(job.name).inc(missed)
                next_at += missed * interval

    async def _scrape_once(self, job: Job, target: Target) -> None:
        # In its own frame so the page is freed on return: held across the sleep
        # in the loop, 10,000 targets kept ~70 KB each alive (the page inflated
        # and gzipped) and the poller's memory grew to ~800 MB.
        result = await self.scraper.scrape(target.url, job.scrape_timeout, job.body_size_limit)
        self._record(job, target, result)
        self._submit(job, target, result)

    def _record(self, job: Job, target: Target, result: ScrapeResult) -> None:
        self.metrics.scrapes.labels(job.name, "success" if result.ok else result.error).inc()
        self.metrics.scraped_bytes.labels(job.name).inc(len(result.body))
        self.metrics.scrape_duration.labels(job.name).observe(result.duration)
        state = self.targets[(job.name, target.name)]
        state.last_scrape = result.started
        state.last_duration = result.duration
        state.last_size = len(result.body)
        if result.ok:
            if state.last_error:
                log.info("target %s/%s is up again", job.name, target.name)
            state.last_error = ""
        else:
            if state.last_error != result.detail:
                log.warning(
                    "scrape of %s/%s (%s) failed: %s",
                    job.name,
                    target.name,
                    redact_url(target.url),
                    result.detail,
                    extra={"job": job.name, "target": target.name, "error": result.detail},
                )
            state.last_error = result.detail
            self._note_error(f"{job.name}/{target.name}: {result.detail}")

    def _submit(self, job: Job, target: Target, result: ScrapeResult) -> None:
        payload = build_payload(result)
        if payload.replaced:
            self.metrics.replaced_lines.labels(job.name).inc(payload.replaced)
        scrape = wire.Scrape(
            publisher=self.config.identity,
            job=job.name,
            instance=target.name,
            scrape_time_ms=int(result.started * 1000),
            body=b"",  # only the compressed payload is kept while waiting
            labels=target.labels,
        )
        subject = wire.subject_for(self.stream.topic, scrape.publisher, scrape.job, scrape.instance)
        if subject in self._pending:
            self.metrics.dropped.labels("superseded").inc()
        self._pending[subject] = (scrape, payload.data)
        self.metrics.buffered.set(len(self._pending))
        self._wake.set()

    # -- publishing ---------------------------------------------------------

    def _take(self) -> tuple[wire.Scrape, bytes] | None:
        while self._pending:
            subject = next(iter(self._pending))
            scrape, payload = self._pending.pop(subject)
            self.metrics.buffered.set(len(self._pending))
            age = time.time() - scrape.scrape_time_ms / 1000
            if self.config.max_age and age > self.config.max_age:
                self.metrics.dropped.labels("too_old").inc()
                log.warning(
                    "dropping scrape of %s/%s: %.0fs old, beyond max_age",
                    scrape.job,
                    scrape.instance,
                    age,
                )
                continue
            return scrape, payload
        return None

    def _requeue(self, scrape: wire.Scrape, payload: bytes) -> None:
        subject = wire.subject_for(self.stream.topic, scrape.publisher, scrape.job, scrape.instance)
        if subject in self._pending:
            self.metrics.dropped.labels("superseded").inc()  # a newer scrape already waits
        else:
            self._pending[subject] = (scrape, payload)
            self.metrics.buffered.set(len(self._pending))

    async def _publish_loop(self) -> None:
        backoff = 0.1
        while True:
            if not (self.stream_ready and self.conn.connected.is_set()) or not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            taken = self._take()
            if taken is None:
                continue
            scrape, payload = taken
            self._in_flight += 1
            try:
                await self._publish(scrape, payload)
            except (NATSError, TimeoutError) as exc:
                self.metrics.publish_errors.labels(type(exc).__name__).inc()
                log.warning(
                    "publish of %s/%s failed: %s",
                    scrape.job,
                    scrape.instance,
                    exc,
                    extra={"job": scrape.job, "target": scrape.instance, "error": str(exc)},
                )
                self._requeue(scrape, payload)
            else:
                backoff = 0.1
                continue
            finally:
                self._in_flight -= 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _publish(self, scrape: wire.Scrape, compressed: bytes) -> None:
        subject, payload, headers = wire.encode(self.stream.topic, scrape, payload=compressed)
        # The server counts headers and body against max_payload, and closes the
        # connection of a client that sends more.
        limit = self.conn.max_payload
        if len(payload) + wire.header_size(headers) > limit:
            self.metrics.dropped.labels("too_large").inc()
            log.warning(
                "scrape of %s/%s is %d bytes compressed, above the server's max_payload %d; "
                "publishing up 0 instead",
                scrape.job,
                scrape.instance,
                len(payload),
                limit,
            )
            down = replace(scrape, body=health_series(False, 0.0, 0))
            subject, payload, headers = wire.encode(self.stream.topic, down)
            if len(payload) + wire.header_size(headers) > limit:
                log.error(
                    "even up 0 for %s/%s does not fit the server's max_payload %d",
                    scrape.job,
                    scrape.instance,
                    limit,
                )
                return
        t0 = time.perf_counter()
        # Asynchronous publish shares one reply subscription instead of a request
        # inbox per message; the ack is still awaited before the scrape counts as sent.
        ack = await self.conn.js.publish_async(
            subject, payload, wait_stall=PUBLISH_TIMEOUT, stream=self.stream.stream, headers=headers
        )
        try:
            await asyncio.wait_for(ack, timeout=PUBLISH_TIMEOUT)
        except TimeoutError:
            ack.cancel()
            raise
        self.metrics.publish_duration.observe(time.perf_counter() - t0)
        self.metrics.published.inc()
        self.metrics.published_bytes.inc(len(payload))
        log.debug(
            "published %s/%s: %d bytes on %s", scrape.job, scrape.instance, len(payload), subject
        )


@dataclass(frozen=True)
class Payload:
    """A scrape's message body, gzipped, and how many of the target's own health lines went."""

    data: bytes
    replaced: int = 0


def build_payload(result: ScrapeResult, level: int = 1) -> Payload:
    """The gzipped body: the page plus its health series, or up 0 alone on failure.

    A page the target sent gzipped is forwarded as it came, with the health
    series as a second gzip member (members concatenate), so the common case
    costs an inflate to count samples and no deflate of the page at all.
    """
    if not result.ok:
        health = health_series(False, result.duration, 0)
        return Payload(gzip.compress(health, compresslevel=level, mtime=0))
    body, replaced = drop_health_series(result.body)
    samples = count_samples(body)
    if result.gzip is not None and not replaced:
        health = health_series(True, result.duration, samples)
        if body and not body.endswith(b"\n"):
            health = b"\n" + health
        return Payload(result.gzip + gzip.compress(health, compresslevel=level, mtime=0))
    plain = with_health(body, result.duration, samples)
    return Payload(gzip.compress(plain, compresslevel=level, mtime=0), replaced)


def _schedule(job: Job, target: Target) -> tuple[object, ...]:
    """What a target's scrape loop depends on."""
    return (job.scrape_interval, job.scrape_timeout, job.body_size_limit, target)
