"""The `topology` scenario: the pipeline on a 3-node JetStream cluster against one server.

The same poller, receiver, targets and Pushgateway run first on one
nats-server, then on a 3-node cluster with a stream (and so its consumer) of
three replicas. On one machine the cluster's nodes share the CPUs with
everything else, so the figures that mean something are the ratios of one
run: latency p50/p99 and CPU per 1,000 samples, cluster over single.
(Two leaf datacenters sourcing into the cluster are a later step of issue 18.)
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

from benchmarks import metrics
from benchmarks.context import NODE_SAMPLES, Context, Watch, monitor
from benchmarks.procs import HOST, Proc, Processes, free_port, http_get
from benchmarks.services import (
    Service,
    StreamSettings,
    binary,
    start_nats,
    start_poller,
    start_pushgateway,
    start_receiver,
    target_urls,
)

POLLER = "prometheus_streams_poller_"
LATENCY = "prometheus_streams_receiver_scrape_to_push_seconds"
CLUSTER_SIZE = 3
SECTION = "topology"


def start_nats_cluster(procs: Processes, work: Path, size: int = CLUSTER_SIZE) -> list[Service]:
    """`size` nats-server nodes routed into one JetStream cluster; returns once it has a leader."""
    ports = [(free_port(), free_port(), free_port()) for _ in range(size)]  # client, http, route
    routes = ", ".join(f'"nats-route://{HOST}:{route}"' for _, _, route in ports)
    nodes = []
    for i, (port, http, route) in enumerate(ports):
        name = f"nats-{i + 1}"
        conf = work / f"{name}.conf"
        store = work / f"{name}-js"
        conf.write_text(
            f'server_name: "bench-{port}"\nlisten: "{HOST}:{port}"\nhttp: "{HOST}:{http}"\n'
            f"jetstream {{\n  store_dir: {json.dumps(str(store))}\n}}\n"
            f'cluster {{\n  name: "bench"\n  listen: "{HOST}:{route}"\n  routes: [{routes}]\n}}\n'
        )
        # Ready alone is enough here: the cluster is checked as a whole below.
        proc = procs.start(
            name,
            [binary("nats-server"), "-c", str(conf)],
            ready=functools.partial(_status, f"http://{HOST}:{http}/healthz?js-enabled-only=true"),
        )
        nodes.append(Service(proc, port, http))
    deadline = time.monotonic() + 60
    while not all(_meta_leader(node) for node in nodes):
        if time.monotonic() > deadline:
            raise RuntimeError("the nats-server cluster did not elect a meta leader in 60s")
        time.sleep(0.2)
    return nodes


def _status(url: str) -> bool:
    return http_get(url, timeout=2.0)[0] == 200


def _meta_leader(node: Service) -> bool:
    status, body = http_get(f"http://{HOST}:{node.extra_port}/jsz", timeout=2.0)
    return status == 200 and bool((json.loads(body).get("meta_cluster") or {}).get("leader"))


def topology(ctx: Context) -> None:
    """The pipeline on one nats-server, then on a 3-node cluster; cluster/single ratios."""
    p = ctx.profile
    assert ctx.targets is not None
    n, interval = p.pipeline_targets, p.pipeline_interval
    urls = target_urls(ctx.targets, n)
    for session, windows in enumerate(ctx.sessions()):
        measured: dict[str, list[dict[str, float]]] = {"single": [], "cluster": []}
        for shape, runs in measured.items():
            work = ctx.run_dir(f"topology-{shape}-{session}")
            with ctx.procs.scope():
                if shape == "single":
                    servers = [start_nats(ctx.procs, work)]
                    settings = StreamSettings()
                else:
                    servers = start_nats_cluster(ctx.procs, work)
                    settings = StreamSettings(replicas=CLUSTER_SIZE)
                gateway = start_pushgateway(ctx.procs, work, check=False)
                receiver = start_receiver(ctx.procs, work, servers, gateway, settings)
                since = time.time()
                poller = start_poller(ctx.procs, work, servers, urls, interval, settings)
                ctx.wait_scraped(n, since, 3 * interval + 60)
                procs = {
                    "poller": poller.proc,
                    "receiver": receiver.proc,
                    **{f"nats{i}": s.proc for i, s in enumerate(servers)},
                }
                for _ in range(windows):
                    runs.append(_window(ctx, procs, poller, receiver, interval))
        for single, cluster in zip(measured["single"], measured["cluster"], strict=True):
            _record(ctx, single, cluster)


def _record(ctx: Context, single: dict[str, float], cluster: dict[str, float]) -> None:
    for key, value in cluster.items():
        unit = "ms" if key.endswith("_ms") else "CPU ms/1k samples"
        alone = single[key]
        ctx.record(SECTION, f"topology_single_{key}", f"single server: {key}", unit, alone)
        ctx.record(SECTION, f"topology_cluster_{key}", f"3-node cluster: {key}", unit, value)
        if alone > 0:
            ctx.record(
                SECTION,
                f"topology_ratio_{key}",
                f"3-node cluster / single server: {key}",
                "ratio",
                value / alone,
            )
    shown = ", ".join(f"{k} {single[k]:.2f} -> {v:.2f}" for k, v in cluster.items())
    ctx.log(f"topology (single -> cluster): {shown}")


def _window(
    ctx: Context,
    procs: dict[str, Proc],
    poller: Service,
    receiver: Service,
    interval: float,
) -> dict[str, float]:
    """One measurement window: latency quantiles (ms) and CPU ms per 1,000 samples."""
    watch = Watch(procs)
    before_p, before_r = metrics.read(monitor(poller)), metrics.read(monitor(receiver))
    watch.begin()
    watch.hold(ctx.profile.window_intervals * interval)
    used = watch.end()
    after_p, after_r = metrics.read(monitor(poller)), metrics.read(monitor(receiver))
    scrapes = after_p.total(POLLER + "scrapes_total", poller_job="node") - before_p.total(
        POLLER + "scrapes_total", poller_job="node"
    )
    samples = max(1.0, scrapes * NODE_SAMPLES)
    nats_cpu = sum(cpu for name, (cpu, _, _) in used.items() if name.startswith("nats"))
    before_b, after_b = before_r.buckets(LATENCY), after_r.buckets(LATENCY)
    return {
        "latency_p50_ms": metrics.quantile(0.5, before_b, after_b) * 1000,
        "latency_p99_ms": metrics.quantile(0.99, before_b, after_b) * 1000,
        "nats_cpu_ms_per_1k_samples": nats_cpu * 1e6 / samples,
        "poller_cpu_ms_per_1k_samples": used["poller"][0] * 1e6 / samples,
        "receiver_cpu_ms_per_1k_samples": used["receiver"][0] * 1e6 / samples,
    }
