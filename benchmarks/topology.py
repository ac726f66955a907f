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

import asyncio
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import nats

from benchmarks import clients, metrics
from benchmarks.context import NODE_SAMPLES, Context, Watch, monitor
from benchmarks.gateway import CONCURRENCY, NODE_BODY, pushed, stream_state
from benchmarks.natsconf import CENTRAL_DOMAIN, STREAM, hub_config, jetstream_node, leaf_config
from benchmarks.procs import HOST, Proc, Processes, free_port, http_get
from benchmarks.services import (
    REPO,
    Service,
    StreamSettings,
    binary,
    start_nats,
    start_poller,
    start_pushgateway,
    start_receiver,
    target_urls,
)
from prometheus_streams import wire

POLLER = "prometheus_streams_poller_"
LATENCY = "prometheus_streams_receiver_scrape_to_push_seconds"
CLUSTER_SIZE = 3
SECTION = "topology"
DATACENTERS = ("dc1", "dc2")
CUT_INTERVALS = 11  # as the recovery scenario: more than max_msgs_per_subject (10) at the centre
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


def start_leaf(procs: Processes, work: Path, dc: str, hub_urls: Sequence[str]) -> Service:
    """A datacenter's leaf node (domain `dc`, account DC<n>) linked to `hub_urls`."""
    port, http = free_port(), free_port()
    conf = work / f"leaf-{dc}.conf"
    conf.write_text(
        jetstream_node(f"leaf-{dc}", port, http, work / f"leaf-{dc}-js", dc)
        + leaf_config(dc, hub_urls)
    )
    proc = procs.start(
        f"leaf-{dc}",
        [binary("nats-server"), "-c", str(conf)],
        ready=functools.partial(_status, f"http://{HOST}:{http}/healthz?js-enabled-only=true"),
    )
    return Service(proc, port, http)


def start_wan(procs: Processes, dc: str, links: Sequence[tuple[int, int]]) -> Proc:
    """The WAN of `dc`: one TCP proxy process forwarding each (port, upstream port)."""
    return procs.start(
        f"wan-{dc}",
        [sys.executable, "-m", "benchmarks.tcpproxy", *(f"{p}={HOST}:{up}" for p, up in links)],
        env={"PYTHONPATH": str(REPO)},
    )


def linked(leaf: Service) -> bool:
    """Whether a leaf node has its leaf link up (asked from its side)."""
    status, body = http_get(f"http://{HOST}:{leaf.extra_port}/leafz", timeout=2.0)
    return status == 200 and bool(json.loads(body).get("leafnodes"))


def _wait(what: str, condition: Callable[[], bool], timeout: float) -> float:
    """Poll `condition()` until true; the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"topology: {what} not within {timeout:g}s")
        time.sleep(0.05)
    return time.monotonic()


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
        _wait(f"the leaf link of {dc}", functools.partial(linked, leaf), 60)
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
    edges = _edges(leaves)
    _wait(
        "both sources flowing",
        lambda: all(n >= edges[dc] for dc, n in _central(central)[2].items()),
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
        _hops(ctx, central, leaves)
    _catch_up(ctx, central, leaves, (wans, links), list(pollers.values()), gateway, interval)


async def _stored_after_scrape(url: str, domain: str, count: int) -> list[float]:
    """Seconds from scrape to stored, of the newest `count` messages of a stream."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(domain=domain)
        last = (await js.stream_info(STREAM)).state.last_seq
        delays = []
        for seq in range(max(1, last - count + 1), last + 1):
            msg = await js.get_msg(STREAM, seq)
            scraped = int((msg.headers or {})[wire.H_SCRAPE_TIME]) / 1000
            assert msg.time is not None
            delays.append(msg.time.timestamp() - scraped)
        return delays
    finally:
        await nc.close()


def _hops(ctx: Context, central: list[Service], leaves: dict[str, Service]) -> None:
    """Where the latency is: scrape to stored at the edge, and at the centre (stored times)."""
    count = min(200, 2 * ctx.profile.pipeline_targets)
    edge = [
        delay
        for dc, leaf in leaves.items()
        for delay in asyncio.run(
            _stored_after_scrape(
                f"nats://admin-{dc}:admin-{dc}-pw@{HOST}:{leaf.port}", dc, count // 2
            )
        )
    ]
    url = f"nats://central:central-pw@{HOST}:{central[0].port}"
    centre = asyncio.run(_stored_after_scrape(url, CENTRAL_DOMAIN, count))
    for where, delays in (("edge", edge), ("centre", centre)):
        for q in (50, 99):
            value = statistics.quantiles(delays, n=100)[q - 1] * 1000
            label = f"{LABELS['leaves']}: scrape to stored at the {where}, p{q}"
            ctx.record(SECTION, f"topology_leaves_stored_{where}_p{q}_ms", label, "ms", value)


def _settle(receiver: Service, n: int, interval: float, timeout: float = 60) -> None:
    """Wait until the receiver pushed `n` times, then one more interval (start-up is over)."""
    _wait("the first pushes", lambda: pushed(receiver) >= n, timeout + 3 * interval)
    time.sleep(interval)


