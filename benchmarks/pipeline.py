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


def pipeline(ctx: Context) -> None:
    """Poller and receiver running together on node-sized targets; latency and costs."""
    p = ctx.profile
    assert ctx.targets is not None
    n, interval = p.pipeline_targets, p.pipeline_interval
    urls = target_urls(ctx.targets, n)
    window = 2 * interval if p.name == "full" else 3 * interval
    settings = StreamSettings()
    for run in range(p.runs):
        work = ctx.run_dir(f"pipeline-{run}")
        with ctx.procs.scope():
            nats = start_nats(ctx.procs, work)
            gateway = start_pushgateway(ctx.procs, work, check=False)
            receiver = start_receiver(ctx.procs, work, nats, gateway, settings)
            since = time.time()
            poller = start_poller(ctx.procs, work, nats, urls, interval, settings)
            ctx.wait_scraped(n, since, 3 * interval + 60)  # every target is on its schedule
            watch = Watch(
                {
                    "poller": poller.proc,
                    "receiver": receiver.proc,
                    "nats": nats.proc,
                    "pushgateway": gateway.proc,
                    "targets": ctx.targets.proc,
                }
            )
            before_p, before_r = metrics.read(monitor(poller)), metrics.read(monitor(receiver))
            t0 = time.time()
            watch.begin()
            watch.hold(window)
            used = watch.end()
            t1 = time.time()
            after_p, after_r = metrics.read(monitor(poller)), metrics.read(monitor(receiver))
            seen = schedule(ctx, t0, t1, n, interval)
        seconds = watch.seconds

        def delta(name: str, before: metrics.Scrape, after: metrics.Scrape, **labels: str) -> float:
            return after.total(name, **labels) - before.total(name, **labels)

        scrapes = delta(POLLER + "scrapes_total", before_p, after_p, poller_job="node")
        pushes = delta(RECEIVER + "pushes_total", before_r, after_r, result="success")
        missed = delta(POLLER + "missed_scrapes_total", before_p, after_p, poller_job="node")
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
                ctx.record(
                    sec, f"pipeline_{name}_peak_rss_mib", f"{name} peak RSS", "MiB", _mib(peak)
                )
        before_b, after_b = before_r.buckets(LATENCY), after_r.buckets(LATENCY)
        for q in (0.5, 0.99):
            value = metrics.quantile(q, before_b, after_b)
            ctx.record(
                sec,
                f"latency_p{round(q * 100)}_ms",
                f"scrape to Pushgateway 2xx, p{round(q * 100)}",
                "ms",
                value * 1000,
            )
        ctx.record(sec, "pipeline_missed_scrapes", "poller missed_scrapes_total", "scrapes", missed)
        ctx.record(
            sec,
            "pipeline_late_or_missed_pct",
            "late or missed scrapes (targets' view)",
            "%",
            100 * (seen.late + seen.missing) / seen.expected,
        )
        ctx.log(
            f"pipeline run {run + 1}/{p.runs}: {scrapes / seconds:.0f} scrapes/s, "
            f"{pushes / seconds:.0f} pushes/s, poller {used['poller'][0] / seconds:.2f} cores"
        )


def agent(ctx: Context) -> None:
    """Prometheus in agent mode scraping the same targets at the same interval."""
    p = ctx.profile
    assert ctx.targets is not None
    n, interval = p.pipeline_targets, p.pipeline_interval
    urls = target_urls(ctx.targets, n)
    window = 2 * interval if p.name == "full" else 3 * interval
    for run in range(p.runs):
        work = ctx.run_dir(f"agent-{run}")
        with ctx.procs.scope():
            since = time.time()
            agent_service, sink = start_prometheus_pair(ctx.procs, work, urls, interval)
            ctx.wait_scraped(n, since, 3 * interval + 60)  # Prometheus waits ~5 s to start
            watch = Watch({"agent": agent_service.proc, "sink": sink.proc})
            t0 = time.time()
            watch.begin()
            watch.hold(window)
            used = watch.end()
            t1 = time.time()
            seen = schedule(ctx, t0, t1, n, interval)
        samples = seen.scrapes * NODE_SAMPLES
        seconds = watch.seconds
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
            f"agent run {run + 1}/{p.runs}: {seen.scrapes / seconds:.0f} scrapes/s, "
            f"agent {used['agent'][0] / seconds:.2f} cores"
        )


