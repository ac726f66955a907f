"""What every scenario shares: the profile, the child processes, the target server, results."""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import pages
from benchmarks.procs import HOST, Proc, Processes, Usage, http_get
from benchmarks.services import Service


@dataclass(frozen=True)
class Profile:
    """Sizes and durations of one kind of run (--smoke, --quick, full)."""

    name: str
    runs: int
    gateway_groups: tuple[int, ...]  # node-sized groups stored, for the Pushgateway limit
    gateway_big_groups: tuple[int, ...]  # 10,000-series groups stored
    gateway_seconds: float  # per rate measurement
    raw_seconds: float
    drain_scrapes: int
    drain_rotations: int  # turns of drain, lean and aiohttp per run
    pipeline_targets: int
    pipeline_interval: float
    scale_targets: int
    scale_interval: float
    scale_probes: tuple[tuple[int, float], ...]  # single extra runs: (targets, interval)
    recovery_targets: int
    recovery_interval: float
    window_intervals: float = 2.0  # measurement window, in scrape intervals
    recovery_outage_intervals: int = 11  # more than max_msgs_per_subject (10) scrapes pile up
    # Fresh processes for every run (full), or one set measured `runs` times in a row.
    fresh_processes: bool = False
    # Against vmagent: node-sized targets, interval, window (in intervals).
    vmagent_targets: int = 200
    vmagent_interval: float = 5.0
    vmagent_window_intervals: float = 4.0
    # Remote write against vmagent: node-sized scrapes stored before each drain.
    rw_backlog_scrapes: int = 2000
    rw_drain_runs: int = 3  # drains of each side (fresh processes each)
    # HA pollers: node-sized targets, interval, failover_timeout, leaders killed.
    ha_targets: int = 100
    ha_interval: float = 2.0
    ha_failover: float = 4.0
    ha_kills: int = 3


PROFILES = {
    "smoke": Profile(
        name="smoke",
        runs=1,
        gateway_groups=(10,),
        gateway_big_groups=(),
        gateway_seconds=0.5,
        raw_seconds=0.5,
        drain_scrapes=40,
        drain_rotations=1,
        pipeline_targets=20,
        pipeline_interval=1.0,
        scale_targets=100,
        scale_interval=1.0,
        scale_probes=(),
        recovery_targets=20,
        recovery_interval=0.5,
        vmagent_targets=20,
        vmagent_interval=1.0,
        rw_backlog_scrapes=200,
        rw_drain_runs=1,
        ha_targets=20,
        ha_interval=1.0,
        ha_failover=2.0,
        ha_kills=1,
    ),
    "quick": Profile(
        name="quick",
        runs=3,
        gateway_groups=(10, 100),
        gateway_big_groups=(),
        gateway_seconds=0.5,
        raw_seconds=0.3,
        drain_scrapes=150,
        drain_rotations=1,
        pipeline_targets=100,
        pipeline_interval=1.0,
        scale_targets=1000,
        scale_interval=1.5,
        scale_probes=(),
        recovery_targets=50,
        recovery_interval=0.4,
        rw_drain_runs=1,
    ),
    "full": Profile(
        name="full",
        runs=3,
        fresh_processes=True,
        gateway_groups=(10, 100, 1000),
        gateway_big_groups=(10,),
        gateway_seconds=1.5,
        raw_seconds=1.5,
        drain_scrapes=2000,
        drain_rotations=3,
        pipeline_targets=500,
        pipeline_interval=5.0,
        scale_targets=10_000,
        scale_interval=15.0,
        scale_probes=((10_000, 7.5), (10_000, 5.0)),
        recovery_targets=500,
        recovery_interval=2.0,
        vmagent_targets=500,
    ),
}

NODE_PAGE = pages.node_page()
NODE_SAMPLES = sum(1 for line in NODE_PAGE.splitlines() if line and not line.startswith(b"#"))
BIG_PAGE = pages.big_page()
BIG_SAMPLES = sum(1 for line in BIG_PAGE.splitlines() if line and not line.startswith(b"#"))


@dataclass
class Figure:
    """One measured quantity: a value per run."""

    key: str
    label: str
    unit: str
    section: str
    values: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """Median, min and max over the runs (NaN-free values only)."""
        values = [v for v in self.values if v == v]
        if not values:
            return {"median": None, "min": None, "max": None, "runs": 0}
        return {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "runs": len(values),
        }


