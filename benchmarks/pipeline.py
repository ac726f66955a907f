"""Scenarios of the running pipeline: steady state, Prometheus agent mode, scale, recovery."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from benchmarks import clients, metrics
from benchmarks.context import NODE_SAMPLES, Context, Watch, monitor
from benchmarks.gateway import CONCURRENCY, NODE_BODY, pushed, stream_state
from benchmarks.services import (
    Service,
    StreamSettings,
    start_nats,
    start_poller,
    start_prometheus_pair,
    start_pushgateway,
    start_receiver,
    target_urls,
)

LATE_FACTOR = 1.1  # a scrape more than 10 % of the interval after the previous one is late
POLLER = "prometheus_streams_poller_"
RECEIVER = "prometheus_streams_receiver_"
LATENCY = RECEIVER + "scrape_to_push_seconds"


@dataclass
class Schedule:
    """How well scrapes kept to their interval inside a window, seen by the targets."""

    scrapes: int
    expected: float
    late: int

    @property
    def missing(self) -> float:
        """Expected scrapes that did not happen."""
        return max(0.0, self.expected - self.scrapes)


def schedule(ctx: Context, t0: float, t1: float, targets: int, interval: float) -> Schedule:
    """Count scrapes, late ones and the expected number between wall-clock t0 and t1."""
    times = ctx.target_times(t0 - 3 * interval, t1)
    scrapes = late = 0
    for ts in times.values():
        ts.sort()
        for before, at in zip([math.nan, *ts], ts, strict=False):
            if not t0 <= at < t1:
                continue
            scrapes += 1
            if before == before and at - before > LATE_FACTOR * interval:
                late += 1
    return Schedule(scrapes, targets * (t1 - t0) / interval, late)


def _mib(kib: int) -> float:
    return kib / 1024


def _delta(name: str, before: metrics.Scrape, after: metrics.Scrape, **labels: str) -> float:
    return after.total(name, **labels) - before.total(name, **labels)


def pipeline(ctx: Context) -> None:
    """Poller and receiver running together on node-sized targets; latency and costs."""
    p = ctx.profile
    assert ctx.targets is not None
    n, interval = p.pipeline_targets, p.pipeline_interval
    urls = target_urls(ctx.targets, n)
    settings = StreamSettings()
    for session, windows in enumerate(ctx.sessions()):
        work = ctx.run_dir(f"pipeline-{session}")
        with ctx.procs.scope():
            nats = start_nats(ctx.procs, work)
            gateway = start_pushgateway(ctx.procs, work, check=False)
            receiver = start_receiver(ctx.procs, work, nats, gateway, settings)
            since = time.time()
            poller = start_poller(ctx.procs, work, nats, urls, interval, settings)
            ctx.wait_scraped(n, since, 3 * interval + 60)  # every target is on its schedule
            procs = {
                "poller": poller.proc,
                "receiver": receiver.proc,
                "nats": nats.proc,
                "pushgateway": gateway.proc,
                "targets": ctx.targets.proc,
            }
            for _ in range(windows):
                watch = Watch(procs)
                before_p, before_r = metrics.read(monitor(poller)), metrics.read(monitor(receiver))
                t0 = time.time()
                watch.begin()
                watch.hold(p.window_intervals * interval)
                used = watch.end()
                t1 = time.time()
                after_p, after_r = metrics.read(monitor(poller)), metrics.read(monitor(receiver))
                seen = schedule(ctx, t0, t1, n, interval)
                _pipeline_figures(
                    ctx, watch.seconds, used, seen, (before_p, after_p), (before_r, after_r)
                )


def _pipeline_figures(
    ctx: Context,
    seconds: float,
    used: dict[str, tuple[float, int, int]],
    seen: Schedule,
    poller: tuple[metrics.Scrape, metrics.Scrape],
    receiver: tuple[metrics.Scrape, metrics.Scrape],
) -> None:
    scrapes = _delta(POLLER + "scrapes_total", *poller, poller_job="node")
    pushes = _delta(RECEIVER + "pushes_total", *receiver, result="success")
    missed = _delta(POLLER + "missed_scrapes_total", *poller, poller_job="node")
    samples = scrapes * NODE_SAMPLES
    sec = "pipeline"
    ctx.record(sec, "pipeline_scrapes_per_s", "poller scrapes", "scrapes/s", scrapes / seconds)
    ctx.record(sec, "pipeline_samples_per_s", "poller samples", "samples/s", samples / seconds)
    ctx.record(sec, "pipeline_pushes_per_s", "receiver pushes", "pushes/s", pushes / seconds)
    for name in ("poller", "receiver", "nats", "pushgateway", "targets"):
        cpu, rss, peak = used[name]
        ctx.record(
            sec,
            f"pipeline_{name}_cpu_ms_per_1k_samples",
            f"{name} CPU",
            "CPU ms/1k samples",
            cpu * 1e6 / samples,
        )
        ctx.record(sec, f"pipeline_{name}_cores", f"{name} CPU", "cores", cpu / seconds)
        if name in ("poller", "receiver"):
            ctx.record(sec, f"pipeline_{name}_rss_mib", f"{name} RSS", "MiB", _mib(rss))
            ctx.record(sec, f"pipeline_{name}_peak_rss_mib", f"{name} peak RSS", "MiB", _mib(peak))
    before_b, after_b = receiver[0].buckets(LATENCY), receiver[1].buckets(LATENCY)
    for q in (50, 99):
        value = metrics.quantile(q / 100, before_b, after_b)
        ctx.record(sec, f"latency_p{q}_ms", f"scrape to Pushgateway 2xx, p{q}", "ms", value * 1000)
    ctx.record(sec, "pipeline_missed_scrapes", "poller missed_scrapes_total", "scrapes", missed)
    ctx.record(
        sec,
        "pipeline_late_or_missed_pct",
        "late or missed scrapes (targets' view)",
        "%",
        100 * (seen.late + seen.missing) / seen.expected,
    )
    ctx.log(
        f"pipeline: {scrapes / seconds:.0f} scrapes/s, {pushes / seconds:.0f} pushes/s, "
        f"poller {used['poller'][0] / seconds:.2f} cores, "
        f"receiver {used['receiver'][0] / seconds:.2f} cores"
    )


def agent(ctx: Context) -> None:
    """Prometheus in agent mode scraping the same targets at the same interval."""
    p = ctx.profile
    assert ctx.targets is not None
    n, interval = p.pipeline_targets, p.pipeline_interval
    urls = target_urls(ctx.targets, n)
    for session, windows in enumerate(ctx.sessions()):
        work = ctx.run_dir(f"agent-{session}")
        with ctx.procs.scope():
            since = time.time()
            agent_service, sink = start_prometheus_pair(ctx.procs, work, urls, interval)
            ctx.wait_scraped(n, since, 3 * interval + 60)  # Prometheus waits ~5 s to start
            for _ in range(windows):
                watch = Watch({"agent": agent_service.proc, "sink": sink.proc})
                t0 = time.time()
                watch.begin()
                watch.hold(p.window_intervals * interval)
                used = watch.end()
                t1 = time.time()
                seen = schedule(ctx, t0, t1, n, interval)
                _agent_figures(ctx, watch.seconds, used, seen)


def _agent_figures(
    ctx: Context, seconds: float, used: dict[str, tuple[float, int, int]], seen: Schedule
) -> None:
    samples = seen.scrapes * NODE_SAMPLES
    sec = "agent"
    ctx.record(sec, "agent_scrapes_per_s", "agent scrapes", "scrapes/s", seen.scrapes / seconds)
    for name, label in (("agent", "Prometheus agent"), ("sink", "receiving Prometheus")):
        cpu, rss, peak = used[name]
        ctx.record(
            sec,
            f"{name}_cpu_ms_per_1k_samples",
            f"{label} CPU",
            "CPU ms/1k samples",
            cpu * 1e6 / samples,
        )
        ctx.record(sec, f"{name}_cores", f"{label} CPU", "cores", cpu / seconds)
        ctx.record(sec, f"{name}_rss_mib", f"{label} RSS", "MiB", _mib(rss))
        ctx.record(sec, f"{name}_peak_rss_mib", f"{label} peak RSS", "MiB", _mib(peak))
    ctx.log(
        f"agent: {seen.scrapes / seconds:.0f} scrapes/s, "
        f"agent {used['agent'][0] / seconds:.2f} cores"
    )


def _scale_session(
    ctx: Context, targets: int, interval: float, windows: int, tag: str, key: str, label: str
) -> list[bool]:
    """One poller alone with `targets` at `interval`; per window, True if it kept up."""
    assert ctx.targets is not None
    work = ctx.run_dir(tag)
    urls = target_urls(ctx.targets, targets)
    # One scrape per target kept: bounded storage however long the run.
    settings = StreamSettings(max_msgs_per_subject=1)
    kept = []
    with ctx.procs.scope():
        nats = start_nats(ctx.procs, work)
        since = time.time()
        poller = start_poller(ctx.procs, work, nats, urls, interval, settings)
        ctx.wait_scraped(targets, since, 3 * interval + 60)
        procs = {"poller": poller.proc, "nats": nats.proc, "targets": ctx.targets.proc}
        for _ in range(windows):
            watch = Watch(procs)
            before = metrics.read(monitor(poller))
            t0 = time.time()
            watch.begin()
            watch.hold(ctx.profile.window_intervals * interval)
            used = watch.end()
            t1 = time.time()
            after = metrics.read(monitor(poller))
            seen = schedule(ctx, t0, t1, targets, interval)
            kept.append(_scale_figures(ctx, key, label, watch.seconds, used, seen, before, after))
    return kept


def _scale_figures(
    ctx: Context,
    key: str,
    label: str,
    seconds: float,
    used: dict[str, tuple[float, int, int]],
    seen: Schedule,
    before: metrics.Scrape,
    after: metrics.Scrape,
) -> bool:
    scrapes = _delta(POLLER + "scrapes_total", before, after, poller_job="node")
    published = _delta(POLLER + "published_total", before, after)
    superseded = _delta(POLLER + "dropped_total", before, after, reason="superseded")
    bad = 100 * (seen.late + seen.missing) / seen.expected
    lost = 100 * superseded / max(1.0, scrapes)
    cpu, _, peak = used["poller"]
    sec = "scale"
    ctx.record(sec, f"{key}_scrapes_per_s", f"{label}: scrapes", "scrapes/s", scrapes / seconds)
    ctx.record(
        sec, f"{key}_published_per_s", f"{label}: published", "scrapes/s", published / seconds
    )
    ctx.record(sec, f"{key}_late_or_missed_pct", f"{label}: late or missed", "%", bad)
    ctx.record(sec, f"{key}_superseded_pct", f"{label}: superseded before publish", "%", lost)
    ctx.record(sec, f"{key}_poller_cores", f"{label}: poller CPU", "cores", cpu / seconds)
    ctx.record(
        sec,
        f"{key}_poller_cpu_ms_per_1k_samples",
        f"{label}: poller CPU",
        "CPU ms/1k samples",
        cpu * 1e6 / max(1.0, scrapes * NODE_SAMPLES),
    )
    ctx.record(sec, f"{key}_poller_peak_rss_mib", f"{label}: poller peak RSS", "MiB", _mib(peak))
    for name, what in (("targets", "target server"), ("nats", "nats-server")):
        ctx.record(
            sec, f"{key}_{name}_cores", f"{label}: {what} CPU", "cores", used[name][0] / seconds
        )
    ctx.log(
        f"{key}: {scrapes / seconds:.0f} scrapes/s (expected {seen.expected / seconds:.0f}), "
        f"late or missed {bad:.2f} %, superseded {lost:.2f} %, "
        f"poller {cpu / seconds:.2f} cores, peak RSS {_mib(peak):.0f} MiB"
    )
    return bad < 1.0 and lost < 1.0 and _mib(peak) <= 250


def scale(ctx: Context) -> None:
    """One poller with many node-sized targets: the 10,000-target goal (scaled in --quick)."""
    p = ctx.profile
    label = f"{p.scale_targets} targets every {p.scale_interval:g}s"
    kept_up = []
    for session, windows in enumerate(ctx.sessions()):
        kept_up += _scale_session(
            ctx, p.scale_targets, p.scale_interval, windows, f"scale-{session}", "scale", label
        )
    probes = list(p.scale_probes)
    if sum(kept_up) * 2 <= len(kept_up):
        ctx.notes.append(f"scale: the poller did not keep up with {label} in most runs")
        # Find what it does sustain: halve the targets at the same interval.
        probes = [(p.scale_targets // 2**i, p.scale_interval) for i in (1, 2)]
    for targets, interval in probes:
        tag = f"probe-{targets}-{interval:g}"
        probe_label = f"probe (1 run) {targets} targets every {interval:g}s"
        key = f"probe_{targets}_{str(interval).replace('.', '_')}"
        kept = all(_scale_session(ctx, targets, interval, 1, tag, key, probe_label))
        ctx.notes.append(f"scale: {probe_label}: {'kept up' if kept else 'did not keep up'}")
        if kept != (probes == list(p.scale_probes)):
            break  # going up, stop at the first failure; going down, at the first success


def recovery(ctx: Context) -> None:
    """Receiver outages with the poller running; time until every group is current again."""
    p = ctx.profile
    assert ctx.targets is not None
    n, interval = p.recovery_targets, p.recovery_interval
    urls = target_urls(ctx.targets, n)
    settings = StreamSettings()
    # One set of processes, `runs` outages in a row (each outage starts from a current state).
    for session, cycles in enumerate([p.runs]):
        work = ctx.run_dir(f"recovery-{session}")
        with ctx.procs.scope():
            nats = start_nats(ctx.procs, work)
            gateway = start_pushgateway(ctx.procs, work, check=False)
            start_poller(ctx.procs, work, nats, urls, interval, settings)
            receiver = start_receiver(ctx.procs, work, nats, gateway, settings)
            deadline = time.monotonic() + 3 * interval + 60
            while pushed(receiver) < n:  # every group exists in the Pushgateway
                if time.monotonic() > deadline:
                    raise RuntimeError("recovery: the groups were never all pushed")
                time.sleep(0.1)
            for cycle in range(cycles):
                ctx.procs.stop(receiver.proc)
                receiver = _outage(ctx, nats, gateway, settings, f"receiver-{cycle + 2}")


def _outage(
    ctx: Context, nats: Service, gateway: Service, settings: StreamSettings, name: str
) -> Service:
    """With the receiver stopped: wait out the outage, restart it, time the catch-up."""
    p = ctx.profile
    n = p.recovery_targets
    time.sleep(p.recovery_outage_intervals * p.recovery_interval)
    state = stream_state(nats)
    backlog_end = int(str(state["last_seq"]))
    consumer = state["consumer"]
    assert isinstance(consumer, dict)
    backlog = backlog_end - int(consumer["ack_floor"]["stream_seq"])
    launched = time.monotonic()
    receiver = start_receiver(ctx.procs, ctx.work, nats, gateway, settings, name)
    ready = time.monotonic()
    deadline = ready + 120 + backlog / 20
    # Caught up when every message stored before the restart is acked: the newest
    # scrape of each group pushed, the older ones skipped.
    while True:
        consumer = stream_state(nats)["consumer"]
        assert isinstance(consumer, dict)
        if int(consumer["ack_floor"]["stream_seq"]) >= backlog_end:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"recovery: backlog not handled: {consumer}")
        time.sleep(0.02)
    done = time.monotonic()
    group_urls = [clients.group_path(gateway.url, f"t{i}") for i in range(n)]
    direct = asyncio.run(clients.push(group_urls, NODE_BODY, CONCURRENCY, 600.0, n))
    sec = "recovery"
    ctx.record(sec, "recovery_backlog_messages", "backlog at restart", "messages", backlog)
    ctx.record(
        sec, "recovery_from_launch_s", "receiver launch to all groups current", "s", done - launched
    )
    ctx.record(
        sec, "recovery_from_ready_s", "receiver ready to all groups current", "s", done - ready
    )
    ctx.record(
        sec, "recovery_direct_round_s", f"one round of {n} direct pushes", "s", direct.seconds
    )
    ctx.record(
        sec,
        "recovery_ratio",
        "recovery (from ready) / one direct round (goal <= 2)",
        "ratio",
        (done - ready) / direct.seconds,
    )
    ctx.log(
        f"recovery: backlog {backlog} messages, {done - ready:.2f}s from ready "
        f"({done - launched:.2f}s from launch), direct round {direct.seconds:.2f}s"
    )
    return receiver
