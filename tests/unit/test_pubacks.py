"""transport.pubacks.read_ack reads an ack as nats-py does, or leaves it to nats-py."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from nats.js import api

from prometheus_streams.transport.pubacks import read_ack

NAME = st.text(st.sampled_from('abcXYZ019_-."\\ é'), min_size=0, max_size=8)


@settings(max_examples=1000, deadline=None)
@given(
    NAME,
    st.one_of(st.none(), NAME),
    st.integers(0, 2**63),
    st.sampled_from([None, True, False]),
    st.one_of(st.none(), st.sampled_from(["val", "batch", "error", "count"])),
    st.booleans(),
)
def test_read_ack_agrees_with_nats_py(
    stream: str,
    domain: str | None,
    seq: int,
    duplicate: bool | None,
    extra: str | None,
    compact: bool,
) -> None:
    answer: dict[str, object] = {"stream": stream}
    if domain is not None:
        answer["domain"] = domain
    answer["seq"] = seq
    if duplicate is not None:
        answer["duplicate"] = duplicate
    if extra is not None:
        answer[extra] = (
            {"code": 503, "err_code": 10077, "description": "x"} if extra == "error" else "1"
        )
    data = json.dumps(answer, separators=(",", ":") if compact else None).encode()
    ours = read_ack(data)
    if ours is not None:  # else nats-py's own code reads it
        assert ours == api.PubAck.from_response(json.loads(data))
        assert "error" not in answer


def test_the_usual_acks_take_the_short_way() -> None:
    for data in (
        b'{"stream":"PROMETHEUS","seq":7}',
        b'{"stream":"PROMETHEUS","domain":"hub","seq":7}',
        b'{"stream":"PROMETHEUS","seq":7,"duplicate":true}',
    ):
        assert read_ack(data) == api.PubAck.from_response(json.loads(data))
