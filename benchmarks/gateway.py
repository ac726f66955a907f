"""Scenarios around the Pushgateway and the baselines: its own limit, direct push, receiver drain.

Also the raw-scrape baseline, the ceiling for the poller.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import nats as nats_client

from benchmarks import clients
from benchmarks.context import BIG_PAGE, BIG_SAMPLES, NODE_PAGE, NODE_SAMPLES, Context
from benchmarks.procs import HOST, http_get, http_request, on_cpus
from benchmarks.services import (
    Service,
    StreamSettings,
    nats_url,
    start_nats,
    start_poller,
    start_pushgateway,
    start_receiver,
    target_urls,
)

CONCURRENCY = 8  # the receiver's default push_gateway.concurrency
SCRAPE_CONCURRENCY = 64
NODE_BODY = NODE_PAGE + clients.health_lines(NODE_SAMPLES)
BIG_BODY = BIG_PAGE + clients.health_lines(BIG_SAMPLES)
_SUCCESS = re.compile(
    rb'^prometheus_streams_receiver_pushes_total\{result="success"\} (\S+)$', re.MULTILINE
)


def raw_scrape(ctx: Context) -> None:
    """The raw-scrape baseline: a minimal client fetching the same targets as fast as it can."""
    p = ctx.profile
    assert ctx.targets is not None
    for run in range(p.runs):
        for kind, samples, count in (("node", NODE_SAMPLES, 1000), ("big", BIG_SAMPLES, 100)):
            urls = target_urls(ctx.targets, count, kind)
            for inflate in (False, True):
                rate = asyncio.run(
                    clients.scrape(urls, SCRAPE_CONCURRENCY, p.raw_seconds, 200_000, inflate)
                )
                how = "inflated" if inflate else "kept gzipped"
                ctx.record(
                    "baselines",
                    f"raw_scrape_{kind}_{'inflate' if inflate else 'gzip'}_per_s",
                    f"raw scrape, {kind} pages, {how}",
                    "scrapes/s",
                    rate.per_second,
                )
                if kind == "node" and not inflate:
                    ctx.record(
                        "baselines",
                        "raw_scrape_node_samples_per_s",
                        "raw scrape, node pages, samples",
                        "samples/s",
                        rate.per_second * samples,
                    )
        ctx.log(f"raw scrape run {run + 1}/{p.runs} done")


def gateway_limit(ctx: Context) -> None:
    """Pushes/s the Pushgateway accepts, with and without its consistency check, by groups stored.

    Groups are filled by a Pushgateway without the check (fast), which persists
    them on SIGTERM; a Pushgateway with the check then starts on that file, so
    the check-mode rate is measured with every group in place.
    """
    p = ctx.profile
    shapes = [("node", g, NODE_BODY, NODE_SAMPLES) for g in p.gateway_groups]
    shapes += [("big", g, BIG_BODY, BIG_SAMPLES) for g in p.gateway_big_groups]
    for run in range(p.runs):
        for kind, groups, body, samples in shapes:
            work = ctx.run_dir(f"gateway-{kind}-{groups}-{run}")
            data = work / "pushgateway.data"
            for check in (False, True):
                gateway = start_pushgateway(ctx.procs, work, check, f"pgw-check-{check}", data)
                try:
                    urls = [clients.group_path(gateway.url, f"t{i}") for i in range(groups)]
                    if not check:
                        fill = asyncio.run(clients.push(urls, body, CONCURRENCY, 600.0, groups))
                        if fill.done != groups:
                            raise RuntimeError(f"filling {groups} groups: {fill}")
                    # The check can take seconds per push with big groups: bound by time.
                    rate = asyncio.run(
                        clients.push(urls, body, CONCURRENCY, p.gateway_seconds, 1_000_000)
                    )
                finally:
                    ctx.procs.stop(gateway.proc, grace=120.0)  # SIGTERM persists the groups
                mode = "check" if check else "nocheck"
                shape = f"{groups} groups of {samples} series"
                ctx.record(
                    "pushgateway",
                    f"pgw_{mode}_{kind}_{groups}_pushes_per_s",
                    f"{'with' if check else 'without'} consistency check, {shape}",
                    "pushes/s",
                    rate.per_second,
                )
                ctx.record(
                    "pushgateway",
                    f"pgw_{mode}_{kind}_{groups}_samples_per_s",
                    f"{'with' if check else 'without'} consistency check, {shape}",
                    "samples/s",
                    rate.per_second * (samples + 3),  # with the health series
                )
        ctx.log(f"Pushgateway limit run {run + 1}/{p.runs} done")


def stream_state(nats: Service) -> dict[str, object]:
    """The PROMETHEUS stream's state and its consumer, from nats-server's /jsz."""
    url = f"http://{HOST}:{nats.extra_port}/jsz?streams=true&consumers=true"
    status, body = http_get(url, timeout=10.0)
    if status != 200:
        raise RuntimeError(f"/jsz -> {status}")
    for account in json.loads(body).get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            if stream.get("name") == "PROMETHEUS":
                state: dict[str, object] = stream.get("state", {})
                consumers = stream.get("consumer_detail") or []
                state["consumer"] = consumers[0] if consumers else {}
                return state
    return {}


def pushed(receiver: Service) -> float:
    """The receiver's successful pushes so far (a cheap read of one line of /metrics)."""
    status, body = http_get(f"http://{HOST}:{receiver.port}/metrics", timeout=10.0)
    match = _SUCCESS.search(body) if status == 200 else None
    return float(match.group(1)) if match else 0.0


