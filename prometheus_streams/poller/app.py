"""The poller: scrape every target on its schedule and publish each scrape to JetStream."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from prometheus_streams import wire
from prometheus_streams.config import Config, Job, StreamConfig, Target
from prometheus_streams.exposition import count_samples
from prometheus_streams.exposition_check import NATIVE_CHECK
from prometheus_streams.management import Management
from prometheus_streams.poller import LOGGER_NAME
from prometheus_streams.poller.discovery import FileDiscovery
from prometheus_streams.poller.ha import HAMember
from prometheus_streams.poller.metrics import PollerMetrics
from prometheus_streams.poller.outbox import Outbox
from prometheus_streams.poller.payload import Payload, build_payload, build_rewritten_payload
from prometheus_streams.poller.remote_sd import RemoteDiscovery
from prometheus_streams.poller.rewrite import SeriesCache
from prometheus_streams.poller.schedule import Schedule, TargetKey, scrape_jobs
from prometheus_streams.poller.scraper import Scraper, ScrapeResult, with_params
from prometheus_streams.poller.target_relabel import relabel_target
from prometheus_streams.poller.top import PageSeries
from prometheus_streams.runtime import (
    PauseGate,
    Phases,
    Readiness,
    RecentErrors,
    SharedRole,
    warn_without_speedups,
)
from prometheus_streams.secret import redact_url
from prometheus_streams.service import Supervisor
from prometheus_streams.transport import Connection, bind_stream

log = logging.getLogger(LOGGER_NAME)


def warn_without_c_check(native: object = NATIVE_CHECK) -> bool:
    """Log a warning when the package was built without _speedups; whether it did."""
    cost = "checking a page costs the poller about 3 ms instead of 0.06 ms for a node_exporter page"
    return warn_without_speedups(native, cost, log)


class Poller(SharedRole, Phases):
    """Runs every target on its own schedule and publishes through bounded buffers."""

    def __init__(self, config: Config, registry: CollectorRegistry, monitor_port: int = 0) -> None:
        assert config.poller_stream is not None, "config.require('poller') first"
        self.config = config
        self.stream: StreamConfig = config.poller_stream
        self.metrics = PollerMetrics(registry)
        # Per job: its success, bytes and duration children (labels() per scrape costs).
        self._job_children: dict[str, tuple[Counter, Counter, Histogram]] = {}
        self.jobs = scrape_jobs(config, monitor_port)
        self.conn = Connection(
            self.stream,
            "poller_stream",
            f"prometheus-streams poller {config.identity}",
            registry,
            on_reconnect=self._wake_publishers,
        )
        self.scraper = Scraper()
        self.monitor_port = monitor_port
        self.gate = PauseGate("poller", self.metrics.paused, "targets are not scraped", log)
        self.errors = RecentErrors()
        self.readiness = Readiness(self.conn)
        self._supervisor = Supervisor("poller")
        self.schedule = Schedule(
            self._supervisor, self._scrape_once, self.gate, self.metrics.missed
        )
        self.targets = self.schedule.targets
        self.ha = HAMember(config.ha, config.identity, self.conn, registry) if config.ha else None
        self._ha_stop = asyncio.Event()
        self.outbox = Outbox(self.conn, self.stream, self.metrics, self.readiness, config.max_age)
        if self.ha is not None:
            self.outbox.fence = self.ha.fence
            self.outbox.replica = self.ha.config.replica
        self._discovered: dict[str, tuple[Target, ...]] = {}
        # From http_sd and dns_sd, apart: a job may have file_sd too.
        self._remote: dict[str, tuple[Target, ...]] = {}
        self._watchers: list[asyncio.Task[None]] = []
        # Jobs with more targets than their target_limit: the reason their targets fail.
        self._over_limit: dict[str, str] = {}
        self._series: dict[TargetKey, SeriesCache] = {}
        self.management = Management(config.management, "poller", config.identity)
        self.series = PageSeries(config.identity)

    # -- status -------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Targets and their last scrape, for the status page."""
        return {
            **self._shared_status("poller"),
            "buffered_scrapes": len(self.outbox),
            "targets": [vars(t) for t in self.targets.values()],
            "ha": None if self.ha is None else self.ha.status(),
        }

    def top(self, n: int) -> dict[str, Any]:
        """The top offenders in series among the pages scraped last."""
        return {"role": "poller", **self.series.top(n)}

    # -- configuration ------------------------------------------------------

    def reload(self, config: Config) -> None:
        """Apply a new config: targets start and stop, the NATS connection stays."""
        if config.poller_stream != self.stream:
            log.warning("poller_stream changed: that takes effect only after a restart")
        if config.ha != self.config.ha:
            log.warning("ha changed: that takes effect only after a restart")
        self.config = config
        self.outbox.max_age = config.max_age
        self.jobs = scrape_jobs(config, self.monitor_port)
        self._discovered = {k: v for k, v in self._discovered.items() if self._job(k)}
        self._remote = {k: v for k, v in self._remote.items() if self._job(k)}
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
            if job.http_sd or job.dns_sd:
                remote = RemoteDiscovery(job, self._on_remote, self._on_remote_error)
                self._watchers.append(self._supervisor.spawn(remote.run(), f"sd:{job.name}"))

    def _on_discovered(self, job_name: str, targets: tuple[Target, ...]) -> None:
        log.info("job %s: file discovery found %d targets", job_name, len(targets))
        self._discovered[job_name] = targets
        self._apply_targets()

    def _on_discovery_error(self, job_name: str, message: str) -> None:
        self.metrics.discovery_errors.labels(job_name).inc()
        self._note_error(f"job {job_name}: {message}")
        log.error("file discovery for job %s: %s; keeping its previous targets", job_name, message)

    def _on_remote(self, job_name: str, targets: tuple[Target, ...]) -> None:
        log.info("job %s: http/dns discovery found %d targets", job_name, len(targets))
        self._remote[job_name] = targets
        self._apply_targets()

    def _on_remote_error(self, job_name: str, mechanism: str, message: str) -> None:
        self.metrics.sd_refresh_failures.labels(job_name, mechanism).inc()
        self._note_error(f"job {job_name}: {mechanism}_sd: {message}")

    def _apply_targets(self) -> None:
        """Loops for the configured and discovered targets, each target once."""
        wanted: dict[TargetKey, tuple[Job, Target]] = {}
        for job in self.jobs:
            targets = (
                job.targets + self._discovered.get(job.name, ()) + self._remote.get(job.name, ())
            )
            kept = [t for t in map(lambda t: relabel_target(job, t), targets) if t is not None]
            if job.relabel_configs:
                self.metrics.targets_dropped.labels(job.name).set(len(targets) - len(kept))
            self.metrics.targets.labels(job.name).set(len(kept))
            self.metrics.known_job(job)
            if job.target_limit and len(kept) > job.target_limit:
                self._over_limit[job.name] = (
                    f"target_limit exceeded (number of targets: {len(kept)}, "
                    f"limit: {job.target_limit})"
                )
            else:
                self._over_limit.pop(job.name, None)
            for target in kept:
                wanted.setdefault((job.name, target.name), (job, target))
        self._series = {k: v for k, v in self._series.items() if k in wanted}
        self.schedule.apply(wanted, self.config.identity)
        self.series.forget(set(wanted))

    # -- lifecycle ----------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Scrape and publish until `stop` is set, then flush within the grace period."""
        await self.run_phases(stop, self.config.shutdown_grace)

    async def start(self) -> None:
        """Start the scraper, the connect task, the publishers and the target loops."""
        warn_without_c_check()
        await self.scraper.start()
        self._supervisor.spawn(self._connect(), "nats-connect")
        self.outbox.start(self._supervisor)
        self._apply_targets()
        self._start_watchers()
        log.info(
            "poller %s scraping %d targets in %d jobs",
            self.config.identity,
            len(self.schedule),
            len(self.jobs),
        )

    async def shutdown(self, grace: float) -> None:
        """Stop scraping, publish what is buffered within `grace`, then close."""
        watchers = self._watchers
        for task in watchers:
            task.cancel()
        await asyncio.gather(self.schedule.stop(), *watchers, return_exceptions=True)
        await self.outbox.flush(grace)
        self._ha_stop.set()
        if self.ha is not None:
            await self.ha.release()  # the standby need not wait for the lease to expire
        await self._release(self.scraper.close, self.conn.close)

    async def _connect(self) -> None:
        await self.conn.connect()
        await bind_stream(self.conn, self.stream, f"check stream {self.stream.stream}")
        self.readiness.stream_checked = True
        self.outbox.wake()
        if self.ha is not None:
            self._supervisor.spawn(self.ha.run(self._ha_stop), f"ha lease {self.ha.config.group}")
        self._supervisor.spawn(self.management.run(self.conn, self), "management")

    async def _wake_publishers(self) -> None:
        self.outbox.wake()

    # -- scraping -----------------------------------------------------------

    async def _scrape_once(self, job: Job, target: Target) -> None:
        # In its own frame so the page is freed on return: held across the sleep
        # in the loop, every target would keep its last page (inflated and
        # gzipped) alive, and a poller of many targets would grow by that much.
        # The job as configured now: a reload that changes only credentials or
        # TLS leaves the loops running (their schedule is the same).
        http = self._job(job.name) or job
        # A standby does not scrape (docs/design.md, "HA pollers": the targets
        # carry one poller's load, not two); its loops keep their phase.
        term = self.outbox.fence()
        if not term:
            return
        over_limit = self._over_limit.get(job.name)
        if over_limit:
            result = ScrapeResult(time.time(), 0.0, error="target_limit", detail=over_limit)
        else:
            # A relabelled target's URL holds its __param_* already (or not, if dropped).
            url = target.url if http.relabel_configs else with_params(target.url, http.params)
            result = await self.scraper.scrape(url, job.scrape_timeout, job.body_size_limit, http)
        payload = None
        if http.rewrites_pages and result.ok:
            cache = self._series.setdefault((job.name, target.name), SeriesCache())
            labels = {"job": job.name, "instance": target.name, **dict(target.labels)}
            payload, result = build_rewritten_payload(result, http, labels, cache)
        # Counted once for the top offenders and the health series.
        samples = count_samples(result.body) if result.ok else 0
        self._record(job, target, result, samples)
        await self._submit(job, target, result, payload, term, samples)

    def _record(self, job: Job, target: Target, result: ScrapeResult, samples: int) -> None:
        children = self._job_children.get(job.name)
        if children is None:
            m = self.metrics
            children = self._job_children[job.name] = (
                m.scrapes.labels(job.name, "success"),
                m.scraped_bytes.labels(job.name),
                m.scrape_duration.labels(job.name),
            )
        succeeded, scraped_bytes, duration = children
        if result.ok:
            succeeded.inc()
        else:
            self.metrics.scrapes.labels(job.name, result.error).inc()
        scraped_bytes.inc(len(result.body))
        duration.observe(result.duration)
        state = self.targets[(job.name, target.name)]
        state.last_scrape = result.started
        state.last_duration = result.duration
        state.last_size = len(result.body)
        if result.ok:
            self.series.note(job.name, target.name, result.body, samples)
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

    async def _submit(
        self,
        job: Job,
        target: Target,
        result: ScrapeResult,
        payload: Payload | None = None,
        term: int = 1,
        samples: int | None = None,
    ) -> None:
        # A page the poller rewrote has its labels merged with the target's
        # already (clashes renamed exported_*, or the page's kept under
        # honor_labels); what a rule then set, a target label too, stays.
        merged = payload is not None
        if payload is None:
            payload = build_payload(result, honor_timestamps=job.honor_timestamps, samples=samples)
        if payload.replaced:
            self.metrics.replaced_lines.labels(job.name).inc(payload.replaced)
        scrape = wire.Scrape(
            publisher=self.config.identity,
            job=job.name,
            instance=target.name,
            scrape_time_ms=int(result.started * 1000),
            body=b"",  # only the compressed payload is kept while waiting
            labels=target.labels,
            honor_labels=job.honor_labels or merged,
        )
        await self.outbox.send(scrape, payload.data, term)
