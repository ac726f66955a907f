"""Remote write against vmagent (issue 16): our pipeline into a VictoriaMetrics beside vmagent's.

Scenario `rw_vmagent`, three parts, every figure with vmagent's beside it:

1. Steady state. poller -> nats-server -> receiver (one remote-write output)
   -> VictoriaMetrics A, and vmagent -> VictoriaMetrics B, on the same targets
   at the same interval, measured in the same windows. Ours: receiver CPU,
   and poller + receiver CPU, per 1,000 samples the receiver wrote (its
   `remote_write_samples_total`); vmagent's: CPU per 1,000 samples scraped
   (`vm_promscrape_scraped_samples_sum`) and written. nats-server and the
   stores are shown, not charged. At the end scraping stops (the poller is
   stopped, vmagent reloaded with no targets) and each store's rows are
   checked against what its writer says it wrote.
2. Scrape -> queryable, in the same windows: some of the targets are
   `/clock/<i>` pages carrying `bench_served_ms`, the wall-clock ms they were
   served at; a thread asks each store for that gauge every PROBE_EVERY and
   notes when a new value shows: latency = seen - served.
3. Backlog drain. Ours: `backlog` node-sized scrapes published straight
   into the stream (wire.encode, as the poller would), then a receiver
   started on them, timed until the store has every sample. vmagent's:
   scraping the same targets every second into a store port where nothing
   listens, so it queues to its -remoteWrite.tmpDataPath, until it scraped
   as many; then stopped, the store started on that port and a vmagent with
   no targets started on the same queue, timed until the store has every
   row. vmagent's queue holds blocks it encoded and compressed while
   scraping, so its drain only reads and sends: its steady samples per CPU
   second (scrape, encode and send) is shown beside as well.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats as nats_client

from benchmarks import clients, metrics
from benchmarks.context import NODE_PAGE, NODE_SAMPLES, Context, Watch, monitor
from benchmarks.gateway import stream_state
from benchmarks.procs import Proc, free_port, http_get
from benchmarks.services import (
    Service,
    StreamSettings,
    nats_url,
    start_nats,
    start_poller,
    start_rw_receiver,
    start_victoria_metrics,
    start_vmagent,
    target_urls,
)
from benchmarks.vmagent import store_rows, vmagent_samples
from prometheus_streams import wire

SECTION = "rw_vmagent"
WRITTEN = "prometheus_streams_receiver_remote_write_samples_total"
VMAGENT_ROWS = "vmagent_remotewrite_rows_pushed_after_relabel_total"
CLOCK_TARGETS = 10  # of the scenario's targets, the ones whose pages carry the clock
PROBE_EVERY = 0.05  # seconds between two looks at each store
TOPIC = "prometheus"
# As the poller forwards a node page: the target's gzip and the health series
# as a second member; the receiver writes the page's samples and the 3 health ones.
PAYLOAD = gzip.compress(NODE_PAGE, 6, mtime=0) + gzip.compress(
    clients.health_lines(NODE_SAMPLES), 1, mtime=0
)
SCRAPE_SAMPLES = NODE_SAMPLES + 3


def written(receiver: Service) -> float:
    """Samples the receiver's remote-write output wrote so far (2xx)."""
    return metrics.read(monitor(receiver)).total(WRITTEN)


# -- scrape -> queryable ----------------------------------------------------------


