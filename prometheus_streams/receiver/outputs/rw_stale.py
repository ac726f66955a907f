"""Targets that went away: the remote-write output marks their series stale.

A target removed, or a publisher gone silent, sends no scrape without the
series it had, so nothing marks those series stale as a later scrape would
(rw_series.py). Past `stale_after` without a written scrape, its series get
a staleness marker, once the consumer has caught up with the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from prometheus_streams.config import RemoteWriteConfig
from prometheus_streams.receiver.output import Context
from prometheus_streams.receiver.outputs.rw_client import Abort, Refused
from prometheus_streams.receiver.outputs.rw_metrics import RemoteWriteMetrics
from prometheus_streams.receiver.outputs.rw_series import Group, stale_markers

log = logging.getLogger(__name__)

GroupKey = tuple[str, str, str]
# Writes one request of markers (retried in place, as the output's requests are).
Post = Callable[[list[bytes], asyncio.Event], Awaitable[None]]


class StaleSweep:
    """Marks the series of groups silent past stale_after stale; forgets those groups."""

    def __init__(
        self,
        label: str,
        groups: dict[GroupKey, Group],
        context: Context,
        metrics: RemoteWriteMetrics,
    ) -> None:
        self.label = label
        self._groups = groups  # the output's, written scrape by scrape
        self.ctx = context
        self.metrics = metrics

    async def run(
        self, stop: asyncio.Event, settings: Callable[[], RemoteWriteConfig], post: Post
    ) -> None:
        """Sweep until `stop`; `settings` gives the output's current (reloaded) settings."""
        stale_after = settings().stale_after
        if not stale_after:
            return
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(stale_after / 4, 15.0))
            if stop.is_set() or not self.ctx.fence():
                continue
            silent = [
                (key, group)
                for key, group in self._groups.items()
                if time.monotonic() - group.last_seen > stale_after
            ]
            if not silent:
                continue
            # Not while a backlog is being written: its scrapes would then come after the markers.
            asked, floor = await self.ctx.ack_floor()
            if not asked or floor is not None:
                continue
            await self._mark_stale(silent, stop, settings(), post)

    async def _mark_stale(
        self,
        silent: list[tuple[GroupKey, Group]],
        stop: asyncio.Event,
        rw: RemoteWriteConfig,
        post: Post,
    ) -> None:
        series = stale_markers([group for _, group in silent], int(time.time() * 1000))
        try:
            for start in range(0, len(series), rw.max_samples_per_send):
                await post(series[start : start + rw.max_samples_per_send], stop)
        except (Abort, Refused) as exc:
            log.warning("remote write %s: stale markers not written: %s", self.label, exc)
            return
        for key, _ in silent:
            self._groups.pop(key, None)
        self.metrics.stale_markers.labels(self.label).inc(len(series))
        log.info(
            "remote write %s: %d targets silent for %gs, %d series marked stale",
            self.label,
            len(silent),
            rw.stale_after,
            len(series),
        )
