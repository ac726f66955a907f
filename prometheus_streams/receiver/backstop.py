"""The HA backstop: per publisher, accept one replica at a time, as the Mimir HA tracker does.

HA pollers name their replica in a header (wire.H_REPLICA). When a split
brain at the edge lets two replicas publish at once, the backstop keeps
their data from mixing at the centre: it accepts one replica per publisher
and switches to another only once the accepted one has been silent for
`failover_timeout`, or at once when the other presents a newer lease term
(wire.H_TERM, a fencing token). Messages without the header are not its
business.

Time is the scrape time the messages carry, not the receiver's clock, and
the switches are kept as a history of periods, so the decision for a
message is the same whenever and by whichever lane it is asked (docs/design.md,
"HA backstop"): a lane catching up on a backlog agrees with one at the head.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from prometheus_streams.config.publishers import HABackstopConfig
from prometheus_streams.receiver.backstop_rule import OLD_TERM, rule
from prometheus_streams.receiver.backstop_state import (
    BackstopMetrics,
    PeriodState,
    PublisherState,
    Write,
    log_switch,
    status_rows,
    stored_periods,
)
from prometheus_streams.receiver.election import (
    Conflict,
    ElectionStore,
    Stored,
    StoreError,
)

log = logging.getLogger(__name__)

# Switches kept per publisher: enough for any backlog a lane can hold back
# (a replica flapping faster than this within max_age is a broken edge).
MAX_PERIODS = 64
# Not a refusal: the shared store could not be read or written, so nobody can
# say yet; the message is handed back and comes again after HOLD_DELAY.
HOLD = "held"
HOLD_DELAY = 2.0
# Writes lost to other receivers in a row before a message is held instead.
MAX_CONFLICTS = 8
# A receiver writes back its newest accepted scrape time once it is this share
# of failover_timeout ahead of the stored one: other receivers then judge
# silence on a time at most that much behind (docs/design.md).
WRITE_BACK_SHARE = 4
# At shutdown, storing what was accepted but not written back waits no longer.
FLUSH_TIMEOUT = 5.0
WARN_EVERY = 60.0


class Backstop:
    """One per receiver process, shared by every lane: the decisions are the same in each.

    Without a store the elections live in this process (`refusal`); with one
    they are shared with every receiver through the bucket (`judge`).
    """

    def __init__(
        self,
        config: HABackstopConfig,
        metrics: BackstopMetrics,
        store: ElectionStore | None = None,
        spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task[Any]] | None = None,
    ) -> None:
        self.config = config
        # The receiver's supervisor in production: a write-back that crashes is reported.
        self._spawn = spawn or (lambda coro, _name: asyncio.ensure_future(coro))
        self._metrics = metrics
        self.store = store
        self._publishers: dict[str, PublisherState] = {}
        self._warned: dict[str, float] = {}  # publisher -> when a refusal was last logged
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def reload(self, config: HABackstopConfig) -> None:
        """Take a new failover_timeout; the accepted replicas stay."""
        if config.shared != self.config.shared:
            log.warning("ha_backstop.shared changed: that takes effect only after a restart")
        self.config = config

    def refusal(
        self, publisher: str, replica: str, scrape_time_ms: int, count: bool, token: int = 0
    ) -> str | None:
        """This process's own decision (no store): why the message is refused, or None.

        `count` says whether this lane counts refusals (one lane does, so a
        message is counted once however many outputs there are).
        """
        if not self.config.enabled:
            return None
        state = self._publishers.setdefault(publisher, PublisherState())
        reason, write = self._rule(state, replica, scrape_time_ms, token)
        if write is not None:
            self._adopt(publisher, write, state.revision + 1)
        self._noted(publisher, state, replica, token, scrape_time_ms, reason, shared=False)
        return self._counted(publisher, replica, scrape_time_ms, reason, count)

    async def judge(
        self, publisher: str, replica: str, scrape_time_ms: int, count: bool, token: int = 0
    ) -> str | None:
        """Why the message is refused, HOLD when the shared store cannot say, or None."""
        if not self.config.enabled:
            return None
        if self.store is None:
            return self.refusal(publisher, replica, scrape_time_ms, count, token)
        self.store.wanted.set()
        state = self._publishers.get(publisher)
        lock = self._locks.get(publisher)
        if state is not None and state.periods and (lock is None or not lock.locked()):
            # The common case, decided on what we follow without a write.
            reason, write = self._rule(state, replica, scrape_time_ms, token)
            if write is None:
                self._noted(publisher, state, replica, token, scrape_time_ms, reason, shared=True)
                return self._counted(publisher, replica, scrape_time_ms, reason, count)
        reason = await self._stored(publisher, replica, scrape_time_ms, token)
        if reason == HOLD:
            if count:
                self._metrics.held.labels(publisher).inc()
            return reason
        return self._counted(publisher, replica, scrape_time_ms, reason, count)

    async def _stored(self, publisher: str, replica: str, t: int, token: int) -> str | None:
        """Decide through the store: read, and write what the rule asks with a revision check."""
        assert self.store is not None
        lock = self._locks.setdefault(publisher, asyncio.Lock())
        async with lock:
            refresh = False
            for _ in range(MAX_CONFLICTS):
                state = self._publishers.get(publisher)
                try:
                    if state is None or refresh:
                        self.follow(publisher, await self.store.get(publisher))
                        state = self._publishers.get(publisher)
                    blank = PublisherState() if state is None else state
                    reason, write = self._rule(blank, replica, t, token)
                    if write is not None:
                        revision = await self.store.write(publisher, write, blank.revision)
                        self._adopt(publisher, write, revision)
                        state = self._publishers[publisher]
                except Conflict:
                    self._metrics.store_writes.labels("conflict").inc()
                    # Somebody decided first: follow what is stored and ask again.
                    refresh = True
                    continue
                except StoreError:
                    return HOLD
                if write is not None:
                    self._metrics.store_writes.labels("written").inc()
                assert state is not None
                self._noted(publisher, state, replica, token, t, reason, shared=True)
                return reason
        return HOLD

    def _rule(
        self, state: PublisherState, replica: str, t: int, token: int = 0
    ) -> tuple[str | None, Write | None]:
        """The rule's answer (backstop_rule.py) with this backstop's timeout and store."""
        timeout = int(self.config.failover_timeout * 1000)
        return rule(state, replica, t, token, timeout, self.store is not None)

    def _noted(
        self,
        publisher: str,
        state: PublisherState,
        replica: str,
        token: int,
        t: int,
        reason: str | None,
        shared: bool,
    ) -> None:
        """After an answer: extend the current period by an accepted scrape of its term."""
        current = state.periods[-1]
        if reason is not None or not current.holds(replica, token) or t < current.start_ms:
            return
        if not shared:
            current.last_ms = max(current.last_ms, t)
            return
        state.local_last = max(state.local_last, t)
        write_back = int(self.config.failover_timeout * 1000 / WRITE_BACK_SHARE)
        if state.local_last >= current.last_ms + write_back and not state.writing:
            state.writing = True
            task = self._spawn(self._write_back(publisher), f"HA write-back {publisher}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _write_back(self, publisher: str) -> None:
        """Store the newest accepted scrape time, so other receivers judge silence by it."""
        assert self.store is not None
        lock = self._locks.setdefault(publisher, asyncio.Lock())
        async with lock:
            state = self._publishers.get(publisher)
            if state is None:
                return
            state.writing = False
            if not state.periods or state.local_last <= state.periods[-1].last_ms:
                return
            write = stored_periods(state, last=state.local_last)
            try:
                revision = await self.store.write(publisher, write, state.revision)
            except Conflict:
                self._metrics.store_writes.labels("conflict").inc()
                with contextlib.suppress(StoreError):
                    stored = await self.store.get(publisher)
                    if stored is not None:
                        self.follow(publisher, stored)
                return
            except StoreError:
                return
            self._metrics.store_writes.labels("written").inc()
            self._adopt(publisher, write, revision)

    async def flush(self) -> None:
        """Store every newest accepted scrape time not stored yet (at shutdown), bounded."""
        if self.store is None:
            return
        try:
            await asyncio.wait_for(self._flush(), FLUSH_TIMEOUT)
        except TimeoutError:
            log.warning("HA backstop: could not store the newest accepted scrapes at shutdown")

    async def _flush(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for publisher, state in list(self._publishers.items()):
            if state.periods and state.local_last > state.periods[-1].last_ms:
                await self._write_back(publisher)

    def follow(self, publisher: str, stored: Stored | None) -> None:
        """Take what the store holds for `publisher` (None: the key is gone)."""
        if stored is None:
            # Expired (silent for the bucket's TTL) or deleted: elected anew.
            state = self._publishers.pop(publisher, None)
            if state is not None and state.periods:
                self._metrics.accepted.remove(publisher, state.periods[-1].replica)
            return
        self._adopt(publisher, stored.periods, stored.revision)

    def _adopt(self, publisher: str, periods: Write, revision: int) -> None:
        """Follow the periods of `revision`, unless we already follow a newer one."""
        state = self._publishers.get(publisher)
        if state is None:
            state = self._publishers[publisher] = PublisherState()
        elif revision <= state.revision:
            return
        before = state.periods[-1] if state.periods else None
        state.revision = revision
        state.periods = [PeriodState(*p) for p in periods[-MAX_PERIODS:]]
        state.starts = [p.start_ms for p in state.periods]
        if not state.periods:
            return
        now = state.periods[-1]
        if before is None or before.start_ms != now.start_ms:
            state.local_last = 0
        if before is not None and before.replica == now.replica:
            return
        if before is not None:
            self._metrics.accepted.remove(publisher, before.replica)
            state.switches += 1
            self._metrics.switches.labels(publisher).inc()
        self._metrics.accepted.labels(publisher, now.replica).set(1)
        log_switch(publisher, before, now, state.local_last)

    def _counted(
        self, publisher: str, replica: str, t: int, reason: str | None, count: bool
    ) -> str | None:
        if reason is not None and count:
            self._metrics.refused.labels(publisher, reason).inc()
            self._publishers[publisher].refused += 1
            self._warn(publisher, replica, t, reason)
        return reason

    def _warn(self, publisher: str, replica: str, t: int, reason: str) -> None:
        """Log a refusal, once a minute per publisher: a split brain refuses every message."""
        now = time.monotonic()
        if now - self._warned.get(publisher, -WARN_EVERY) < WARN_EVERY:
            return
        self._warned[publisher] = now
        why = (
            "late messages of a fenced old leader?"
            if reason == OLD_TERM
            else "two replicas publish at once?"
        )
        # The replica accepted at the message's scrape time: for a lane behind
        # another, not necessarily the one accepted now.
        state = self._publishers[publisher]
        holder = state.periods[max(state.period_at(t), 0)].replica
        log.warning(
            "HA backstop: refusing messages of publisher %s from replica %s (%s): replica %s"
            " is accepted at their scrape time; %s",
            publisher,
            replica,
            reason,
            holder,
            why,
            extra={"publisher": publisher},
        )

    def status(self) -> list[dict[str, Any]]:
        """Per publisher: the accepted replica and how long it has been silent (scrape time)."""
        return status_rows(self._publishers, time.time())
