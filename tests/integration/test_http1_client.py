"""The lean HTTP/1.1 client (transport/http1.py) against real servers on loopback.

aiohttp web servers are the real peers; a raw socket server only for what a
real server does not show on demand: a kept-alive connection closed while
idle, garbage, bad chunk sizes, a body that stops coming.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvloop
from aiohttp import web
from servers import HOST, free_port, serve_app
from testca import TestCA

from prometheus_streams.transport import http1

BODY = b"".join(b'm{n="%d"} %d\n' % (i, i) for i in range(3000))


def _origin(port: int, **tls: object) -> http1.Origin:
    scheme = "https" if tls else "http"
    return http1.Origin(scheme, HOST, port, f"{HOST}:{port}", **tls)  # type: ignore[arg-type]


class Peer:
    """An aiohttp server that notes each request's connection and headers."""

    def __init__(self) -> None:
        self.peers: list[object] = []
        self.headers: list[dict[str, str]] = []
        self.posted: list[bytes] = []
        self.hang = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.peers.append(
            request.transport.get_extra_info("peername") if request.transport else None
        )
        self.headers.append(dict(request.headers))
        if request.path == "/sized":
            return web.Response(body=BODY)
        if request.path == "/chunked":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(BODY), 777):
                await response.write(BODY[start : start + 777])
            await response.write_eof()
            return response
        if request.path == "/post":
            self.posted.append(await request.read())
            return web.Response(status=204)
        if request.path == "/hang":
            await self.hang.wait()
        return web.Response(status=429, headers={"Retry-After": "7"}, text="slow down")

    @asynccontextmanager
    async def serving(self, context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
        """Serve until the block ends; yields the port."""
        app = web.Application()
        app.router.add_route("*", "/{name}", self.handle)
        if context is None:
            runner, port = await serve_app(app)
        else:
            runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, HOST, 0, ssl_context=context).start()
            port = int(runner.addresses[0][1])
        try:
            yield port
        finally:
            self.hang.set()
            await runner.cleanup()


@asynccontextmanager
async def raw_server(
    answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]],
) -> AsyncIterator[tuple[int, list[int]]]:
    """A socket server calling `answer(reader, writer, n)` for its n-th connection."""
    accepted: list[int] = []
    handlers: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(len(accepted))
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        try:
            await answer(reader, writer, len(accepted) - 1)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, accepted
    finally:
        server.close()
        for task in handlers:  # a hanging answer ends here, closing its socket
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


async def _request_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def test_get_sized_and_chunked_bodies_over_one_kept_connection() -> None:
    peer = Peer()
    client = http1.Client()
    async with peer.serving() as port:
        for path in ("/sized", "/chunked", "/sized", "/chunked"):
            answer = await client.request(
                "GET", _origin(port), path, {"X-A": "b"}, body_limit=10**6
            )
            assert (answer.status, answer.body) == (200, BODY)
        await client.close()
    assert len(set(peer.peers)) == 1, peer.peers  # one connection carried all four
    assert peer.headers[0]["Host"] == f"{HOST}:{port}"
    assert peer.headers[0]["X-A"] == "b"


async def test_post_sends_its_body_and_reads_status_and_headers() -> None:
    peer = Peer()
    client = http1.Client()
    async with peer.serving() as port:
        done = await client.request(
            "POST", _origin(port), "/post", {}, b"\x00payload", body_limit=99
        )
        slow = await client.request("POST", _origin(port), "/other", {}, b"x", body_limit=99)
        await client.close()
    assert peer.posted == [b"\x00payload"]
    assert (done.status, done.body) == (204, b"")
    assert (slow.status, slow.reason, slow.body) == (429, "Too Many Requests", b"slow down")
    assert slow.headers["retry-after"] == "7"


@pytest.mark.parametrize("path", ["/sized", "/chunked"])
async def test_a_body_past_the_limit_stops_the_reading(path: str) -> None:
    peer = Peer()
    client = http1.Client()
    async with peer.serving() as port:
        answer = await client.request("GET", _origin(port), path, {}, body_limit=len(BODY) - 1)
        whole = await client.request("GET", _origin(port), path, {}, body_limit=len(BODY))
        await client.close()
    assert answer.truncated and len(answer.body) < len(BODY)
    assert whole.body == BODY and not whole.truncated
    assert len(set(peer.peers)) == 2  # the cut answer's connection was not kept


