"""The outbox's message from a target's template is the one wire.encode makes per scrape."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from prometheus_streams import wire
from prometheus_streams.config import StreamConfig
from prometheus_streams.poller.metrics import PollerMetrics
from prometheus_streams.poller.outbox import Outbox
from prometheus_streams.runtime import Readiness
from prometheus_streams.transport import Connection

NAMES = st.text(st.sampled_from("az:._/ é-"), max_size=6)
LABELS = st.dictionaries(st.sampled_from(["a", "dc", "zone"]), NAMES, max_size=2).map(
    lambda labels: tuple(sorted(labels.items()))
)


def outbox(replica: str | None) -> Outbox:
    stream = StreamConfig(("nats://127.0.0.1:4222",), "metrics", "METRICS", "poller", "durable")
    conn = Connection(stream, "poller_stream", "test", CollectorRegistry())
    metrics = PollerMetrics(CollectorRegistry())
    return Outbox(conn, stream, metrics, Readiness(conn), 0.0, replica=replica)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(NAMES, NAMES, st.integers(0, 2**45), LABELS, st.booleans(), st.integers(0, 3)),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([None, "a", "b é"]),
)
def test_a_message_from_the_template_is_encode_s(
    scrapes: list[tuple[str, str, int, tuple[tuple[str, str], ...], bool, int]],
    replica: str | None,
) -> None:
    box = outbox(replica)
    for job, instance, at, labels, honor, term in scrapes:
        scrape = wire.Scrape("dc1", job, instance, at, b"", labels, honor)
        message, size = box.messages.message(scrape, term, b"page")
        subject, payload, headers = box.messages.encode(scrape, term, b"page")
        assert message == (subject, payload, headers)
        assert list(message[2]) == list(headers)  # the order the header block keeps
        assert size == wire.header_size(headers)
        assert box.messages.subject(scrape, term) == subject