def fill_stream(ctx: Context, nats: Service, work_dir: Path, urls: list[str]) -> int:
    """Run a poller until every target is in the stream once, stop it; the message count."""
    settings = StreamSettings(max_msgs_per_subject=1)
    interval = max(1.0, len(urls) / 300)  # well within what one poller scrapes per second
    poller = start_poller(ctx.procs, work_dir, nats, urls, interval, settings)
    try:
        deadline = time.monotonic() + 3 * interval + 60
        while True:
            state = stream_state(nats)
            # the targets plus the poller's own job
            if int(str(state.get("num_subjects", 0))) >= len(urls) + 1:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"stream not filled: {state}")
            time.sleep(0.2)
    finally:
        ctx.procs.stop(poller.proc)
    return int(str(stream_state(nats).get("messages", 0)))


def acked(nats: Service) -> int:
    """Messages the PROMETHEUS consumer has acked so far (from nats-server, not the receiver).

    Read from nats-server so that watching the drain costs the receiver nothing.
    """
    consumer = stream_state(nats).get("consumer")
    floor = consumer.get("ack_floor", {}) if isinstance(consumer, dict) else {}
    return int(floor.get("consumer_seq", 0)) if isinstance(floor, dict) else 0


# Each run measures the three in another order: the Pushgateway keeps getting
# a little faster for a while, and no contender should always come last.
DRAIN_ORDERS = (
    ("drain", "lean", "aiohttp"),
    ("lean", "aiohttp", "drain"),
    ("aiohttp", "drain", "lean"),
)


@dataclass(frozen=True)
class Placement:
    """Which CPUs the Pushgateway gets, and which everything else (nats-server, the contenders)."""

    gateway: frozenset[int]
    rest: frozenset[int]

    @property
    def label(self) -> str:
        """How the report names it."""
        return f"the Pushgateway on CPU {_cpus(self.gateway)}, the rest on {_cpus(self.rest)}"


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def placement() -> Placement | None:
    """The Pushgateway on the last CPU this process may use, the rest on the others.

    None with fewer than two CPUs: nothing to separate.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    return Placement(frozenset(allowed[-1:]), frozenset(allowed[:-1]))


@dataclass(frozen=True)
class _Variant:
    """Where the drain's figures go: keys, section, and how the processes are placed."""

    prefix: str
    section: str
    where: Placement | None

    @property
    def gateway(self) -> frozenset[int] | None:
        """The Pushgateway's CPUs; None: any."""
        return self.where.gateway if self.where else None

    @property
    def rest(self) -> frozenset[int] | None:
        """The CPUs of nats-server and the contenders; None: any."""
        return self.where.rest if self.where else None


SHARED = _Variant("", "receiver", None)


# Rounds of direct pushes, each after a wipe, before anything is measured, and
# then one drain. A new Pushgateway spends more CPU per push for its first few
# rounds (a full run on 2026-12-02 after one round: 3.6, 3.3, 3.3 ms in the
# first turn, 2.0-2.3 from the fourth on), and after three direct rounds the
# first drain still cost it 3.8 ms per push against 2.5-2.9 for the later
# ones: whoever came first was weighed down.
WARM_ROUNDS = 3


def drain(ctx: Context) -> None:
    """Receiver drain vs direct push, every process free to run on every CPU."""
    _drain(ctx, SHARED)


def drain_pinned(ctx: Context) -> None:
    """The same with the Pushgateway on a CPU of its own, as on a machine of its own.

    On shared CPUs the contender's own CPU is taken from the Pushgateway, so
    the shared ratio also measures how much CPU the receiver needs besides
    pushing (pulling, inflating, checking, acking). With the Pushgateway apart,
    the ratio shows whether the receiver keeps the Pushgateway as busy as the
    direct clients do: whether the receiver is the bottleneck.
    """
    where = placement()
    if where is None:
        ctx.notes.append("drain_pinned: needs at least two CPUs, not measured")
        return
    ctx.notes.append(f"drain_pinned: {where.label}")
    _drain(ctx, _Variant("pinned_", "receiver_pinned", where))


