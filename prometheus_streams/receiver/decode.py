"""From fetched messages to deliveries: wire decoding, the max_age check, newest per group.

The header-vs-subject check is part of `wire.decode_headers`: a message
whose headers name another target than its subject is terminated
(`header_mismatch`), as is anything else the wire format refuses.
"""

from __future__ import annotations

import logging

from nats.aio.msg import Msg

from prometheus_streams import wire
from prometheus_streams.receiver.acks import Acks
from prometheus_streams.receiver.backstop import HOLD, HOLD_DELAY, Backstop
from prometheus_streams.receiver.ha_headers import replica_of, term_of
from prometheus_streams.receiver.metrics import Publishers
from prometheus_streams.receiver.output import Delivery

log = logging.getLogger(__name__)

# A fetched batch inflates its bodies up front, back to back, while they add
# up to this; the rest are inflated when their push is next. Up front is
# cheaper per message (docs/performance.md); the bound keeps two batches of
# large pages (kube-state-metrics, 10 MB and more) from holding 128 inflated
# bodies at once.
INFLATE_AHEAD = 32 * 1024 * 1024


class Decoder:
    """Decodes a fetched batch; terminates what the wire format refuses."""

    def __init__(
        self,
        topic: str,
        acks: Acks,
        publishers: Publishers,
        count: bool = True,
        backstop: Backstop | None = None,
    ) -> None:
        self.topic = topic
        self._acks = acks
        self._publishers = publishers
        self._count = count  # one lane counts each publisher's messages, not every lane
        self._backstop = backstop

    async def batch(
        self, msgs: list[Msg], body_size_limit: int, newest_only: bool
    ) -> list[Delivery]:
        """The batch's deliveries in fetch order; with `newest_only`, one per group.

        The older scrapes of a group are then acked as superseded.
        """
        newest: dict[tuple[str, str, str], Delivery] = {}
        every: list[Delivery] = []
        inflated = 0
        for msg in msgs:
            try:
                scrape, encoding = wire.decode_headers(self.topic, msg.subject, msg.headers)
                replica = replica_of(msg.headers)
                self._publishers.heard(scrape.publisher, scrape.scrape_time_ms / 1000)
                # A plain poller's message is not the backstop's business: no await for it.
                verdict = (
                    None
                    if replica is None
                    else await self._refused(scrape, replica, term_of(msg.headers))
                )
                if verdict == HOLD:
                    # Nobody can say yet which replica is accepted: back to the stream.
                    await self._acks.nak(msg, HOLD_DELAY)
                    continue
                if verdict is not None:
                    # Before the newest-per-group choice: a refused replica's scrape
                    # must not supersede the accepted one's.
                    self._acks.ack_soon(msg)
                    continue
                body = None
                if inflated < INFLATE_AHEAD:
                    body = wire.decode_body(msg.data, encoding, body_size_limit)
                    inflated += len(body)
            except wire.WireError as exc:
                await self._acks.term(msg, exc.reason, str(exc))
                continue
            if self._count:
                self._publishers.of(scrape.publisher).messages.inc()
            item = Delivery(msg, scrape, encoding, body)
            if not newest_only:
                every.append(item)
                continue
            previous = newest.get(scrape.group)
            if previous is None or scrape.scrape_time_ms > previous.scrape.scrape_time_ms:
                newest[scrape.group] = item
                if previous is not None:
                    await self._acks.drop(previous.msg, "superseded")
            else:
                await self._acks.drop(msg, "superseded")
        return list(newest.values()) if newest_only else every

    async def _refused(self, scrape: wire.Scrape, replica: str, token: int) -> str | None:
        """Why the HA backstop refuses a replica's message, HOLD, or None (accepted)."""
        if self._backstop is None:
            return None
        return await self._backstop.judge(
            scrape.publisher, replica, scrape.scrape_time_ms, self._count, token
        )


def take_body(item: Delivery, body_size_limit: int) -> bytes:
    """The delivery's inflated body, held by it no longer; raises wire.WireError.

    A body beyond the batch's INFLATE_AHEAD is inflated only now: when it
    turns out broken, older scrapes of its group were already superseded.
    """
    body, item.body = item.body, None
    if body is None:
        body = wire.decode_body(item.msg.data, item.encoding, body_size_limit)
    return body


def too_old(scrape: wire.Scrape, max_age: float) -> bool:
    """The max_age check: whether the scrape is older than max_age (0: no limit); logs it."""
    age = scrape.beyond(max_age)
    if age is None:
        return False
    log.info(
        "dropped scrape of %s/%s from %s: %.0fs old, max_age is %gs",
        scrape.job,
        scrape.instance,
        scrape.publisher,
        age,
        max_age,
        extra={"job": scrape.job, "target": scrape.instance, "publisher": scrape.publisher},
    )
    return True
