"""The `topology` scenario: the pipeline on one server, on a 3-node cluster, across leaf nodes.

The same targets and Pushgateway run, in one scenario, with three layouts:

- `single`: poller and receiver on one nats-server (the `pipeline` setup);
- `cluster`: on a 3-node JetStream cluster, stream (and so consumer) with three replicas;
- `leaves`: two datacenters, each a leaf node with its own JetStream domain and
  edge stream and a poller scraping half of the targets, their links to a
  3-node central cluster (domain `central`) each through a TCP proxy (the WAN);
  the receiver consumes the central stream that sources both edge streams
  (the configs of docs/topology.md, from benchmarks/natsconf.py).

On one machine every node shares the CPUs with everything else, so the
figures that mean something are the ratios against `single` in the same run:
latency p50/p99 and CPU per 1,000 samples. After the `leaves` windows, both
WAN links are cut for 11 intervals; the catch-up once they are restored is
timed against one round of direct pushes of as many groups.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import metrics
from benchmarks.context import NODE_SAMPLES, Context, Watch, monitor
from benchmarks.gateway import pushed
from benchmarks.leaves import (
    CUT_INTERVALS,
    DATACENTERS,
    Figures,
    catch_up,
    centre,
    edges,
    hops,
    linked,
    start_leaf,
    start_wan,
    wait,
)
from benchmarks.natsconf import CENTRAL_DOMAIN, STREAM, hub_config, jetstream_node
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
# The edge keeps every scrape of the cut, so the backlog is all 11 intervals.
EDGE_KEEP = 2 * CUT_INTERVALS
LABELS = {"cluster": "3-node cluster", "leaves": "2 leaf datacenters -> 3-node cluster"}


def start_nats_cluster(
    procs: Processes,
    work: Path,
    size: int = CLUSTER_SIZE,
    datacenters: Sequence[str] = (),
    leaf_ports: Sequence[int] = (),
) -> list[Service]:
    """`size` nats-server nodes routed into one JetStream cluster; returns once it has a leader.

    With `datacenters`, the nodes are the centre of docs/topology.md: domain
    `central`, its accounts, and a leaf node listener on each of `leaf_ports`.
    """
    ports = [(free_port(), free_port(), free_port()) for _ in range(size)]  # client, http, route
    routes = ", ".join(f'"nats-route://{HOST}:{route}"' for _, _, route in ports)
    nodes = []
    for i, (port, http, route) in enumerate(ports):
        name = f"nats-{i + 1}"
        conf = work / f"{name}.conf"
        domain = CENTRAL_DOMAIN if datacenters else None
        body = hub_config(leaf_ports[i], datacenters) if datacenters else ""
        conf.write_text(
            jetstream_node(f"bench-{port}", port, http, work / f"{name}-js", domain)
            + f'cluster {{\n  name: "bench"\n  listen: "{HOST}:{route}"\n  routes: [{routes}]\n}}\n'
            + body
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
    """The pipeline on one nats-server, a 3-node cluster, two leaf datacenters; ratios."""
    p = ctx.profile
    assert ctx.targets is not None
    n, interval = p.pipeline_targets, p.pipeline_interval
    urls = target_urls(ctx.targets, n)
    for session, windows in enumerate(ctx.sessions()):
        measured: dict[str, list[dict[str, float]]] = {"single": [], "cluster": [], "leaves": []}
        for shape, runs in measured.items():
            work = ctx.run_dir(f"topology-{shape}-{session}")
            with ctx.procs.scope():
                if shape == "leaves":
                    _leaves(ctx, work, urls, interval, windows, runs)
                    continue
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
                _settle(receiver, n, interval)
                procs = {
                    "poller": poller.proc,
                    "receiver": receiver.proc,
                    **{f"nats{i}": s.proc for i, s in enumerate(servers)},
                }
                for _ in range(windows):
                    runs.append(_window(ctx, procs, [poller], receiver, interval))
        for shape in ("cluster", "leaves"):
            for single, other in zip(measured["single"], measured[shape], strict=True):
                _record(ctx, shape, single, other)


def _leaves(
    ctx: Context,
    work: Path,
    urls: list[str],
    interval: float,
    windows: int,
    runs: list[dict[str, float]],
) -> None:
    """Two leaf datacenters sourcing into a 3-node cluster: windows, then a WAN cut."""
    leaf_ports = [free_port() for _ in range(CLUSTER_SIZE)]
    central = start_nats_cluster(ctx.procs, work, datacenters=DATACENTERS, leaf_ports=leaf_ports)
    links = {dc: [(free_port(), port) for port in leaf_ports] for dc in DATACENTERS}
    wans = {dc: start_wan(ctx.procs, dc, links[dc]) for dc in DATACENTERS}
    leaves = {
        dc: start_leaf(ctx.procs, work, dc, [f"{HOST}:{port}" for port, _ in links[dc]])
        for dc in DATACENTERS
    }
    for dc, leaf in leaves.items():
        wait(f"the leaf link of {dc}", functools.partial(linked, leaf), 60)
    gateway = start_pushgateway(ctx.procs, work, check=False)
    stream: dict[str, object] = {
        "urls": [f"nats://central:central-pw@{HOST}:{s.port}" for s in central],
        "domain": CENTRAL_DOMAIN,
        "sources": [{"name": STREAM, "domain": dc, "publisher": dc} for dc in DATACENTERS],
    }
    settings = StreamSettings(replicas=CLUSTER_SIZE)
    receiver = start_receiver(ctx.procs, work, central, gateway, settings, stream=stream)
    since = time.time()
    half = len(urls) // 2
    pollers = {
        dc: start_poller(
            ctx.procs,
            work,
            leaves[dc],
            part,
            interval,
            StreamSettings(max_msgs_per_subject=EDGE_KEEP),
            name=f"poller-{dc}",
            identity=dc,
            stream={
                "urls": f"nats://poller-{dc}:poller-{dc}-pw@{HOST}:{leaves[dc].port}",
                "domain": dc,
            },
        )
        for dc, part in zip(DATACENTERS, (urls[:half], urls[half:]), strict=True)
    }
    ctx.wait_scraped(len(urls), since, 3 * interval + 60)
    # nats-server retries a source that failed (the edge stream did not exist yet) after
    # 10 s, then 20 s, ...: the windows start once both datacenters' scrapes flow.
    stored = edges(leaves)
    wait(
        "both sources flowing",
        lambda: all(n >= stored[dc] for dc, n in centre(central).sourced.items()),
        150,
    )
    _settle(receiver, len(urls), interval)
    procs = {
        **{f"poller-{dc}": p.proc for dc, p in pollers.items()},
        "receiver": receiver.proc,
        **{f"nats{i}": s.proc for i, s in enumerate(central)},
        **{f"leaf-{dc}": leaf.proc for dc, leaf in leaves.items()},
        **{f"wan-{dc}": proc for dc, proc in wans.items()},
    }
    for _ in range(windows):
        runs.append(_window(ctx, procs, list(pollers.values()), receiver, interval))
        count = min(200, 2 * len(urls))
        _record_figures(ctx, "topology_leaves", LABELS["leaves"], hops(central, leaves, count))
    figures = catch_up(
        ctx, central, leaves, (wans, links), list(pollers.values()), gateway, interval
    )
    _record_figures(ctx, "topology_catchup", "", figures)


def _record_figures(ctx: Context, prefix: str, label: str, figures: Figures) -> None:
    for key, what, unit, value in figures:
        ctx.record(SECTION, f"{prefix}_{key}", f"{label}: {what}" if label else what, unit, value)


def _settle(receiver: Service, n: int, interval: float, timeout: float = 60) -> None:
    """Wait until the receiver pushed `n` times, then one more interval (start-up is over)."""
    wait("the first pushes", lambda: pushed(receiver) >= n, timeout + 3 * interval)
    time.sleep(interval)


def _record(ctx: Context, shape: str, single: dict[str, float], other: dict[str, float]) -> None:
    ratio = "topology_ratio" if shape == "cluster" else f"topology_{shape}_ratio"
    for key, value in other.items():
        unit = "ms" if key.endswith("_ms") else "CPU ms/1k samples"
        alone = single.get(key)
        if shape == "cluster" and alone is not None:  # the single figures once per run
            ctx.record(SECTION, f"topology_single_{key}", f"single server: {key}", unit, alone)
        ctx.record(SECTION, f"topology_{shape}_{key}", f"{LABELS[shape]}: {key}", unit, value)
        if alone:
            label = f"{LABELS[shape]} / single server: {key}"
            ctx.record(SECTION, f"{ratio}_{key}", label, "ratio", value / alone)
    shown = ", ".join(f"{k} {single.get(k, 0.0):.2f} -> {v:.2f}" for k, v in other.items())
    ctx.log(f"topology (single -> {shape}): {shown}")


def _window(
    ctx: Context,
    procs: dict[str, Proc],
    pollers: list[Service],
    receiver: Service,
    interval: float,
) -> dict[str, float]:
    """One measurement window: latency quantiles (ms) and CPU ms per 1,000 samples."""
    watch = Watch(procs)
    before_p = [metrics.read(monitor(p)) for p in pollers]
    before_r = metrics.read(monitor(receiver))
    watch.begin()
    watch.hold(ctx.profile.window_intervals * interval)
    used = watch.end()
    after_p = [metrics.read(monitor(p)) for p in pollers]
    after_r = metrics.read(monitor(receiver))
    scrapes = sum(
        after.total(POLLER + "scrapes_total", poller_job="node")
        - before.total(POLLER + "scrapes_total", poller_job="node")
        for before, after in zip(before_p, after_p, strict=True)
    )
    samples = max(1.0, scrapes * NODE_SAMPLES)

    def cpu(prefix: str) -> float:
        return sum(c for name, (c, _, _) in used.items() if name.startswith(prefix))

    before_b, after_b = before_r.buckets(LATENCY), after_r.buckets(LATENCY)
    figures = {
        "latency_p50_ms": metrics.quantile(0.5, before_b, after_b) * 1000,
        "latency_p99_ms": metrics.quantile(0.99, before_b, after_b) * 1000,
        "nats_cpu_ms_per_1k_samples": cpu("nats") * 1e6 / samples,
        "poller_cpu_ms_per_1k_samples": cpu("poller") * 1e6 / samples,
        "receiver_cpu_ms_per_1k_samples": cpu("receiver") * 1e6 / samples,
        "ours_cpu_ms_per_1k_samples": (cpu("poller") + cpu("receiver")) * 1e6 / samples,
    }
    if any(name.startswith("leaf") for name in used):
        figures["leaf_nats_cpu_ms_per_1k_samples"] = cpu("leaf") * 1e6 / samples
        figures["wan_proxy_cpu_ms_per_1k_samples"] = cpu("wan") * 1e6 / samples
    return figures