class Context:
    """The state of one benchmark run."""

    def __init__(self, profile: Profile, work: Path, quiet: bool) -> None:
        self.profile = profile
        self.work = work
        self.procs = Processes(work)
        self.quiet = quiet
        self.figures: dict[str, Figure] = {}
        self.notes: list[str] = []
        self.targets: Service | None = None
        # How to start the poller, when not the venv's prometheus-streams (a profiler).
        self.poller_launcher: list[str] | None = None
        self.receiver_launcher: list[str] | None = None  # the same, for rw_vmagent's receiver
        self.started = time.monotonic()

    def log(self, text: str) -> None:
        """Progress on stderr (never in the --json output)."""
        if not self.quiet:
            elapsed = time.monotonic() - self.started
            print(f"[{elapsed:6.1f}s] {text}", file=sys.stderr, flush=True)

    def record(self, section: str, key: str, label: str, unit: str, value: float) -> None:
        """Add one run's value of a figure."""
        figure = self.figures.get(key)
        if figure is None:
            figure = self.figures[key] = Figure(key, label, unit, section)
        figure.values.append(float(value))

    def sessions(self) -> list[int]:
        """Runs per set of started processes: [1, 1, 1] when fresh each run, else [runs]."""
        p = self.profile
        return [1] * p.runs if p.fresh_processes else [p.runs]

    def median(self, key: str) -> float | None:
        """The median of a figure so far, None if never measured."""
        figure = self.figures.get(key)
        if figure is None:
            return None
        value = figure.summary()["median"]
        return float(value) if isinstance(value, int | float) else None

    def run_dir(self, name: str) -> Path:
        """A fresh directory for one scenario run's data and logs."""
        path = self.work / name
        path.mkdir(parents=True, exist_ok=False)
        return path

    def target_url(self) -> str:
        """The target server's base URL."""
        assert self.targets is not None, "target server not started"
        return self.targets.url

    def wait_scraped(self, count: int, since: float, timeout: float) -> None:
        """Wait until `count` target paths were requested since `since` (wall clock)."""
        import json

        deadline = time.monotonic() + timeout
        while True:
            url = f"{self.target_url()}/-/stats?summary=1&since={since}"
            status, body = http_get(url, timeout=30.0)
            paths = int(json.loads(body)["paths"]) if status == 200 else 0
            if paths >= count:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {paths} of {count} targets scraped in {timeout:g}s")
            time.sleep(0.2)

    def target_times(
        self, since: float, until: float, kind: str = "node"
    ) -> dict[str, list[float]]:
        """Request times per target path between `since` and `until` (target server's view)."""
        import json

        status, body = http_get(f"{self.target_url()}/-/stats?since={since}", timeout=30.0)
        if status != 200:
            raise RuntimeError(f"target stats -> {status}")
        times: dict[str, list[float]] = json.loads(body)["times"]
        return {
            path: [t for t in ts if t <= until]
            for path, ts in times.items()
            if path.startswith(f"{kind}/")
        }


class Watch:
    """CPU and memory of some processes across a measurement window (peak RSS sampled)."""

    def __init__(self, procs: dict[str, Proc]) -> None:
        self.procs = procs
        self.start: dict[str, Usage] = {}
        self.peak: dict[str, int] = {}
        self.t0 = 0.0
        self.seconds = 0.0

    def begin(self) -> None:
        """Start the window."""
        self.t0 = time.monotonic()
        self.start = {name: proc.usage() for name, proc in self.procs.items()}
        self.peak = {name: u.rss_kib for name, u in self.start.items()}

    def sample(self) -> None:
        """Note the current RSS of each process (call about once a second)."""
        for name, proc in self.procs.items():
            self.peak[name] = max(self.peak[name], proc.usage().rss_kib)

    def hold(self, seconds: float) -> None:
        """Sleep through `seconds`, sampling RSS every 0.5 s."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(0.5, left))
            self.sample()

    def end(self) -> dict[str, tuple[float, int, int]]:
        """Close the window: per process (CPU seconds used, RSS KiB now, peak RSS KiB seen)."""
        self.sample()
        self.seconds = time.monotonic() - self.t0
        out = {}
        for name, proc in self.procs.items():
            now = proc.usage()
            out[name] = (now.cpu - self.start[name].cpu, now.rss_kib, self.peak[name])
        return out


def monitor(service: Service) -> str:
    """The /metrics URL of one of our roles."""
    return f"http://{HOST}:{service.port}/metrics"
