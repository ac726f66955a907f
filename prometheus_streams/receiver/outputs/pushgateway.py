"""The Pushgateway output: one PUT per group with its newest scrape, and the stale sweep."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from nats.errors import Error as NATSError
from prometheus_client import CollectorRegistry, Histogram

from prometheus_streams import wire
from prometheus_streams.config import Config, PushGatewayConfig
from prometheus_streams.exposition import escape_value, health_series
from prometheus_streams.receiver.breaker import HALF_OPEN, OPEN, Breaker
from prometheus_streams.receiver.checks import Refusal
from prometheus_streams.receiver.consistency import TypeRegistry, check_body
from prometheus_streams.receiver.decode import take_body
from prometheus_streams.receiver.metrics import counter, own
from prometheus_streams.receiver.output import (
    DELIVERED,
    Context,
    Delivery,
    Outcome,
    Wants,
    backoff,
    failed,
    retry,
    skipped,
)
from prometheus_streams.receiver.outputs.pushgateway_sweep import StaleSweep
from prometheus_streams.receiver.pushgateway import PushGateway, PushResult, group_path

log = logging.getLogger(__name__)

# What a group holds once its page cannot be pushed: the health series, up 0.
DOWN_BODY = health_series(False, 0.0, 0)
DOWN_TYPES = check_body(DOWN_BODY)
# The refusals of a page after which its group gets DOWN_BODY.
DOWN_REASONS = ("rejected", "inconsistent", "line_too_long", "too_many_labels", "type_conflict")
PUSH_RESULTS = ("success", "rejected", "failed")


class PushgatewayMetrics:
    """The Pushgateway output's metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pushes = counter(registry, "pushes", "Pushes by outcome", ("result",), PUSH_RESULTS)
        self.push_duration = Histogram(
            "push_duration_seconds", "Time taken by Pushgateway PUTs", **own(registry)
        )
        self.stale_deleted = counter(
            registry,
            "stale_groups_deleted",
            "Pushgateway groups deleted because nothing was pushed to them for stale_after",
        )
        self.stale_errors = counter(
            registry,
            "stale_sweep_errors",
            "Stale-group sweeps that could not list or delete groups",
        )
        self.down_pushes = counter(
            registry,
            "down_pushes",
            "Groups replaced by up 0 and the health series because their page"
            " could not be pushed, by reason",
            ("reason",),
            DOWN_REASONS,
        )