async def test_tls_with_the_configured_server_name(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    issued = ca.issue("target", dns=("target.example",))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(issued.cert_file, issued.key_file)
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    client = http1.Client()
    async with Peer().serving(server) as port:
        named = _origin(port, ssl=context, server_hostname="target.example")
        answer = await client.request("GET", named, "/sized", {}, body_limit=10**6)
        with pytest.raises(http1.ConnectError, match="Cannot connect to host"):
            # By its address: the certificate does not name it.
            await client.request("GET", _origin(port, ssl=context), "/sized", {}, body_limit=9)
        await client.close()
    assert answer.body == BODY


async def test_the_deadline_bounds_the_whole_request_and_drops_its_connection() -> None:
    peer = Peer()
    client = http1.Client()
    async with peer.serving() as port:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.request("GET", _origin(port), "/hang", {}, body_limit=9, within=0.5)
        assert time.monotonic() - started < 10
        answer = await client.request("GET", _origin(port), "/sized", {}, body_limit=10**6)
        await client.close()
    assert answer.body == BODY
    assert len(set(peer.peers)) == 2


async def test_a_refused_connection_is_a_connect_error() -> None:
    client = http1.Client()
    with pytest.raises(http1.ConnectError, match=f"Cannot connect to host {HOST}:"):
        await client.request("GET", _origin(free_port()), "/", {}, body_limit=9)


async def test_a_kept_connection_closed_while_idle_is_asked_again_on_a_new_one() -> None:
    async def answer_once(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await _request_head(reader)
        # No "Connection: close": the client keeps the connection for the next request.
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok%d" % n)
        await writer.drain()
        if n == 0:
            # The next request finds the connection closing under it, unanswered,
            # as when a server's idle timeout strikes while the request is on its way.
            await _request_head(reader)

    client = http1.Client()
    async with raw_server(answer_once) as (port, accepted):
        first = await client.request("GET", _origin(port), "/", {}, body_limit=9)
        second = await client.request("GET", _origin(port), "/", {}, body_limit=9)
        await client.close()
    assert (first.body, second.body) == (b"ok0", b"ok1")
    assert len(accepted) == 2


async def test_a_fresh_connection_closed_without_an_answer_is_not_asked_again() -> None:
    async def close_at_once(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await _request_head(reader)

    client = http1.Client()
    async with raw_server(close_at_once) as (port, accepted):
        with pytest.raises(ConnectionResetError):
            await client.request("GET", _origin(port), "/", {}, body_limit=9)
    assert len(accepted) == 1


def answering(raw: bytes, then_hang: bool = False) -> Callable[..., Awaitable[None]]:
    """An answer for raw_server: `raw` to every request, then a hang if asked."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await _request_head(reader)
        writer.write(raw)
        await writer.drain()
        if then_hang:
            await asyncio.sleep(60)

    return answer


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", http1.HTTPError),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", http1.HTTPError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", http1.HTTPError),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
            http1.BodyError,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n",
            http1.BodyError,
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", http1.BodyError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", http1.BodyError),
    ],
)
async def test_a_malformed_or_cut_answer_is_an_error(raw: bytes, error: type[Exception]) -> None:
    client = http1.Client()
    async with raw_server(answering(raw)) as (port, _):
        with pytest.raises(error):
            await client.request("GET", _origin(port), "/", {}, body_limit=100, within=30)


async def test_a_body_that_stops_coming_runs_into_the_deadline() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf"
    client = http1.Client()
    async with raw_server(answering(raw, then_hang=True)) as (port, _):
        with pytest.raises(TimeoutError):
            await client.request("GET", _origin(port), "/", {}, body_limit=1000, within=0.5)


async def test_a_body_read_to_the_close_and_an_http_1_0_answer() -> None:
    raw = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + BODY
    client = http1.Client()
    async with raw_server(answering(raw)) as (port, accepted):
        for _ in range(2):
            answer = await client.request("GET", _origin(port), "/", {}, body_limit=10**6)
            assert answer.body == BODY and answer.length is None
    assert len(accepted) == 2  # read to the close: the connection is not kept


async def test_a_header_with_a_line_break_is_not_sent() -> None:
    client = http1.Client()
    with pytest.raises(ValueError, match="line break"):
        await client.request("GET", _origin(free_port()), "/", {"X": "a\r\nB: c"}, body_limit=9)


# The poller and the receiver run uvloop when it is installed; its transports
# are not asyncio's (a check that held under asyncio's loop failed there).
UNDER_UVLOOP: list[Callable[[], Awaitable[None]]] = [
    test_get_sized_and_chunked_bodies_over_one_kept_connection,
    test_post_sends_its_body_and_reads_status_and_headers,
    functools.partial(test_a_body_past_the_limit_stops_the_reading, "/chunked"),
    test_the_deadline_bounds_the_whole_request_and_drops_its_connection,
    test_a_refused_connection_is_a_connect_error,
    test_a_kept_connection_closed_while_idle_is_asked_again_on_a_new_one,
    test_a_fresh_connection_closed_without_an_answer_is_not_asked_again,
    test_a_body_read_to_the_close_and_an_http_1_0_answer,
]


@pytest.mark.parametrize("case", UNDER_UVLOOP, ids=lambda case: getattr(case, "__name__", "cut"))
def test_under_uvloop(case: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(case())  # type: ignore[arg-type]


def test_tls_under_uvloop(tmp_path: Path) -> None:
    uvloop.run(test_tls_with_the_configured_server_name(tmp_path))
