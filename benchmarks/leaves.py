"""Leaf datacenters for the `topology` scenario: leaf nodes, WAN links, the centre's progress.

Each datacenter is a leaf node with its own JetStream domain and edge stream
(docs/topology.md, configs from benchmarks/natsconf.py), linked to the central
cluster through a TCP proxy process: stopping the process cuts the WAN,
starting it again on the same ports restores it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nats

from benchmarks import clients
from benchmarks.context import Context
from benchmarks.gateway import CONCURRENCY, NODE_BODY, stream_state
from benchmarks.natsconf import CENTRAL_DOMAIN, STREAM, jetstream_node, leaf_config
from benchmarks.procs import HOST, Proc, Processes, free_port, http_get
from benchmarks.services import REPO, Service, binary
from prometheus_streams import wire

DATACENTERS = ("dc1", "dc2")
CUT_INTERVALS = 11  # as the recovery scenario: more than max_msgs_per_subject (10) at the centre

Figures = list[tuple[str, str, str, float]]  # (key, label, unit, value)


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
        ready=lambda: http_get(f"http://{HOST}:{http}/healthz?js-enabled-only=true")[0] == 200,
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


def wait(what: str, condition: Callable[[], bool], timeout: float) -> float:
    """Poll `condition()` until true; the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"topology: {what} not within {timeout:g}s")
        time.sleep(0.05)
    return time.monotonic()


@dataclass
class Centre:
    """The central stream as its nodes report it (the largest over the nodes: a replica
    may lag behind the leader, never lead it)."""

    last: int = 0  # last sequence
    floor: int = 0  # the receiver's consumer's ack floor
    sourced: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DATACENTERS, 0))
    errors: dict[str, str] = field(default_factory=dict)  # a source's error, per datacenter


def centre(central: list[Service]) -> Centre:
    """The central stream's state, and per datacenter the last edge sequence sourced."""
    state = Centre()
    for node in central:
        url = f"http://{HOST}:{node.extra_port}/jsz?streams=true&consumers=true"
        status, body = http_get(url, timeout=10.0)
        if status != 200:
            raise RuntimeError(f"/jsz of a central node -> {status}")
        for account in json.loads(body).get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                if stream.get("name") != STREAM:
                    continue
                state.last = max(state.last, int(stream["state"]["last_seq"]))
                for consumer in stream.get("consumer_detail") or []:
                    state.floor = max(state.floor, int(consumer["ack_floor"]["stream_seq"]))
                for source in stream.get("sources") or []:
                    dc = source["external"]["api"].split(".")[1]  # $JS.<domain>.API
                    seq = int(source.get("seq", 0))
                    state.sourced[dc] = max(state.sourced.get(dc, 0), seq)
                    if source.get("error"):
                        state.errors[dc] = str(source["error"].get("description"))
    return state


def edges(leaves: dict[str, Service]) -> dict[str, int]:
    """The last sequence of each datacenter's edge stream."""
    return {dc: int(str(stream_state(leaf).get("last_seq", 0))) for dc, leaf in leaves.items()}


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


def hops(central: list[Service], leaves: dict[str, Service], count: int) -> Figures:
    """Where the latency is: scrape to stored at the edge, and at the centre (stored times)."""
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
    at_centre = asyncio.run(_stored_after_scrape(url, CENTRAL_DOMAIN, count))
    return [
        (
            f"stored_{where}_p{q}_ms",
            f"scrape to stored at the {where}, p{q}",
            "ms",
            statistics.quantiles(delays, n=100)[q - 1] * 1000,
        )
        for where, delays in (("edge", edge), ("centre", at_centre))
        for q in (50, 99)
    ]


def catch_up(
    ctx: Context,
    central: list[Service],
    leaves: dict[str, Service],
    wan: tuple[dict[str, Proc], dict[str, list[tuple[int, int]]]],
    pollers: list[Service],
    gateway: Service,
    interval: float,
) -> Figures:
    """Cut both WAN links for 11 intervals; time the centre's catch-up once restored."""
    wans, links = wan
    for proc in wans.values():
        ctx.procs.stop(proc)
    time.sleep(CUT_INTERVALS * interval)
    # Stopped, the pollers leave a backlog of a known size (their last scrapes flushed).
    for poller in pollers:
        ctx.procs.stop(poller.proc)
    stored = edges(leaves)
    before = centre(central).sourced
    backlog = sum(stored[dc] - before[dc] for dc in DATACENTERS)
    restored = time.monotonic()
    for dc in DATACENTERS:
        start_wan(ctx.procs, dc, links[dc])
    link_up = max(
        wait(f"the leaf link of {dc} again", functools.partial(linked, leaf), 60)
        for dc, leaf in leaves.items()
    )
    # nats-server retries a source that failed after 10 s x failures (at most 2 min), so
    # the sourcing resumes a while after the link: timed apart from the drain.
    resumed: dict[str, float] = {}
    deadline = link_up + 180 + backlog / 20
    while True:
        state = centre(central)
        for dc in DATACENTERS:
            if dc not in resumed and state.sourced[dc] > before[dc]:
                resumed[dc] = time.monotonic()
        caught_up = all(state.sourced[dc] >= stored[dc] for dc in DATACENTERS)
        if caught_up and state.floor >= state.last:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"topology: no catch-up: sourced {state.sourced} of {stored}; "
                f"sources' errors {state.errors}"
            )
        time.sleep(0.05)
    done, sourcing = time.monotonic(), max(resumed.values())
    n = ctx.profile.pipeline_targets
    group_urls = [clients.group_path(gateway.url, f"t{i}") for i in range(n)]
    direct = asyncio.run(clients.push(group_urls, NODE_BODY, CONCURRENCY, 600.0, n))
    ctx.log(
        f"topology catch-up: backlog {backlog} messages, {done - restored:.2f}s from restore "
        f"(links up {link_up - restored:.2f}s, sources resumed {sourcing - link_up:.2f}s later, "
        f"drained {done - sourcing:.2f}s later), direct round {direct.seconds:.2f}s"
    )
    return [
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
    ]
