"""Against vmagent (issue 16): our pipeline and VictoriaMetrics's vmagent on the same targets.

vmagent is what a user would otherwise run for the job: scrape the targets and
remote-write into a VictoriaMetrics. Both contenders run at the same time on
the same node-sized targets at the same interval, and are measured in the same
windows, so load from other work on the machine weighs on both alike; each
contender's CPU is divided by the samples it handled in the window.

The poller-side scenario is here; the receiver-side ones (receiver CPU per
1,000 samples written, backlog drain, scrape -> queryable) are rw_vmagent.py's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks import metrics
from benchmarks.context import NODE_SAMPLES, Context, Watch, monitor
from benchmarks.procs import Proc
from benchmarks.services import (
    Service,
    StreamSettings,
    start_nats,
    start_poller,
    start_victoria_metrics,
    start_vmagent,
    target_urls,
)

POLLER = "prometheus_streams_poller_"
SECTION = "vmagent"


@dataclass
class Contender:
    """One side of the comparison: its processes and a count of the samples it handled so far.

    `main` is the process the comparison is about (the poller, vmagent);
    `helpers` (nats-server, the store) are measured in the same window and shown
    beside it, not charged to it.
    """

    key: str
    label: str
    main: Proc
    samples: Callable[[], float]
    helpers: dict[str, Proc]


def poller_samples(poller: Service) -> Callable[[], float]:
    """Samples the poller published so far: scrapes stored in JetStream x the page's samples."""
    return lambda: metrics.read(monitor(poller)).total(POLLER + "published_total") * NODE_SAMPLES


def vmagent_samples(agent: Service) -> Callable[[], float]:
    """Samples vmagent scraped so far (its own count, without the series it adds per scrape)."""
    return lambda: metrics.read(f"{agent.url}/metrics").total("vm_promscrape_scraped_samples_sum")


def store_rows(store: Service) -> float:
    """Rows VictoriaMetrics took in through /api/v1/write so far."""
    return metrics.read(f"{store.url}/metrics").total(
        "vm_rows_inserted_total", type="promremotewrite"
    )


def measure(ctx: Context, contenders: list[Contender], seconds: float) -> dict[str, float]:
    """One window over every contender at once; records the figures, returns CPU ms/1k samples."""
    procs = {c.key: c.main for c in contenders}
    for c in contenders:
        procs.update({f"{c.key}:{name}": proc for name, proc in c.helpers.items()})
    watch = Watch(procs)
    before = {c.key: c.samples() for c in contenders}
    watch.begin()
    watch.hold(seconds)
    used = watch.end()
    per_1k = {}
    for c in contenders:
        samples = c.samples() - before[c.key]
        if samples <= 0:
            raise RuntimeError(f"vmagent scenario: {c.label} handled no samples in the window")
        cpu, _, peak = used[c.key]
        per_1k[c.key] = cpu * 1e6 / samples
        ctx.record(
            SECTION, f"vm_{c.key}_samples_per_s", c.label, "samples/s", samples / watch.seconds
        )
        ctx.record(
            SECTION,
            f"vm_{c.key}_cpu_ms_per_1k_samples",
            f"{c.label} CPU",
            "CPU ms/1k samples",
            per_1k[c.key],
        )
        ctx.record(SECTION, f"vm_{c.key}_cores", f"{c.label} CPU", "cores", cpu / watch.seconds)
        ctx.record(SECTION, f"vm_{c.key}_peak_rss_mib", f"{c.label} peak RSS", "MiB", peak / 1024)
        for name in c.helpers:
            cpu = used[f"{c.key}:{name}"][0]
            ctx.record(
                SECTION,
                f"vm_{c.key}_{name}_cpu_ms_per_1k_samples",
                f"{c.label}: {name} CPU (not charged)",
                "CPU ms/1k samples",
                cpu * 1e6 / samples,
            )
    return per_1k


def poller_vs_vmagent(ctx: Context) -> None:
    """Our poller publishing to nats-server against vmagent writing to VictoriaMetrics."""
    p = ctx.profile
    assert ctx.targets is not None
    n, interval = p.vmagent_targets, p.vmagent_interval
    urls = target_urls(ctx.targets, n)
    for session, windows in enumerate(ctx.sessions()):
        work = ctx.run_dir(f"vmagent-{session}")
        with ctx.procs.scope():
            nats = start_nats(ctx.procs, work)
            # One scrape kept per target: the stream stays small however long the run.
            poller = start_poller(
                ctx.procs,
                work,
                nats,
                urls,
                interval,
                StreamSettings(max_msgs_per_subject=1),
                launcher=ctx.poller_launcher,
            )
            store = start_victoria_metrics(ctx.procs, work)
            agent = start_vmagent(ctx.procs, work, urls, interval, store)
            contenders = [
                Contender(
                    "poller",
                    "poller -> nats-server",
                    poller.proc,
                    poller_samples(poller),
                    {"nats": nats.proc},
                ),
                Contender(
                    "vmagent",
                    "vmagent -> VictoriaMetrics",
                    agent.proc,
                    vmagent_samples(agent),
                    {"victoria-metrics": store.proc},
                ),
            ]
            _warm_up(ctx, contenders, n, interval)
            rows = store_rows(store)
            for _ in range(windows):
                per_1k = measure(ctx, contenders, p.vmagent_window_intervals * interval)
                ratio = per_1k["poller"] / per_1k["vmagent"]
                ctx.record(
                    SECTION,
                    "vm_poller_ratio",
                    "poller CPU/sample / vmagent CPU/sample",
                    "ratio",
                    ratio,
                )
                ctx.log(
                    f"vmagent: poller {per_1k['poller']:.2f}, vmagent {per_1k['vmagent']:.2f} "
                    f"CPU ms/1k samples, ratio {ratio:.2f}"
                )
            if store_rows(store) <= rows:
                raise RuntimeError("vmagent scenario: VictoriaMetrics took in no remote writes")


def _warm_up(ctx: Context, contenders: list[Contender], targets: int, interval: float) -> None:
    """Wait until each contender has handled a round of every target, then one more interval.

    Both scrape the same target paths, so the target server's log cannot tell
    them apart: each one's own count is used.
    """
    deadline = time.monotonic() + 3 * interval + 60
    for c in contenders:
        while c.samples() < targets * NODE_SAMPLES:
            if time.monotonic() > deadline:
                raise RuntimeError(f"vmagent scenario: {c.label} did not scrape every target")
            time.sleep(0.2)
    time.sleep(interval)
