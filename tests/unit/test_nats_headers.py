"""The cheaper header parse gives what nats-py's own gives, for any header block."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats import errors
from nats.aio.client import Client as NATS

from prometheus_streams import wire
from prometheus_streams.transport import headers as headers_module
from prometheus_streams.transport.headers import Client, header_block, parse_header_lines

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


HEADER_TEXT = st.text(st.sampled_from("aZ-_.: \t\r\né\x1c"), max_size=8)


async def _sent(client: NATS, headers: dict[str, str]) -> list[bytes]:
    """The command `client._send_publish` queues for `headers`, not connected."""
    sent: list[bytes] = []

    async def keep(command: bytes, priority: bool = False) -> None:
        sent.append(command)

    client._send_command = keep  # type: ignore[method-assign,assignment]
    await client._send_publish("a.b", "_INBOX.x.1", b"payload", 7, headers)
    return sent


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(HEADER_TEXT, HEADER_TEXT, max_size=5))
async def test_the_publish_command_is_nats_py_s(headers: dict[str, str]) -> None:
    theirs: list[bytes] | type[Exception]
    try:
        theirs = await _sent(NATS(), dict(headers))
    except errors.BadHeaderError:
        theirs = errors.BadHeaderError
    if theirs is errors.BadHeaderError:
        with pytest.raises(errors.BadHeaderError):
            await _sent(Client(), dict(headers))
    else:
        assert await _sent(Client(), dict(headers)) == theirs


async def test_our_publish_command_is_nats_py_s() -> None:
    scrape = wire.Scrape("dc1", "node", "host:9100", 1_764_770_000_000, b"up 1\n", (("a", "é"),))
    _, _, headers = wire.encode("metrics", scrape)
    headers["Nats-Expected-Stream"] = "METRICS"
    assert await _sent(Client(), dict(headers)) == await _sent(NATS(), dict(headers))
    assert header_block(headers).startswith(b"NATS/1.0\r\nNats-Msg-Id: dc1/node/host%3A9100/")


async def test_publish_goes_through_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    # Should nats-py's publish stop calling _send_publish, ours would be bypassed.
    built: list[dict[str, str]] = []

    def block(headers: dict[str, str]) -> bytes:
        built.append(headers)
        return b""

    monkeypatch.setattr(headers_module, "header_block", block)
    client = Client()
    client._max_pending_size = 1 << 20  # buffering, as while reconnecting
    await client.publish("a.b", b"x", headers={"A": "b"})
    assert built == [{"A": "b"}]


@pytest.mark.parametrize("reply", ["", "_INBOX.x.1"])
async def test_a_publish_without_headers_is_nats_py_s(reply: str) -> None:
    # The receiver's acks (no reply) and pull requests (a reply) take our write path too.
    async def sent(client: NATS) -> list[bytes]:
        out: list[bytes] = []

        async def keep(command: bytes, priority: bool = False) -> None:
            out.append(command)

        client._send_command = keep  # type: ignore[method-assign,assignment]
        await client._send_publish("$JS.ACK.a.b", reply, b"+ACK", 4, None)
        return out

    assert await sent(Client()) == await sent(NATS())