def _scale_run(ctx: Context, targets: int, interval: float, tag: str, key: str, label: str) -> bool:
    """One poller alone with `targets` at `interval`; records figures; True if it kept up."""
    assert ctx.targets is not None
    work = ctx.run_dir(tag)
    urls = target_urls(ctx.targets, targets)
    # One scrape per target kept: bounded storage however long the run.
    settings = StreamSettings(max_msgs_per_subject=1)
    window = 2 * interval
    with ctx.procs.scope():
        nats = start_nats(ctx.procs, work)
        since = time.time()
        poller = start_poller(ctx.procs, work, nats, urls, interval, settings)
        ctx.wait_scraped(targets, since, 3 * interval + 60)
        watch = Watch({"poller": poller.proc, "nats": nats.proc, "targets": ctx.targets.proc})
        before = metrics.read(monitor(poller))
        t0 = time.time()
        watch.begin()
        watch.hold(window)
        used = watch.end()
        t1 = time.time()
        after = metrics.read(monitor(poller))
        seen = schedule(ctx, t0, t1, targets, interval)
    seconds = watch.seconds
    scrapes = after.total(POLLER + "scrapes_total", poller_job="node") - before.total(
        POLLER + "scrapes_total", poller_job="node"
    )
    published = after.total(POLLER + "published_total") - before.total(POLLER + "published_total")
    superseded = after.total(POLLER + "dropped_total", reason="superseded") - before.total(
        POLLER + "dropped_total", reason="superseded"
    )
    bad = 100 * (seen.late + seen.missing) / seen.expected
    cpu, _, peak = used["poller"]
    sec = "scale"
    ctx.record(sec, f"{key}_scrapes_per_s", f"{label}: scrapes", "scrapes/s", scrapes / seconds)
    ctx.record(
        sec, f"{key}_published_per_s", f"{label}: published", "scrapes/s", published / seconds
    )
    ctx.record(
        sec, f"{key}_superseded", f"{label}: superseded before publish", "scrapes", superseded
    )
    ctx.record(sec, f"{key}_late_or_missed_pct", f"{label}: late or missed", "%", bad)
    ctx.record(sec, f"{key}_poller_cores", f"{label}: poller CPU", "cores", cpu / seconds)
    ctx.record(
        sec,
        f"{key}_poller_cpu_ms_per_1k_samples",
        f"{label}: poller CPU",
        "CPU ms/1k samples",
        cpu * 1e6 / max(1.0, scrapes * NODE_SAMPLES),
    )
    ctx.record(sec, f"{key}_poller_peak_rss_mib", f"{label}: poller peak RSS", "MiB", _mib(peak))
    ctx.record(
        sec,
        f"{key}_targets_cores",
        f"{label}: target server CPU",
        "cores",
        used["targets"][0] / seconds,
    )
    ctx.record(
        sec, f"{key}_nats_cores", f"{label}: nats-server CPU", "cores", used["nats"][0] / seconds
    )
    ctx.log(
        f"{tag}: {targets} targets / {interval:g}s: {scrapes / seconds:.0f} scrapes/s "
        f"(expected {targets / interval:.0f}), late or missed {bad:.2f} %, "
        f"poller {cpu / seconds:.2f} cores, peak RSS {_mib(peak):.0f} MiB"
    )
    return bad < 1.0 and _mib(peak) <= 250


def scale(ctx: Context) -> None:
    """One poller with many node-sized targets: the 10,000-target goal (scaled in --quick)."""
    p = ctx.profile
    label = f"{p.scale_targets} targets every {p.scale_interval:g}s"
    kept_up = [
        _scale_run(ctx, p.scale_targets, p.scale_interval, f"scale-{run}", "scale", label)
        for run in range(p.runs)
    ]
    if sum(kept_up) * 2 <= len(kept_up):
        ctx.notes.append(f"scale: the poller did not keep up with {label} in most runs")
        return
    for targets, interval in p.scale_probes:
        tag = f"probe-{targets}-{interval:g}"
        probe_label = f"probe (1 run) {targets} targets every {interval:g}s"
        key = f"probe_{targets}_{str(interval).replace('.', '_')}"
        if not _scale_run(ctx, targets, interval, tag, key, probe_label):
            ctx.notes.append(f"scale: the poller did not keep up with {probe_label}")
            break


def recovery(ctx: Context) -> None:
    """Receiver outage with the poller running; time until every group is current again."""
    p = ctx.profile
    assert ctx.targets is not None
    n, interval = p.recovery_targets, p.recovery_interval
    urls = target_urls(ctx.targets, n)
    outage = p.recovery_outage_intervals * interval
    settings = StreamSettings()
    for run in range(p.runs):
        work = ctx.run_dir(f"recovery-{run}")
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
            ctx.procs.stop(receiver.proc)
            time.sleep(outage)
            state = stream_state(nats)
            backlog_end = int(str(state["last_seq"]))
            consumer = state["consumer"]
            assert isinstance(consumer, dict)
            backlog = backlog_end - int(consumer["ack_floor"]["stream_seq"])
            launched = time.monotonic()
            receiver = start_receiver(ctx.procs, work, nats, gateway, settings, "receiver-2")
            ready = time.monotonic()
            deadline = ready + 120 + backlog / 20
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
            sec,
            "recovery_from_launch_s",
            "receiver launch to all groups current",
            "s",
            done - launched,
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
            f"recovery run {run + 1}/{p.runs}: backlog {backlog} messages, "
            f"{done - ready:.2f}s from ready ({done - launched:.2f}s from launch), "
            f"direct round {direct.seconds:.2f}s"
        )