def _drain(ctx: Context, variant: _Variant) -> None:
    """Receiver draining a pre-filled stream vs direct pushes of the same bodies, each alone.

    The Pushgateway first holds every group a few times (`WARM_ROUNDS` direct
    rounds and one untimed drain, each after a wipe): a fresh one is slower
    while its heap grows. Then the drain and the two direct clients take
    turns, each `drain_rotations` times, in an order that starts elsewhere
    each run; every drain starts a fresh consumer on the same stored
    scrapes. A run's ratio is the median drain over the faster median direct
    client: this machine's Pushgateway varies by a third between identical
    rounds, and a single round decided too much.
    """
    p = ctx.profile
    assert ctx.targets is not None
    n = p.drain_scrapes
    urls = target_urls(ctx.targets, n)
    rest = variant.rest
    key, section = variant.prefix, variant.section
    for run in range(p.runs):
        work = ctx.run_dir(f"{key}drain-{run}")
        rates: dict[str, list[float]] = {"drain": [], "lean": [], "aiohttp": []}  # 10-90 %
        whole: dict[str, list[float]] = {"drain": [], "lean": [], "aiohttp": []}  # all of it
        with ctx.procs.scope():
            nats = start_nats(ctx.procs, work, cpus=rest)
            gateway = start_pushgateway(ctx.procs, work, check=False, cpus=variant.gateway)
            messages = fill_stream(ctx, nats, work, urls)
            group_urls = [clients.group_path(gateway.url, f"t{i}") for i in range(n)]
            with on_cpus(rest):
                for _ in range(WARM_ROUNDS):
                    wipe(gateway)
                    asyncio.run(clients.push(group_urls, NODE_BODY, CONCURRENCY, 600.0, n))
            # And one drain, untimed, like the direct clients' warm rounds.
            wipe(gateway)
            asyncio.run(_fresh_consumer(nats))
            _drain_once(ctx, work, nats, gateway, messages, n, variant, timed=False)
            for turn in range(p.drain_rotations):
                for step in DRAIN_ORDERS[(run + turn) % len(DRAIN_ORDERS)]:
                    wipe(gateway)
                    gateway_cpu = gateway.proc.usage().cpu
                    if step == "drain":
                        asyncio.run(_fresh_consumer(nats))
                        rate, all_of_it, pushes = _drain_once(
                            ctx, work, nats, gateway, messages, n, variant
                        )
                    else:
                        with on_cpus(rest):
                            pushed = asyncio.run(
                                clients.push(group_urls, NODE_BODY, CONCURRENCY, 600.0, n, step)
                            )
                        all_of_it, pushes = pushed.per_second, pushed.done
                        rate = clients.steady_rate(pushed.progress, n) or all_of_it
                    rates[step].append(rate)
                    whole[step].append(all_of_it)
                    gateway_ms = (gateway.proc.usage().cpu - gateway_cpu) * 1e3 / max(1, pushes)
                    who = "receiver draining" if step == "drain" else f"direct push ({step})"
                    ctx.record(
                        section,
                        f"{key}pgw_cpu_ms_per_push_{step}",
                        f"Pushgateway CPU per push, {who}",
                        "CPU ms",
                        gateway_ms,
                    )
        steady = {step: statistics.median(values) for step, values in rates.items()}
        overall = {step: statistics.median(values) for step, values in whole.items()}
        ctx.record(
            section,
            f"{key}direct_push_per_s",
            "direct push baseline (aiohttp client), 10-90 %",
            "pushes/s",
            steady["aiohttp"],
        )
        ctx.record(
            section,
            f"{key}direct_push_lean_per_s",
            "direct push baseline (the receiver's HTTP client), 10-90 %",
            "pushes/s",
            steady["lean"],
        )
        ctx.record(
            section,
            f"{key}drain_ratio",
            "receiver drain / faster direct push, 10-90 %",
            "ratio",
            steady["drain"] / max(steady["lean"], steady["aiohttp"]),
        )
        ctx.record(
            section,
            f"{key}drain_ratio_aiohttp",
            "the same against the aiohttp client alone, 10-90 %",
            "ratio",
            steady["drain"] / steady["aiohttp"],
        )
        ctx.record(
            section,
            f"{key}drain_ratio_whole",
            "the same, from start to the last answer or ack",
            "ratio",
            overall["drain"] / max(overall["lean"], overall["aiohttp"]),
        )
        ctx.log(
            f"{key}drain run {run + 1}/{p.runs}: {messages} messages, medians of "
            f"{p.drain_rotations}: receiver {steady['drain']:.0f}/s, direct "
            f"{steady['aiohttp']:.0f}/s (aiohttp), {steady['lean']:.0f}/s (lean), 10-90 %; "
            f"whole: {overall['drain']:.0f}/s, {overall['aiohttp']:.0f}/s, "
            f"{overall['lean']:.0f}/s"
        )


