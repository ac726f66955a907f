"""The ack policy: every ack, nak, term and progress note of the receiver goes through here.

One rule for all of them: NATS refusing one (disconnected, closed) is
logged and counted in ack_errors_total, never raised. A message left
unacked comes back after ack_wait and is handled again (dropped as
superseded once a newer scrape of its group was pushed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.errors import Error as NATSError

from prometheus_streams.receiver.metrics import ReceiverMetrics
from prometheus_streams.receiver.output import Action, Outcome
from prometheus_streams.service import Supervisor

log = logging.getLogger(__name__)

# Acks of pushes answered within this window share one write (every write wakes
# nats-server; docs/performance.md has the figures).
ACK_DELAY = 0.02


class Acks:
    """Batches acks of delivered messages; settles the other outcomes at once."""

    def __init__(
        self,
        supervisor: Supervisor,
        metrics: ReceiverMetrics,
        note_error: Callable[[str], None],
    ) -> None:
        self._supervisor = supervisor
        self._metrics = metrics
        self._note_error = note_error
        self._waiting: list[Msg] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def ack_soon(self, msg: Msg) -> None:
        """Ack after ACK_DELAY, together with the acks of pushes answered meanwhile.

        A crash in between only means a redelivery, dropped as superseded.
        """
        self._waiting.append(msg)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(ACK_DELAY, self._send)

    def _send(self) -> None:
        self._timer = None
        msgs, self._waiting = self._waiting, []
        task = self._supervisor.spawn(self._ack_all(msgs), "acks")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _ack_all(self, msgs: list[Msg]) -> None:
        for msg in msgs:
            await self._call("ack", msg, msg.ack())

    async def flush(self) -> None:
        """Send every ack still waiting, and wait for those under way."""
        if self._timer is not None:
            self._timer.cancel()
            self._send()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def settle(self, msg: Msg, outcome: Outcome) -> None:
        """Ack, nak or terminate a message as an output's `outcome` says."""
        action = outcome.action
        if action is Action.DELIVERED:
            self.ack_soon(msg)
        elif action is Action.SKIPPED:
            await self.drop(msg, outcome.reason)
        elif action is Action.RETRY:
            self._metrics.naks.labels(outcome.reason).inc()
            if outcome.detail:
                self._note_error(outcome.detail)
                log.warning("%s; retrying in %.1fs", outcome.detail, outcome.delay)
            await self.nak(msg, outcome.delay)
        else:
            await self.term(msg, outcome.reason, outcome.detail)

    async def drop(self, msg: Msg, reason: str) -> None:
        """Ack a message that is not needed, counted in dropped_total by `reason`."""
        self._metrics.dropped.labels(reason).inc()
        await self._call("ack", msg, msg.ack())

    async def term(self, msg: Msg, reason: str, detail: str) -> None:
        """Terminate a message that can never be stored; logged and counted by `reason`."""
        self._metrics.dropped.labels(reason).inc()
        self._note_error(f"{msg.subject}: {detail}")
        log.error(
            "discarding message on %s (%s): %s",
            msg.subject,
            reason,
            detail,
            extra={"subject": msg.subject, "reason": reason, "error": detail},
        )
        await self._call("term", msg, msg.term())

    async def nak(self, msg: Msg, delay: float | None = None) -> None:
        """Hand a message back for redelivery, after `delay` seconds or at once."""
        await self._call("nak", msg, msg.nak(delay=delay))

    async def in_progress(self, msg: Msg) -> None:
        """Restart a message's ack timer."""
        await self._call("in_progress", msg, msg.in_progress())

    async def give_back(self, msgs: list[Msg]) -> None:
        """Hand messages delivered late to a finished fetch back to the stream at once."""
        for msg in msgs:
            await self.nak(msg)

    async def _call(self, action: str, msg: Msg, call: Awaitable[None]) -> None:
        try:
            await call
        except NATSError as exc:
            self._metrics.ack_errors.labels(action).inc()
            log.warning(
                "cannot %s message on %s (it will be redelivered): %s",
                action,
                msg.subject,
                exc or type(exc).__name__,
            )