@dataclass
class Prober:
    """Asks each store for `bench_served_ms` and notes when each new value became visible."""

    stores: dict[str, Service]
    latencies: dict[str, list[float]] = field(default_factory=dict)
    _last: dict[tuple[str, str], float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    recording: bool = False

    def start(self) -> None:
        """Look in the background until `stop`."""
        self.latencies = {name: [] for name in self.stores}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop looking."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        # A window of its own: a bare selector looks back about one scrape
        # interval, shorter than the store's delay before a row is searchable
        # at a 1 s interval (--smoke), and then finds nothing.
        query = urllib.parse.urlencode(
            {"query": "last_over_time(bench_served_ms[1m])", "nocache": "1"}
        )
        while not self._stop.wait(PROBE_EVERY):
            for name, store in self.stores.items():
                self._look(name, f"{store.url}/api/v1/query?{query}")

    def _look(self, name: str, url: str) -> None:
        import json

        status, body = http_get(url, timeout=5.0)
        seen = time.time() * 1000
        if status != 200:
            return
        for series in json.loads(body)["data"]["result"]:
            instance = series["metric"].get("instance", "")
            served = float(series["value"][1])
            before = self._last.get((name, instance))
            self._last[(name, instance)] = served
            # The first value of a series was there before we looked: no observation.
            if before is not None and served != before and self.recording:
                self.latencies[name].append(seen - served)

    def wait_seen(self, series: int, timeout: float) -> None:
        """Until each store shows `series` clock series (VictoriaMetrics takes seconds
        before a new series is searchable at all)."""
        deadline = time.monotonic() + timeout
        while any(
            sum(1 for store, _ in self._last if store == name) < series for name in self.stores
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"rw_vmagent: the stores do not show {series} clock series")
            time.sleep(0.2)

    def take(self) -> dict[str, list[float]]:
        """The latencies noted since the last take (ms), per store."""
        out = {name: list(values) for name, values in self.latencies.items()}
        for values in self.latencies.values():
            values.clear()
        return out


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- steady state -------------------------------------------------------------------


@dataclass
class _Steady:
    poller: Service
    receiver: Service
    nats: Service
    ours: Service
    agent: Service
    theirs: Service


def rw_vmagent(ctx: Context) -> None:
    """Steady state with scrape -> queryable, then the backlog drain, against vmagent."""
    steady(ctx)
    drain(ctx)


def steady(ctx: Context) -> None:
    """Our pipeline into one VictoriaMetrics beside vmagent into another, same targets."""
    p = ctx.profile
    assert ctx.targets is not None
    n, interval = p.vmagent_targets, p.vmagent_interval
    clocks = min(CLOCK_TARGETS, n)
    urls = target_urls(ctx.targets, n - clocks) + target_urls(ctx.targets, clocks, "clock")
    for session, windows in enumerate(ctx.sessions()):
        work = ctx.run_dir(f"rw-vmagent-{session}")
        with ctx.procs.scope():
            nats = start_nats(ctx.procs, work)
            ours = start_victoria_metrics(ctx.procs, work, "vm-ours")
            theirs = start_victoria_metrics(ctx.procs, work, "vm-vmagent")
            # First, so the stream is made keeping every scrape (remote write's history).
            receiver = start_rw_receiver(
                ctx.procs, work, nats, ours, launcher=ctx.receiver_launcher
            )
            poller = start_poller(
                ctx.procs, work, nats, urls, interval, StreamSettings(max_msgs_per_subject=1)
            )
            agent = start_vmagent(ctx.procs, work, urls, interval, theirs)
            s = _Steady(poller, receiver, nats, ours, agent, theirs)
            _warm_up(ctx, s, n, interval)
            prober = Prober({"ours": ours, "vmagent": theirs})
            prober.start()
            try:
                prober.wait_seen(clocks, 60 + 3 * interval)  # the next values count
                prober.recording = True
                for _ in range(windows):
                    _window(ctx, s, prober, p.vmagent_window_intervals * interval)
            finally:
                prober.stop()
            _check_rows(ctx, s, work, interval)


def _warm_up(ctx: Context, s: _Steady, targets: int, interval: float) -> None:
    """Until each side wrote a round of every target, then one more interval."""
    deadline = time.monotonic() + 3 * interval + 60
    counts: dict[str, Callable[[], float]] = {
        "receiver": lambda: written(s.receiver),
        "vmagent": _rows(s.theirs),
    }
    for label, count in counts.items():
        while count() < targets * NODE_SAMPLES:
            if time.monotonic() > deadline:
                raise RuntimeError(f"rw_vmagent: {label} did not write every target")
            time.sleep(0.2)
    time.sleep(interval)


def _rows(store: Service) -> Callable[[], float]:
    return lambda: store_rows(store)


def _window(ctx: Context, s: _Steady, prober: Prober, seconds: float) -> None:
    """One measurement window over both sides; records the figures."""
    procs = {
        "poller": s.poller.proc,
        "receiver": s.receiver.proc,
        "nats": s.nats.proc,
        "vm-ours": s.ours.proc,
        "vmagent": s.agent.proc,
        "vm-vmagent": s.theirs.proc,
    }
    watch = Watch(procs)
    ours0, theirs0 = written(s.receiver), vmagent_samples(s.agent)()
    prober.take()
    watch.begin()
    watch.hold(seconds)
    used = watch.end()
    latencies = prober.take()
    ours, theirs = written(s.receiver) - ours0, vmagent_samples(s.agent)() - theirs0
    if ours <= 0 or theirs <= 0:
        raise RuntimeError(f"rw_vmagent: nothing written in a window ({ours}, {theirs})")

    def per_1k(name: str, samples: float) -> float:
        return used[name][0] * 1e6 / samples

    receiver, poller, agent = (
        per_1k("receiver", ours),
        per_1k("poller", ours),
        per_1k("vmagent", theirs),
    )
    record = ctx.record
    record(
        SECTION,
        "rw_receiver_samples_per_s",
        "receiver: samples written",
        "samples/s",
        ours / watch.seconds,
    )
    record(
        SECTION,
        "rw_vmagent_samples_per_s",
        "vmagent: samples scraped",
        "samples/s",
        theirs / watch.seconds,
    )
    record(SECTION, "rw_receiver_cpu_ms_per_1k", "receiver CPU", "CPU ms/1k samples", receiver)
    record(SECTION, "rw_poller_cpu_ms_per_1k", "poller CPU", "CPU ms/1k samples", poller)
    record(
        SECTION,
        "rw_ours_cpu_ms_per_1k",
        "poller + receiver CPU",
        "CPU ms/1k samples",
        receiver + poller,
    )
    record(SECTION, "rw_vmagent_cpu_ms_per_1k", "vmagent CPU", "CPU ms/1k samples", agent)
    record(
        SECTION, "rw_receiver_ratio", "receiver / vmagent (goal <= 1.0)", "ratio", receiver / agent
    )
    record(
        SECTION,
        "rw_ours_ratio",
        "poller + receiver / vmagent (goal <= 1.5)",
        "ratio",
        (receiver + poller) / agent,
    )
    for name, samples in (("nats", ours), ("vm-ours", ours), ("vm-vmagent", theirs)):
        record(
            SECTION,
            f"rw_{name.replace('-', '_')}_cpu_ms_per_1k",
            f"{name} CPU (not charged)",
            "CPU ms/1k samples",
            per_1k(name, samples),
        )
    for name in ("receiver", "vmagent"):
        record(SECTION, f"rw_{name}_peak_rss_mib", f"{name} peak RSS", "MiB", used[name][2] / 1024)
    record(
        SECTION,
        "rw_vmagent_samples_per_cpu_s",
        "vmagent steady: samples scraped and written per CPU second",
        "samples/CPU s",
        1e6 / agent,
    )
    for side, label in (("ours", "our pipeline"), ("vmagent", "vmagent")):
        values = latencies[side]
        for q in (50, 99):
            record(
                SECTION,
                f"rw_{side}_queryable_p{q}_ms",
                f"{label}: served -> queryable, p{q}",
                "ms",
                _percentile(values, q / 100),
            )
        record(
            SECTION,
            f"rw_{side}_queryable_seen",
            f"{label}: clock values seen",
            "values",
            len(values),
        )
    ctx.log(
        f"rw_vmagent: receiver {receiver:.2f}, poller + receiver {receiver + poller:.2f}, "
        f"vmagent {agent:.2f} CPU ms/1k samples; queryable p50 ours "
        f"{_percentile(latencies['ours'], 0.5):.0f} ms, vmagent "
        f"{_percentile(latencies['vmagent'], 0.5):.0f} ms"
    )


def _check_rows(ctx: Context, s: _Steady, work: Path, interval: float) -> None:
    """Stop scraping on both sides; each store's rows must equal what its writer counted."""
    ctx.procs.stop(s.poller.proc)
    (work / "vmagent.yml").write_text("scrape_configs: []\n")
    os.kill(s.agent.proc.pid, signal.SIGHUP)  # vmagent reloads -promscrape.config
    sides: dict[str, tuple[Callable[[], float], Callable[[], float]]] = {
        "ours": (lambda: written(s.receiver), _rows(s.ours)),
        "vmagent": (
            lambda: metrics.read(f"{s.agent.url}/metrics").total(VMAGENT_ROWS),
            _rows(s.theirs),
        ),
    }
    for side, (wrote, took) in sides.items():
        deadline = time.monotonic() + 30 + 2 * interval
        last: tuple[float, float] | None = None
        while True:
            now = (wrote(), took())
            if now == last and now[0] == now[1]:
                break
            if time.monotonic() > deadline:
                break
            last = now
            time.sleep(max(2.0, interval / 2))
        ctx.record(
            SECTION,
            f"rw_{side}_store_rows_ratio",
            f"{side}: store's rows / rows its writer counted (1 = match)",
            "ratio",
            now[1] / now[0] if now[0] else float("nan"),
        )
        ctx.log(f"rw_vmagent rows, {side}: writer counted {now[0]:.0f}, store took {now[1]:.0f}")


# -- backlog drain --------------------------------------------------------------------


def drain(ctx: Context) -> None:
    """A receiver draining stored scrapes, vmagent draining its queue, each into a fresh store."""
    p = ctx.profile
    assert ctx.targets is not None
    targets = p.vmagent_targets
    rounds = max(1, p.rw_backlog_scrapes // targets)
    for run in range(p.rw_drain_runs):
        work = ctx.run_dir(f"rw-drain-{run}")
        with ctx.procs.scope():
            _drain_ours(ctx, work, targets, rounds)
        with ctx.procs.scope():
            _drain_vmagent(ctx, work, targets * rounds)


def _drain_ours(ctx: Context, work: Path, targets: int, rounds: int) -> None:
    nats = start_nats(ctx.procs, work)
    store = start_victoria_metrics(ctx.procs, work, "vm-ours")
    # A receiver makes the stream and its consumer, then stops: the backlog waits for the next.
    first = start_rw_receiver(ctx.procs, work, nats, store, name="receiver-setup")
    ctx.procs.stop(first.proc)
    asyncio.run(_publish(nats, targets, rounds))
    stored = int(str(stream_state(nats).get("messages", 0)))
    if stored < targets * rounds:
        raise RuntimeError(f"rw drain: {stored} of {targets * rounds} scrapes in the stream")
    total = targets * rounds * SCRAPE_SAMPLES
    launched = time.monotonic()
    receiver = start_rw_receiver(ctx.procs, work, nats, store)
    rate, whole, per_core = _timed(receiver.proc, _rows(store), total, launched)
    if written(receiver) != store_rows(store):
        raise RuntimeError("rw drain: the store's rows differ from what the receiver counted")
    _drain_figures(
        ctx, "ours", f"receiver draining {targets * rounds:,} stored scrapes", rate, whole, per_core
    )


async def _publish(nats: Service, targets: int, rounds: int) -> None:
    """`rounds` scrapes of each target, a second apart, ending now, as the poller publishes."""
    nc = await nats_client.connect(nats_url(nats))
    try:
        js = nc.jetstream()
        start = int(time.time() * 1000) - rounds * 1000
        for r in range(rounds):
            acks = []
            for i in range(targets):
                scrape = wire.Scrape("bench", "node", f"t{i}", start + r * 1000, b"")
                subject, _, headers = wire.encode(TOPIC, scrape, payload=b"-")
                acks.append(js.publish(subject, PAYLOAD, headers=headers))
            await asyncio.gather(*acks)
    finally:
        await nc.close()


def _drain_vmagent(ctx: Context, work: Path, scrapes: int) -> None:
    assert ctx.targets is not None
    targets = ctx.profile.vmagent_targets
    port = free_port()  # no store here yet: vmagent queues on disk
    urls = target_urls(ctx.targets, targets)
    agent = start_vmagent(ctx.procs, work, urls, 1.0, port, name="vmagent-queue")
    deadline = time.monotonic() + 60 + scrapes / targets * 3
    while metrics.read(f"{agent.url}/metrics").total("vm_promscrape_scrapes_total") < scrapes:
        if time.monotonic() > deadline:
            raise RuntimeError("rw drain: vmagent did not scrape the backlog in time")
        time.sleep(0.2)
    (work / "vmagent-queue.yml").write_text("scrape_configs: []\n")
    os.kill(agent.proc.pid, signal.SIGHUP)
    time.sleep(2.0)  # the reload ends the scrapes; what is in memory goes to disk on stop
    queued = metrics.read(f"{agent.url}/metrics").total(VMAGENT_ROWS)
    ctx.procs.stop(agent.proc)
    store = start_victoria_metrics(ctx.procs, work, "vm-vmagent", port=port)
    launched = time.monotonic()
    again = start_vmagent(ctx.procs, work, [], 1.0, store, name="vmagent-queue")
    rate, whole, per_core = _timed(again.proc, _rows(store), int(queued), launched)
    _drain_figures(
        ctx,
        "vmagent",
        f"vmagent draining its on-disk queue ({scrapes:,} scrapes)",
        rate,
        whole,
        per_core,
    )


def _timed(
    proc: Proc, done: Callable[[], float], total: int, launched: float
) -> tuple[float, float, float]:
    """Until `done()` reaches `total`: the 10-90 % rate, the rate from ready, samples per CPU s."""
    cpu0 = proc.usage().cpu
    t0 = time.monotonic()
    n0 = done()
    progress = [(t0, int(n0))]
    deadline = t0 + 120 + total / 20_000
    while (now := done()) < total:
        progress.append((time.monotonic(), int(now)))
        if time.monotonic() > deadline:
            raise RuntimeError(f"rw drain: {now:.0f} of {total} samples written in time")
        time.sleep(0.1)
    end = time.monotonic()
    progress.append((end, int(now)))
    cpu = proc.usage().cpu - cpu0
    samples = now - n0
    if samples <= 0.1 * total or cpu <= 0:  # drained before the first look: from launch
        t0, samples, cpu = launched, now, proc.usage().cpu
    whole = samples / (end - t0)
    return clients.steady_rate(progress, total) or whole, whole, samples / cpu


def _drain_figures(
    ctx: Context, side: str, label: str, rate: float, whole: float, per_core: float
) -> None:
    ctx.record(SECTION, f"rw_drain_{side}_samples_per_s", f"{label}, 10-90 %", "samples/s", rate)
    ctx.record(
        SECTION, f"rw_drain_{side}_whole_per_s", f"{label}, to the last row", "samples/s", whole
    )
    ctx.record(
        SECTION, f"rw_drain_{side}_per_cpu_s", f"{label}, per CPU second", "samples/CPU s", per_core
    )
    ctx.log(f"rw drain {side}: {rate:.0f} samples/s (10-90 %), {per_core:.0f} samples per CPU s")
