"""The Pushgateway output's stale sweep: delete our groups nothing was pushed to for stale_after."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from nats.errors import Error as NATSError
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry

from prometheus_streams import wire
from prometheus_streams.receiver.http import HTTPError
from prometheus_streams.receiver.pushgateway import path_of_labels
from prometheus_streams.receiver.stale import (
    PUBLISHER_REFRESH,
    GroupTimes,
    SweepState,
    stream_publishers,
)
from prometheus_streams.service import first_of

if TYPE_CHECKING:
    from prometheus_streams.receiver.outputs.pushgateway import PushgatewayOutput

log = logging.getLogger(__name__)

# A sweep with a backlog looks up at most this many stale groups on the stream;
# the rest wait for the next sweep.
STALE_LOOKUPS = 256


class StaleSweep:
    """Finds and deletes the stale groups of one Pushgateway output."""

    def __init__(self, output: PushgatewayOutput, registry: CollectorRegistry) -> None:
        self.output = output
        self.state = SweepState(registry)

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every stale_check_interval until `stop`."""
        while not stop.is_set():
            interval = self.output.push_config.stale_check_interval
            await first_of(stop.wait(), asyncio.sleep(interval))
            if stop.is_set():
                return
            await self.tick()

    async def tick(self) -> int:
        """One stale-group check; returns how many groups were deleted."""
        output = self.output
        if not output.push_config.stale_after:
            return 0
        # Paused or breaker open: scrapes wait in the stream because we hold
        # them back, and every group would look stale.
        if output.context.paused() or output.breaker.state != "closed":
            return 0
        ok, floor = await output.context.ack_floor()
        if not ok:
            return 0
        return await self.sweep(floor)

    async def sweep(self, floor: int | None = None) -> int:
        """Delete our groups whose last push is older than stale_after.

        Ours: a publisher seen on the stream (now or earlier in this process)
        or listed in stale_publishers; nothing else is ever touched. With a
        `floor` (messages after that stream sequence are not finished yet), a
        group whose newest message on the stream lies beyond it is kept: a
        newer scrape of it is waiting or being pushed. That is what keeps a
        backlog after an outage from blanking the dashboards, without waiting
        for an instant when nothing at all is in flight.
        """
        try:
            groups = await self.output.gateway.push_times()
        except (OSError, HTTPError, ValueError) as exc:  # TimeoutError is an OSError
            self.output.metrics.stale_errors.inc()
            log.warning("cannot list Pushgateway groups for the stale check: %s", exc)
            return 0
        now = time.time()
        counts = {"deleted": 0, "foreign": 0, "lookups": 0}
        no_push_time: dict[str, float] = {}
        for group in groups:
            await self._consider(group, now, floor, counts, no_push_time)
        self._report(len(groups), now, counts, no_push_time)
        return counts["deleted"]

    async def _consider(
        self,
        group: GroupTimes,
        now: float,
        floor: int | None,
        counts: dict[str, int],
        no_push_time: dict[str, float],
    ) -> None:
        """Delete one listed group if it is ours and stale."""
        stale_after = self.output.push_config.stale_after
        labels = group.labels
        path = path_of_labels(labels)
        publisher = labels.get("publisher")
        if path is None or publisher is None or "instance" not in labels:
            # Not our grouping key: someone else's, whatever its age.
            if group.pushed and now - group.pushed > stale_after:
                counts["foreign"] += 1
            return
        since = group.pushed
        if not since:
            if not await self._is_ours(publisher):
                return
            since = no_push_time[path] = self._report_no_push_time(path, group.failed, now)
        age = now - since
        if age <= stale_after:
            return
        if not await self._is_ours(publisher):
            counts["foreign"] += 1
            self._report_foreign(publisher)
            return
        key = (publisher, labels["job"], labels["instance"])
        if self.output.last_pushed.get(key, 0) / 1000 > now - stale_after:
            return  # pushed by us since the listing was read
        if floor is not None:
            if counts["lookups"] >= STALE_LOOKUPS:
                self.state.skipped.labels("lookup_limit").inc()
                return
            counts["lookups"] += 1
            reason = await self._waiting_in_stream(key, floor)
            if reason:
                self.state.skipped.labels(reason).inc()
                return
        if await self._delete_stale(path, key):
            counts["deleted"] += 1
            no_push_time.pop(path, None)
            what = "last push %.0fs ago" if group.pushed else "no successful push for %.0fs"
            log.info("deleted stale group %s: " + what, path, age)

    def _report(
        self, listed: int, now: float, counts: dict[str, int], no_push_time: dict[str, float]
    ) -> None:
        sweep = self.state
        sweep.no_push_time = no_push_time
        sweep.sweeps.inc()
        sweep.foreign.set(counts["foreign"])
        sweep.without_push_time.set(len(no_push_time))
        sweep.last = {
            "time": now,
            "groups": listed,
            "deleted": counts["deleted"],
            "foreign_groups": counts["foreign"],
            "without_push_time": sorted(no_push_time)[:20],
        }

    async def _is_ours(self, publisher: str) -> bool:
        """Whether the publisher's groups are ours; reads the stream again now and then."""
        sweep = self.state
        context = self.output.context
        if (
            publisher in sweep.stream_publishers
            or publisher in context.publishers_seen
            or publisher in self.output.push_config.stale_publishers
        ):
            return True
        if time.monotonic() - sweep.publishers_read_at < PUBLISHER_REFRESH:
            return False
        sweep.publishers_read_at = time.monotonic()
        assert context.conn.nc is not None
        stream = context.stream
        try:
            found = await stream_publishers(context.conn.nc, stream.stream, stream.topic)
        except (NATSError, TimeoutError, ValueError) as exc:
            self.output.metrics.stale_errors.inc()
            log.warning("cannot read the publishers of stream %s: %s", stream.stream, exc)
            return False
        # Kept for the life of the process, even once their subjects age out.
        sweep.stream_publishers |= found
        return publisher in sweep.stream_publishers

    def _report_foreign(self, publisher: str) -> None:
        reported = self.state.reported_foreign
        if publisher in reported or len(reported) >= 1000:
            return
        reported.add(publisher)
        log.info(
            "leaving stale Pushgateway groups of publisher %r alone: not seen on stream %s;"
            " list it in push_gateway.stale_publishers if they are ours",
            publisher,
            self.output.context.stream.stream,
        )

    def _report_no_push_time(self, path: str, failed: float, now: float) -> float:
        """Log a group of ours that never had a successful push, once; since when it is so."""
        first_seen = self.state.no_push_time.get(path)
        if first_seen is None:
            first_seen = failed or now
            detail = f"last failed push {now - failed:.0f}s ago" if failed else "no push recorded"
            log.warning(
                "Pushgateway group %s has no successful push (push_time_seconds 0; %s)",
                path,
                detail,
            )
        return first_seen

    async def _waiting_in_stream(self, key: tuple[str, str, str], floor: int) -> str:
        """Why the group must be kept ('' if it need not): its newest message is unfinished."""
        context = self.output.context
        subject = wire.subject_for(context.stream.topic, *key)
        try:
            last = await context.conn.js.get_last_msg(context.stream.stream, subject)
        except NotFoundError:
            return ""
        except (NATSError, TimeoutError) as exc:
            log.debug("cannot look up the newest message of %s: %s", subject, exc)
            return "lookup_failed"
        return "waiting_in_stream" if (last.seq or 0) > floor else ""

    async def _delete_stale(self, path: str, key: tuple[str, str, str] | None) -> bool:
        output = self.output
        result = await output.gateway.delete(path)
        if not result.ok:
            output.metrics.stale_errors.inc()
            log.warning(
                "cannot delete stale group %s: HTTP %s %s", path, result.status, result.detail
            )
            return False
        output.types.record(path, None)
        if key is not None:
            output.last_pushed.pop(key, None)
        output.metrics.stale_deleted.inc()
        return True