_errors: dict[str, str] = {}  # the last error each source showed, for failure messages


def _central(central: list[Service]) -> tuple[int, int, dict[str, int]]:
    """The central stream: last sequence, the consumer's ack floor, per datacenter the
    last sequence of its edge stream sourced.

    The largest over the nodes: a replica may lag behind the leader, never lead it.
    """
    last = floor = 0
    sourced = dict.fromkeys(DATACENTERS, 0)
    for node in central:
        url = f"http://{HOST}:{node.extra_port}/jsz?streams=true&consumers=true"
        status, body = http_get(url, timeout=10.0)
        if status != 200:
            raise RuntimeError(f"/jsz of a central node -> {status}")
        for account in json.loads(body).get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                if stream.get("name") != STREAM:
                    continue
                last = max(last, int(stream["state"]["last_seq"]))
                for consumer in stream.get("consumer_detail") or []:
                    floor = max(floor, int(consumer["ack_floor"]["stream_seq"]))
                for source in stream.get("sources") or []:
                    dc = source["external"]["api"].split(".")[1]  # $JS.<domain>.API
                    sourced[dc] = max(sourced.get(dc, 0), int(source.get("seq", 0)))
                    if source.get("error"):
                        _errors[dc] = str(source["error"].get("description"))
    return last, floor, sourced


def _edges(leaves: dict[str, Service]) -> dict[str, int]:
    """The last sequence of each datacenter's edge stream."""
    return {dc: int(str(stream_state(leaf).get("last_seq", 0))) for dc, leaf in leaves.items()}


def _catch_up(
    ctx: Context,
    central: list[Service],
    leaves: dict[str, Service],
    wan: tuple[dict[str, Proc], dict[str, list[tuple[int, int]]]],
    pollers: list[Service],
    gateway: Service,
    interval: float,
) -> None:
    """Cut both WAN links for 11 intervals; time the centre's catch-up once restored."""
    wans, links = wan
    for proc in wans.values():
        ctx.procs.stop(proc)
    time.sleep(CUT_INTERVALS * interval)
    # Stopped, the pollers leave a backlog of a known size (their last scrapes flushed).
    for poller in pollers:
        ctx.procs.stop(poller.proc)
    edges = _edges(leaves)
    _, _, before = _central(central)
    backlog = sum(edges[dc] - before[dc] for dc in DATACENTERS)
    restored = time.monotonic()
    for dc in DATACENTERS:
        start_wan(ctx.procs, dc, links[dc])
    link_up = max(
        _wait(f"the leaf link of {dc} again", functools.partial(linked, leaf), 60)
        for dc, leaf in leaves.items()
    )
    # nats-server retries a source that failed after 10 s x failures (at most 2 min), so
    # the sourcing resumes a while after the link: timed apart from the drain.
    resumed: dict[str, float] = {}
    deadline = link_up + 180 + backlog / 20
    while True:
        last, floor, sourced = _central(central)
        for dc in DATACENTERS:
            if dc not in resumed and sourced[dc] > before[dc]:
                resumed[dc] = time.monotonic()
        if all(sourced[dc] >= edges[dc] for dc in DATACENTERS) and floor >= last:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"topology: no catch-up: sourced {sourced} of {edges}; errors seen {_errors}"
            )
        time.sleep(0.05)
    done, sourcing = time.monotonic(), max(resumed.values())
    n = ctx.profile.pipeline_targets
    group_urls = [clients.group_path(gateway.url, f"t{i}") for i in range(n)]
    direct = asyncio.run(clients.push(group_urls, NODE_BODY, CONCURRENCY, 600.0, n))
    for key, label, unit, value in (
        ("backlog_messages", "catch-up: backlog at the edges", "messages", backlog),
        ("from_restore_s", "catch-up: WAN restored to all acked", "s", done - restored),
        ("link_s", "catch-up: WAN restored to both leaf links up", "s", link_up - restored),
        (
            "source_retry_s",
            "catch-up: links up to both sources resumed (nats-server)",
            "s",
            sourcing - link_up,
        ),
        ("drain_s", "catch-up: both sources resumed to all acked", "s", done - sourcing),
        ("direct_round_s", f"catch-up: one round of {n} direct pushes", "s", direct.seconds),
        (
            "ratio",
            "catch-up (from restore) / one direct round",
            "ratio",
            (done - restored) / direct.seconds,
        ),
        (
            "drain_ratio",
            "catch-up (from sources resumed) / one direct round",
            "ratio",
            (done - sourcing) / direct.seconds,
        ),
    ):
        ctx.record(SECTION, f"topology_catchup_{key}", label, unit, value)
    ctx.log(
        f"topology catch-up: backlog {backlog} messages, {done - restored:.2f}s from restore "
        f"(links up {link_up - restored:.2f}s, sources resumed {sourcing - link_up:.2f}s later, "
        f"drained {done - sourcing:.2f}s later), direct round {direct.seconds:.2f}s"
    )


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
