"""A scrape as the JetStream message the poller publishes.

The subject and headers of wire.encode, with the HA replica and term for a
member of an HA group, built from a per-target template: made per scrape
(escaping the instance's `:` twice, the id, the size) they cost 2-6 % of the
poller's CPU (docs/performance.md, "Poller, round two").
"""

from __future__ import annotations

import logging
from dataclasses import replace

from prometheus_streams import wire
from prometheus_streams.exposition import health_series
from prometheus_streams.poller import LOGGER_NAME
from prometheus_streams.poller.metrics import PollerMetrics

log = logging.getLogger(LOGGER_NAME)

# A message as JetStream gets it: subject, body, headers.
Message = tuple[str, bytes, dict[str, str]]
# A target's subject, headers (Msg-Id and scrape time to be set), the Msg-Id
# without the scrape time, and the headers' wire size without the two times.
Template = tuple[str, dict[str, str], str, int]
# Targets remembered at most (templates, newest scrape sent): a bound, rarely reached.
TEMPLATES = 100_000


class Messages:
    """Builds the messages of one stream's topic; `replica` names an HA group's member."""

    def __init__(self, topic: str, metrics: PollerMetrics, replica: str | None = None) -> None:
        self.topic = topic
        self.metrics = metrics
        self.replica = replica  # sent in a header by a member of an HA group
        self._templates: dict[tuple[object, ...], Template] = {}

    def encode(self, scrape: wire.Scrape, term: int, compressed: bytes | None = None) -> Message:
        """The message; a member of an HA group names its replica and term (subject and id stay)."""
        subject, payload, headers = wire.encode(self.topic, scrape, payload=compressed)
        if self.replica is not None:
            headers[wire.H_REPLICA] = self.replica
            # The term's fencing token: the receiver's backstop switches to a
            # newer term at once and knows a fenced leader's late messages.
            headers[wire.H_TERM] = str(term)
        return subject, payload, headers

    def _template(self, scrape: wire.Scrape, term: int) -> Template:
        """What every message of this target in this term repeats, made once."""
        key: tuple[object, ...] = (scrape.publisher, scrape.job, scrape.instance, scrape.labels)
        key += (scrape.honor_labels, self.topic, self.replica, term)
        template = self._templates.get(key)
        if template is None:
            subject, _, headers = self.encode(scrape, term, b"")
            # The id ends in the scrape time, which each message sets with
            # H_SCRAPE_TIME; both ASCII digits, so characters count as bytes.
            stamp = str(scrape.scrape_time_ms)
            size = wire.header_size(headers) - 2 * len(stamp)
            template = (subject, headers, headers[wire.H_MSG_ID][: -len(stamp)], size)
            if len(self._templates) >= TEMPLATES:
                self._templates.clear()  # targets come and go: a bound, rarely reached
            self._templates[key] = template
        return template

    def message(self, scrape: wire.Scrape, term: int, compressed: bytes) -> tuple[Message, int]:
        """As encode, with the target's template; and the headers' size on the wire."""
        subject, template, id_prefix, size = self._template(scrape, term)
        stamp = str(scrape.scrape_time_ms)
        headers = template.copy()  # the same order: the keys are set in place
        headers[wire.H_MSG_ID] = id_prefix + stamp
        headers[wire.H_SCRAPE_TIME] = stamp
        return (subject, compressed, headers), size + 2 * len(stamp)

    def subject(self, scrape: wire.Scrape, term: int) -> str:
        """The target's subject (the outbox's key for its newest scrape)."""
        return self._template(scrape, term)[0]

    def fitting(
        self, scrape: wire.Scrape, compressed: bytes, term: int, limit: int
    ) -> Message | None:
        """The message, or up 0 in its place when above `limit`; None when even that is."""
        message, header_size = self.message(scrape, term, compressed)
        # The server counts headers and body against max_payload, and closes the
        # connection of a client that sends more.
        if len(compressed) + header_size <= limit:
            return message
        self.metrics.dropped.labels("too_large").inc()
        log.warning(
            "scrape of %s/%s is %d bytes compressed, above the server's max_payload %d; "
            "publishing up 0 instead",
            scrape.job,
            scrape.instance,
            len(compressed),
            limit,
        )
        down = replace(scrape, body=health_series(False, 0.0, 0))
        subject, payload, headers = self.encode(down, term)
        if len(payload) + wire.header_size(headers) <= limit:
            return subject, payload, headers
        log.error(
            "even up 0 for %s/%s does not fit the server's max_payload %d",
            scrape.job,
            scrape.instance,
            limit,
        )
        return None