class PushgatewayOutput:
    """Pushes the newest scrape of each group to one Pushgateway; owns its HTTP and breaker."""

    wants = Wants.NEWEST_PER_GROUP

    def __init__(self, config: Config, registry: CollectorRegistry, context: Context) -> None:
        assert config.push_gateway is not None
        self.config = config
        self.context = context
        self.push_config: PushGatewayConfig = config.push_gateway
        self.metrics = PushgatewayMetrics(registry)
        self.gateway = PushGateway(self.push_config)
        self.breaker = Breaker(
            self.push_config.breaker_failures, self.push_config.breaker_cooldown, registry
        )
        self.types = TypeRegistry()
        # Scrape time of the newest push per group, so a group never goes back in time.
        self.last_pushed: dict[tuple[str, str, str], int] = {}
        self._grouping_labels = _grouping_labels(self.push_config)
        self._limit = asyncio.Semaphore(self.push_config.concurrency)
        self._pushed_ok = self.metrics.pushes.labels("success")
        self.sweep = StaleSweep(self, registry)
        context.series.output = "pushgateway"

    @property
    def name(self) -> str:
        """The Pushgateway's URL."""
        return self.push_config.url

    async def start(self) -> None:
        """Open the connection pools."""
        await self.gateway.start()

    async def close(self) -> None:
        """Close the connection pools."""
        await self.gateway.close()

    def hold_back(self) -> float:
        """While the breaker is open, nothing is fetched: messages wait in the stream."""
        return self.breaker.wait_time()

    def fetch_linger(self) -> float:
        """None: a scrape is pushed as soon as it is stored."""
        return 0.0

    def fetch_size(self, batch: int) -> int:
        """One message at a time while the breaker probes the Pushgateway."""
        return 1 if self.breaker.state == HALF_OPEN else batch

    async def run(self, stop: asyncio.Event) -> None:
        """Delete stale groups now and then until `stop`."""
        await self.sweep.run(stop)

    def status(self) -> dict[str, Any]:
        """The Pushgateway, the breaker and the last stale sweep."""
        return {
            "pushgateway": self.push_config.url,
            "breaker": self.breaker.state,
            "stale_sweep": self.sweep.state.status(),
        }

    async def deliver(self, item: Delivery) -> Outcome:
        """Push the group's scrape, unless a newer one was pushed or waits in the stream."""
        scrape = item.scrape
        if scrape.scrape_time_ms <= self.last_pushed.get(scrape.group, -1):
            return skipped("superseded")
        if await self._newer_in_stream(item):
            return skipped("superseded")
        publisher = scrape.publisher if self.push_config.publisher_label else None
        path = group_path(scrape.job, scrape.instance, publisher, scrape.labels)
        async with self._limit:
            if self.breaker.state == OPEN:
                # Opened by pushes of this batch that ran before us: do not add to the pile.
                return retry("breaker_open", self.breaker.cooldown)
            # Checked once a push slot is free: the checks of a whole batch run
            # one by one between answers, not back to back while answers wait.
            try:
                body = take_body(item, self.config.body_size_limit)
            except wire.WireError as exc:
                return failed(exc.reason, str(exc))
            # The target's labels are in the grouping key too: the Pushgateway would
            # overwrite a page's label of their name, as it does job and instance.
            names = self._grouping_labels.union(n.encode() for n, _ in scrape.labels)
            checked = self.context.checker.check(
                body, path, self.config, names, _kept_labels(scrape)
            )
            if isinstance(checked, Refusal):
                return await self._push_down(item, path, checked.reason, checked.detail)
            body, types = checked
            body = self.context.series.filter_page(scrape.group, body)
            conflict = self.types.conflict(path, types)
            if conflict:
                return await self._push_down(item, path, "type_conflict", f"{path}: {conflict}")
            # Claimed before the push so two groups of one batch cannot both pass.
            previous = self.types.record(path, types)
            if time.monotonic() - item.fetched > self.context.stream.ack_wait / 3:
                # Waiting for a slot took a while: restart the ack timer.
                await self.context.in_progress(item.msg)
            # The PUT of _put, written out: this is the path of every message.
            t0 = time.perf_counter()
            result = await self.gateway.put(path, body)
            self.metrics.push_duration.observe(time.perf_counter() - t0)
            self.breaker.record(result.ok or result.permanent)
        if result.ok:
            self._pushed_ok.inc()
            # Clamped to our clock: a poller whose clock ran ahead and is then set
            # right must not see its next scrapes taken for old ones.
            now_ms = int(time.time() * 1000)
            self.last_pushed[scrape.group] = min(scrape.scrape_time_ms, now_ms)
            return DELIVERED
        self.types.record(path, previous)
        return await self._failed_push(item, path, result)

    async def _put(self, path: str, body: bytes) -> PushResult:
        t0 = time.perf_counter()
        result = await self.gateway.put(path, body)
        self.metrics.push_duration.observe(time.perf_counter() - t0)
        self.breaker.record(result.ok or result.permanent)
        return result

    async def _failed_push(self, item: Delivery, path: str, result: PushResult) -> Outcome:
        if result.permanent:
            self.metrics.pushes.labels("rejected").inc()
            detail = f"Pushgateway refused {path} (HTTP {result.status}): {result.detail}"
            async with self._limit:
                return await self._push_down(item, path, "rejected", detail)
        return self._retry_later(item, path, result)

    def _retry_later(self, item: Delivery, path: str, result: PushResult) -> Outcome:
        self.metrics.pushes.labels("failed").inc()
        detail = f"push to {path} failed: HTTP {result.status or '-'} {result.detail}"
        return retry("pushgateway_unavailable", backoff(item.msg), detail)

    async def _push_down(self, item: Delivery, path: str, reason: str, detail: str) -> Outcome:
        """The page cannot be pushed: replace its group with the health series and up 0.

        Else the group would go on showing the target's last good page, up 1
        included, for as long as the page stays bad. The message is then
        terminated (counted in dropped_total by `reason`); when even up 0
        cannot be pushed for now, it comes back and is tried again whole.
        """
        result = await self._put(path, DOWN_BODY)
        if result.ok:
            self.types.record(path, DOWN_TYPES)
            now_ms = int(time.time() * 1000)
            self.last_pushed[item.scrape.group] = min(item.scrape.scrape_time_ms, now_ms)
            self.metrics.down_pushes.labels(reason).inc()
            detail += "; pushed up 0 in its place"
        elif result.permanent:
            detail += f"; up 0 was refused too (HTTP {result.status}): {result.detail}"
        else:
            return self._retry_later(item, path, result)
        return failed(reason, detail)

    async def _newer_in_stream(self, item: Delivery) -> bool:
        """In a backlog, is a newer scrape of this group already stored? Then skip this one."""
        context = self.context
        if context.per_subject() == 1:
            return False  # the stream itself keeps only the newest scrape of a target
        try:
            meta = item.msg.metadata
            # Look when a backlog follows, or on a redelivery (another receiver
            # may have pushed a newer scrape of the group meanwhile).
            if meta.num_pending == 0 and meta.num_delivered <= 1:
                return False
            last = await context.conn.js.get_last_msg(context.stream.stream, item.msg.subject)
            return (last.seq or 0) > item.msg.metadata.sequence.stream
        except (NATSError, TimeoutError, ValueError) as exc:
            log.debug("cannot look up the newest message of %s: %s", item.msg.subject, exc)
            return False

    def reload(self, config: Config) -> None:
        """Take new Pushgateway settings; the old pool serves pushes under way, then closes."""
        self.config = config
        if config.push_gateway is None or config.push_gateway == self.push_config:
            # Without push_gateway the output runs on as it was until a restart.
            return
        self.push_config = config.push_gateway
        new = PushGateway(self.push_config)
        self.context.spawn(self._swap_gateway(new), "swap-pushgateway")
        self.breaker.failures = self.push_config.breaker_failures
        self.breaker.cooldown = self.push_config.breaker_cooldown
        self._grouping_labels = _grouping_labels(self.push_config)
        self._limit = asyncio.Semaphore(self.push_config.concurrency)

    async def _swap_gateway(self, new: PushGateway) -> None:
        await new.start()
        old, self.gateway = self.gateway, new
        try:
            await asyncio.sleep(old.config.timeout)  # pushes in flight on the old pool end
        finally:
            # also when the receiver stops meanwhile: its sockets must not outlive it
            await old.close()


def _kept_labels(scrape: wire.Scrape) -> dict[bytes, bytes] | None:
    """For a job with honor_labels: the page's job, instance, ... that match the group stay."""
    if not scrape.honor_labels:
        return None
    # The publisher label is ours, never the page's: it is renamed whatever its value.
    kept = (("job", scrape.job), ("instance", scrape.instance), *scrape.labels)
    return {name.encode(): escape_value(value).encode() for name, value in kept}


def _grouping_labels(config: PushGatewayConfig) -> frozenset[bytes]:
    """Labels the grouping key sets, which pushed series must not carry."""
    names = {b"job", b"instance"}
    if config.publisher_label:
        names.add(b"publisher")
    return frozenset(names)