async def _fresh_consumer(nats: Service) -> None:
    """Delete the stream's consumers, so the next receiver drains every stored scrape again."""
    nc = await nats_client.connect(nats_url(nats))
    try:
        js = nc.jetstream()
        for info in await js.consumers_info("PROMETHEUS"):
            await js.delete_consumer("PROMETHEUS", info.name)
    finally:
        await nc.close()


# How often the drain's progress is read from nats-server. Every look costs
# nats-server and the benchmark CPU that the drain shares (at 50 ms: about
# 0.035 ms of nats-server CPU per push); the 10 % and 90 % crossings are
# interpolated between looks, and the drain runs for seconds.
PROGRESS_EVERY = 0.1


def _drain_once(
    ctx: Context,
    work: Path,
    nats: Service,
    gateway: Service,
    messages: int,
    n: int,
    variant: _Variant,
    timed: bool = True,
) -> tuple[float, float, int]:
    """Start a receiver on the filled stream, time it until every message is acked.

    Returns the steady rate (10 % to 90 % acked), the rate from the first
    look to the last ack, and the number of pushes since the receiver started;
    records them as figures only when `timed`.
    """
    settings = StreamSettings(max_msgs_per_subject=1)
    launched = time.monotonic()
    receiver = start_receiver(ctx.procs, work, nats, gateway, settings, cpus=variant.rest)
    cpu0 = receiver.proc.usage().cpu
    first_t, first_n = time.monotonic(), acked(nats)
    ready_t = first_t
    progress = [(first_t, first_n)]
    deadline = first_t + 60 + n / 50
    while (done := acked(nats)) < messages:
        progress.append((time.monotonic(), done))
        if time.monotonic() > deadline:
            raise RuntimeError(f"receiver pushed {done} of {messages} in time")
        time.sleep(PROGRESS_EVERY)
    end_t = time.monotonic()
    progress.append((end_t, done))
    cpu = receiver.proc.usage().cpu - cpu0
    if done == first_n or cpu <= 0:
        # Tiny runs: everything was pushed before the first look, or in less
        # CPU than the clock's 10 ms tick shows. Count from launch.
        first_t, first_n, cpu0 = launched, 0, 0.0
        cpu = receiver.proc.usage().cpu
    ctx.procs.stop(receiver.proc)
    pushes = done - first_n
    whole = pushes / (end_t - first_t)
    # A run drained before a tenth was seen has no steady part to time.
    rate = clients.steady_rate(progress, messages) if first_n < messages / 10 else 0.0
    rate = rate or whole
    if not timed:
        return rate, whole, done
    key, section = variant.prefix, variant.section
    ctx.record(section, f"{key}drain_per_s", "receiver draining, 10-90 %", "pushes/s", rate)
    ctx.record(
        section,
        f"{key}drain_whole_per_s",
        "receiver draining, to the last ack",
        "pushes/s",
        whole,
    )
    ctx.record(
        section,
        f"{key}drain_samples_per_s",
        "receiver draining the stream",
        "samples/s",
        rate * (NODE_SAMPLES + 3),
    )
    ctx.record(
        section,
        f"{key}drain_cpu_ms_per_1k_samples",
        "receiver CPU while draining",
        "CPU ms/1k samples",
        cpu * 1e6 / (pushes * (NODE_SAMPLES + 3)),
    )
    ctx.record(
        section,
        f"{key}drain_cpu_ms_per_push",
        "receiver CPU per push while draining",
        "CPU ms",
        cpu * 1e3 / pushes,
    )
    ctx.record(section, f"{key}drain_startup_s", "receiver start-up", "s", ready_t - launched)
    return rate, whole, done  # every push since the start, for the Pushgateway's CPU per push


def wipe(gateway: Service) -> None:
    """Delete every group of a Pushgateway (admin API)."""
    status, body = http_request("PUT", f"{gateway.url}/api/v1/admin/wipe", timeout=60.0)
    if status not in (200, 202):
        raise RuntimeError(f"wipe -> {status}: {body[:200]!r}")
