"""The cheaper header parse gives what nats-py's own gives, for any header block."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NATS

from prometheus_streams import wire
from prometheus_streams.transport.headers import Client, parse_header_lines

# Separators, white space nats-py tests for (\x1c: str.isspace, not bytes.strip), non-ASCII.
PIECES = st.sampled_from(
    b"a|Name|:|: | |\t|\r\n|\r|\n|\x1c|\x0b|\x0c|\xc3\xa9|\xff|\x85|x y|::|".split(b"|")
)
BLOCKS = st.lists(PIECES | st.binary(max_size=6), max_size=30).map(b"".join)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(BLOCKS)
def test_any_block_parses_as_nats_py_parses_it(raw: bytes) -> None:
    assert parse_header_lines(raw) == NATS._parse_header_lines(raw)


def test_our_headers_parse_as_nats_py_parses_them() -> None:
    scrape = wire.Scrape("dc1", "node", "host:9100", 1_764_770_000_000, b"up 1\n", (("a", "é"),))
    _, _, headers = wire.encode("metrics", scrape)
    raw = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"
    assert parse_header_lines(raw) == NATS._parse_header_lines(raw) == headers


def test_the_client_uses_it() -> None:
    assert Client._parse_header_lines is parse_header_lines
