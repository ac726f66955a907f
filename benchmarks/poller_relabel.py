"""The poller's cost per node page: metric_relabel_configs (typical rules) against none.

`poller_relabel` (scenario `relabel` of benchmarks/run): two poller processes
at once on the same node targets at the same interval, one with the typical
rules (drop three families, drop one label, one replace) and one without,
each publishing to nats-server; their CPU per sample scraped, measured in the
same windows, and the ratio (issue 17: at most 1.25). Beside them, in this
process, what the poller does with one scraped page up to the gzipped
payload, fastest of several repeats, the series cache warm (the steady state)
unless said.

Run the in-process part alone: `.venv/bin/python -m benchmarks.poller_relabel`.
"""

from __future__ import annotations

import gzip
import time
import timeit
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from benchmarks import metrics
from benchmarks.context import NODE_SAMPLES, Context, Watch, monitor
from benchmarks.pages import node_page
from benchmarks.relabel import TYPICAL, read_rules
from benchmarks.services import Service, StreamSettings, start_nats, start_poller, target_urls
from prometheus_streams.config import Job
from prometheus_streams.exposition import count_samples
from prometheus_streams.poller.payload import build_payload, build_rewritten_payload
from prometheus_streams.poller.rewrite import SeriesCache
from prometheus_streams.poller.scraper import ScrapeResult

SECTION = "relabel"
LABELS = {"job": "node", "instance": "host:9100"}
JOB = Job(name="node", targets=(), scrape_interval=15, scrape_timeout=10, body_size_limit=2**26)
PUBLISHED = "prometheus_streams_poller_published_total"


def _per_sample(run: Callable[[], object], samples: int) -> float:
    runs = timeit.repeat(run, number=10, repeat=7, timer=time.process_time)
    return min(runs) / 10 / samples * 1e6


def in_process() -> dict[str, tuple[str, float]]:
    """Key -> (label, CPU µs per sample) of building one node page's payload."""
    page = node_page()
    samples = count_samples(page)
    plain = ScrapeResult(started=0.0, duration=0.01, body=page)
    zipped = replace(plain, gzip=gzip.compress(page, compresslevel=6, mtime=0))
    typical = replace(JOB, metric_relabel_configs=read_rules(TYPICAL))
    cache = SeriesCache()
    build_rewritten_payload(plain, typical, LABELS, cache)

    def cold() -> object:
        return build_rewritten_payload(plain, typical, LABELS, SeriesCache())

    rows: dict[str, tuple[str, Callable[[], object]]] = {
        "none_gzip": ("no rules, target gzips (forwarded)", partial(build_payload, zipped)),
        "none_plain": ("no rules, plain page (gzipped here)", partial(build_payload, plain)),
        "typical": (
            "typical rules (steady state)",
            partial(build_rewritten_payload, plain, typical, LABELS, cache),
        ),
        "typical_cold": ("typical rules, cold cache (first scrape)", cold),
    }
    return {key: (label, _per_sample(run, samples)) for key, (label, run) in rows.items()}


def _published(poller: Service) -> float:
    return metrics.read(monitor(poller)).total(PUBLISHED)


def poller_relabel(ctx: Context) -> None:
    """Poller CPU per sample with the typical metric_relabel_configs and without, side by side."""
    p = ctx.profile
    assert ctx.targets is not None
    n, interval = p.vmagent_targets, p.vmagent_interval
    urls = target_urls(ctx.targets, n)
    for session, windows in enumerate(ctx.sessions()):
        work = ctx.run_dir(f"relabel-{session}")
        with ctx.procs.scope():
            nats = start_nats(ctx.procs, work)
            settings = StreamSettings(max_msgs_per_subject=1)
            pollers = {
                "none": start_poller(
                    ctx.procs, work, nats, urls, interval, settings, "poller-none", identity="none"
                ),
                "typical": start_poller(
                    ctx.procs,
                    work,
                    nats,
                    urls,
                    interval,
                    settings,
                    "poller-typical",
                    identity="typical",
                    job_keys={"metric_relabel_configs": TYPICAL},
                    # --profile-poller profiles this one
                    launcher=ctx.poller_launcher,
                ),
            }
            # Every target published once by both: the series caches are warm.
            deadline = time.monotonic() + 3 * interval + 60
            while min(_published(s) for s in pollers.values()) < 2 * n:
                if time.monotonic() > deadline:
                    raise RuntimeError("relabel scenario: the pollers published too little")
                time.sleep(0.5)
            for _ in range(windows):
                _window(ctx, pollers, p.vmagent_window_intervals * interval)
        for key, (label, value) in in_process().items():
            ctx.record(SECTION, f"relabel_payload_{key}_us", label, "CPU µs/sample", value)


def _window(ctx: Context, pollers: dict[str, Service], seconds: float) -> None:
    watch = Watch({key: s.proc for key, s in pollers.items()})
    before = {key: _published(s) for key, s in pollers.items()}
    watch.begin()
    watch.hold(seconds)
    used = watch.end()
    per_1k = {}
    for key, service in pollers.items():
        samples = (_published(service) - before[key]) * NODE_SAMPLES
        if samples <= 0:
            raise RuntimeError(f"relabel scenario: poller {key} published nothing in the window")
        per_1k[key] = used[key][0] * 1e6 / samples
        label = "poller, typical metric_relabel_configs" if key == "typical" else "poller, no rules"
        ctx.record(SECTION, f"relabel_{key}_cpu_ms_per_1k_samples", label, "CPU ms/1k samples",
                   per_1k[key])  # fmt: skip
    ratio = per_1k["typical"] / per_1k["none"]
    ctx.record(SECTION, "relabel_ratio", "typical rules / no rules, CPU per sample", "ratio", ratio)
    ctx.log(f"relabel: {per_1k['none']:.2f} vs {per_1k['typical']:.2f} CPU ms/1k samples")


def main() -> None:
    """Print the in-process figures."""
    print(f"node page: {count_samples(node_page())} samples")
    for label, value in in_process().values():
        print(f"{label:>42}: {value:.3f} µs per sample")


if __name__ == "__main__":
    main()
