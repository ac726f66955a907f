"""When each target is scraped: the jobs, each target's stable phase, one loop per target."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import Counter

from prometheus_streams.config import SELF_JOB, Config, Job, Target
from prometheus_streams.poller import LOGGER_NAME
from prometheus_streams.runtime import PauseGate
from prometheus_streams.secret import redact_url
from prometheus_streams.service import Supervisor

log = logging.getLogger(LOGGER_NAME)

# (job name, target name)
TargetKey = tuple[str, str]
# Scrapes start on a grid of the wall clock, a twentieth of the interval and
# at most 1 s: the targets due in one tick are scraped together, so their
# answers are read, their publishes written and their acks read in shared
# loop turns instead of each waking the poller apart (about half the CPU at
# 200 node targets every 5 s; docs/performance.md, "Issue 16, fifth pass: the poller").
# A target's phase moves by less than a tick.
MAX_TICK = 1.0
TICKS_PER_INTERVAL = 20


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


def tick_of(interval: float) -> float:
    """The grid of an interval: a twentieth of it, at most MAX_TICK, and a whole part of it.

    Whole: each scrape after the first lands on the grid too, and a restart
    finds the same grid point (a 22.5 s interval on a 1 s grid moved its
    targets' phase by half a second each interval).
    """
    return interval / max(TICKS_PER_INTERVAL, math.ceil(interval / MAX_TICK - 1e-9))


def first_scrape(now: float, interval: float, offset: float) -> float:
    """When a target of phase `offset` is first scraped (wall clock): after `now`, on the grid."""
    tick = tick_of(interval)
    first = now - (now % interval) + offset
    first = math.ceil(first / tick) * tick
    if first < now:
        first += interval
    return first


def schedule_of(job: Job, target: Target) -> tuple[object, ...]:
    """What a target's scrape loop depends on."""
    return (job.scrape_interval, job.scrape_timeout, job.body_size_limit, target)


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


class Schedule:
    """One supervised loop per target, started, stopped and restarted as the targets change."""

    def __init__(
        self,
        supervisor: Supervisor,
        scrape: Callable[[Job, Target], Awaitable[None]],
        gate: PauseGate,
        missed: Counter,
    ) -> None:
        self._supervisor = supervisor
        self._scrape = scrape
        self._gate = gate
        self._missed = missed
        self.targets: dict[TargetKey, TargetState] = {}
        # Running loops, with what each was started for.
        self._loops: dict[TargetKey, tuple[Job, Target, asyncio.Task[None]]] = {}

    def __len__(self) -> int:
        return len(self._loops)

    def apply(self, wanted: dict[TargetKey, tuple[Job, Target]], identity: str) -> None:
        """Start loops for new or changed targets, stop those gone; leave the rest alone."""
        for key, (job, target, task) in list(self._loops.items()):
            now = wanted.get(key)
            # Only what the loop uses counts: a target added to the job leaves the
            # job's other loops (and their schedules) alone.
            if now is None or schedule_of(*now) != schedule_of(job, target):
                task.cancel()
                del self._loops[key]
                if key not in wanted:
                    self.targets.pop(key, None)
                    log.info("stopped scraping %s/%s", *key)
        for key, (job, target) in wanted.items():
            if key in self._loops:
                continue
            self.targets[key] = TargetState(job.name, target.name, redact_url(target.url))
            loop = self._loop(job, target, f"{identity}/{job.name}/{target.name}")
            self._loops[key] = (job, target, self._supervisor.spawn(loop, "scrape"))

    async def stop(self) -> None:
        """Stop every loop and wait for them."""
        tasks = [task for _, _, task in self._loops.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, job: Job, target: Target, key: str) -> None:
        interval = job.scrape_interval
        # Align to the wall clock so a restarted poller keeps each target's phase.
        now = time.time()
        first = first_scrape(now, interval, stable_offset(key, interval))
        # Then keep time with the monotonic clock: a wall-clock step (NTP at
        # boot) must not stop or bunch up the scrapes.
        loop = asyncio.get_running_loop()
        next_at = loop.time() + (first - now)
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if not self._gate.paused or job.name == SELF_JOB:
                await self._scrape(job, target)
            next_at += interval
            now = loop.time()
            if next_at < now:
                missed = int((now - next_at) // interval) + 1
                self._missed.labels(job.name).inc(missed)
                next_at += missed * interval
