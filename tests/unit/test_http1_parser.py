"""The lean HTTP/1.1 client's answer parser, fed answers cut at any points."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prometheus_streams.transport import http1, http1_answer


class _Transport(asyncio.Transport):
    """Takes the request; notes a close."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _parse(pieces: list[bytes], limit: int, eof: bool = False) -> tuple[http1.Answer, bool]:
    """The answer to one GET fed in `pieces`, and whether the connection stays open."""

    async def run() -> tuple[http1.Answer, bool]:
        conn = http1_answer.HTTPConnection()  # the parser without a socket
        transport = _Transport()
        conn.connection_made(transport)
        waiter = conn.start(b"GET / HTTP/1.1\r\n\r\n", "GET", limit)
        for piece in pieces:
            if not waiter.done():
                conn.data_received(piece)
        if eof and not waiter.done():
            conn.connection_lost(None)
        return await waiter, not transport.closed

    return asyncio.run(run())


def _cut(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(marks) if b > a]


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out, at = [], 0
    for size in [*sizes, len(body)]:
        piece = body[at : at + size]
        if piece:
            out.append(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
        at += len(piece)
    return b"".join(out) + b"0\r\nTrailer: x\r\n\r\n"


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=3000),
    kind=st.sampled_from(["length", "chunked", "close"]),
    sizes=st.lists(st.integers(1, 700), max_size=8),
    points=st.lists(st.integers(0, 10_000), max_size=12),
    interim=st.booleans(),
)
def test_any_cut_of_an_answer_gives_its_body(
    body: bytes, kind: str, sizes: list[int], points: list[int], interim: bool
) -> None:
    head = b"HTTP/1.1 100 Continue\r\n\r\n" if interim else b""
    head += b"HTTP/1.1 200 OK\r\nX-Many: a\r\nx-many: b\r\n"
    if kind == "length":
        raw = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    elif kind == "chunked":
        raw = head + b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(body, sizes)
    else:
        raw = head + b"Connection: close\r\n\r\n" + body
    answer, kept = _parse(_cut(raw, points), limit=len(body), eof=kind == "close")
    assert (answer.status, answer.body, answer.truncated) == (200, body, False)
    assert answer.headers["x-many"] == "a, b"
    assert kept == (kind != "close")


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=3000),
    kind=st.sampled_from(["length", "chunked", "close"]),
    sizes=st.lists(st.integers(1, 700), max_size=8),
    points=st.lists(st.integers(0, 10_000), max_size=12),
    data=st.data(),
)
def test_a_body_past_the_limit_is_cut_and_its_connection_closed(
    body: bytes, kind: str, sizes: list[int], points: list[int], data: st.DataObject
) -> None:
    limit = data.draw(st.integers(0, len(body) - 1))
    if kind == "length":
        raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    elif kind == "chunked":
        raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(body, sizes)
    else:
        raw = b"HTTP/1.0 200 OK\r\n\r\n" + body
    answer, kept = _parse(_cut(raw, points), limit=limit, eof=True)
    assert answer.truncated and not kept
    assert body.startswith(answer.body[: len(body)])


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"HTTP/1.1 200 OK", (200, "OK", {}, True)),
        (b"HTTP/1.1 503 Service Unavailable", (503, "Service Unavailable", {}, True)),
        (b"HTTP/1.1 204", (204, "", {}, True)),
        (b"HTTP/1.1 200 OK\r\nConnection: close", (200, "OK", {"connection": "close"}, False)),
        (b"HTTP/1.0 200 OK", (200, "OK", {}, False)),
        (
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive",
            (200, "OK", {"connection": "Keep-Alive"}, True),
        ),
        (b"HTTP/1.1 200 OK\r\nA:  spaced \t", (200, "OK", {"a": "spaced"}, True)),
    ],
)
def test_answer_heads(head: bytes, expected: tuple[object, ...]) -> None:
    assert http1_answer.parse_head(head) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/2 200 OK",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 OK",
        b"ICY 200 OK",
        b"HTTP/1.1 200 OK\r\nbroken",
        b"HTTP/1.1 200 OK\r\n Folded: x",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2",
    ],
)
def test_malformed_heads_are_errors(head: bytes) -> None:
    with pytest.raises(http1.HTTPError):
        http1_answer.parse_head(head)


@pytest.mark.parametrize(
    ("line", "size"), [(b"0", 0), (b"1a", 26), (b"FF;name=value", 255), (b" 10 ", 16)]
)
def test_chunk_sizes(line: bytes, size: int) -> None:
    assert http1_answer.chunk_size(line) == size


@pytest.mark.parametrize("line", [b"", b"-1", b"0x10", b"g", b"1" * 17, b"+5"])
def test_bad_chunk_sizes_are_body_errors(line: bytes) -> None:
    with pytest.raises(http1.BodyError):
        http1_answer.chunk_size(line)
