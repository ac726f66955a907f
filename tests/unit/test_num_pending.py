"""transport.num_pending reads what nats-py's Msg.metadata.num_pending reads.

It reads that token only: a reply whose other numbers are not numbers (the
server never sends one) still gives its num_pending, where nats-py raises.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg
from nats.errors import Error as NATSError

from prometheus_streams.transport import num_pending

NUMBER = st.one_of(st.integers(0, 10**12).map(str), st.sampled_from(["", "x", "-1", "1.5"]))
TOKEN = st.one_of(NUMBER, st.text("abcXYZ_-", min_size=1, max_size=8))


def _outcome(read: object, msg: Msg) -> object:
    try:
        return read(msg)  # type: ignore[operator]
    except (NATSError, ValueError) as exc:
        return type(exc)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from([["$JS", "ACK"], ["$JS", "ACK"], ["$JS", "NAK"], ["_INBOX"]]),
    st.lists(TOKEN, min_size=0, max_size=12),
    st.booleans(),
)
def test_num_pending_agrees_with_nats_py(prefix: list[str], tokens: list[str], ts: bool) -> None:
    if ts and len(tokens) > 5:
        tokens[5] = "1733230000000000000"  # a real timestamp where v1 has it
    msg = Msg(None, subject="s", reply=".".join(prefix + tokens))  # type: ignore[arg-type]
    ours, theirs = _outcome(num_pending, msg), _outcome(lambda m: m.metadata.num_pending, msg)
    assert ours == theirs or (isinstance(ours, int) and theirs is ValueError)


def test_num_pending_of_both_reply_formats() -> None:
    v1 = "$JS.ACK.scrapes.rw.1.2041.2040.1733230000000000000.7"
    v2 = "$JS.ACK.hub.ACCHASH.scrapes.rw.1.2041.2040.1733230000000000000.9.token"
    for reply, pending in ((v1, 7), (v2, 9)):
        msg = Msg(None, subject="s", reply=reply)  # type: ignore[arg-type]
        assert num_pending(msg) == msg.metadata.num_pending == pending
