"""The receiver's own HTTP client: the real Pushgateway, and fakes for what it never does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from servers import Pushgateway

from prometheus_streams.config import PushGatewayConfig
from prometheus_streams.receiver.http import HTTPError, HTTPPool
from prometheus_streams.receiver.pushgateway import PushGateway
from prometheus_streams.secret import Secret

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def fake_server(handler: Handler) -> AsyncIterator[str]:
    """A raw TCP server on a free loopback port answering with `handler`; its base URL.

    Every connection is closed, and its handler finished, before the block ends.
    """
    handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers[task] = writer
        try:
            await handler(reader, writer)
        except ConnectionError:
            pass  # the client under test gave up on us: that is what some tests want
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in handlers.values():
            writer.close()
        if handlers:
            await asyncio.wait(handlers, timeout=10)
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The request head and body, by Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


async def test_put_get_delete_against_the_real_pushgateway(pushgateway: Pushgateway) -> None:
    pool = HTTPPool(pushgateway.url, limit=2, timeout=10, headers={"User-Agent": "test"})
    try:
        path = "/metrics/job/j/instance/i"
        put = await pool.request("PUT", path, b"# TYPE a gauge\na 4\n")
        assert put.status == 200, put
        listed = await pool.request("GET", "/metrics")
        assert b'a{instance="i",job="j"} 4' in listed.body
        bad = await pool.request("PUT", path, b"a 1 2 3 4\n")
        assert bad.status == 400 and b"text format parsing error" in bad.body
        assert (await pool.request("DELETE", path)).status == 202
        assert b'a{instance="i"' not in (await pool.request("GET", "/metrics")).body
        assert len(pool._idle) == 1, "one keep-alive connection carried every request"
    finally:
        await pool.close()


async def test_chunked_answers_interim_answers_and_close_are_understood() -> None:
    answers = [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked"
        b"\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: 1\r\n\r\n",
        b"HTTP/1.1 503 Busy\r\nConnection: close\r\n\r\nsorry",
    ]
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for answer in answers[:]:
            await read_request(reader)
            writer.write(answers.pop(0))
            await writer.drain()
            if b"close" in answer:
                break
        writer.close()

    async with fake_server(handler) as url:
        pool = HTTPPool(url, limit=2, timeout=5)
        first = await pool.request("PUT", "/x", b"body")
        assert (first.status, first.body) == (400, b"hello world")
        second = await pool.request("PUT", "/x", b"body")
        assert (second.status, second.body) == (503, b"sorry")
        assert connections == 1 and not pool._idle  # closed as the server asked
        await pool.close()


def answer_once(answer: bytes, requests: list[tuple[bytes, bytes]]) -> Handler:
    """A handler that records one request (head, body), answers it and closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await read_request(reader))
        writer.write(answer)
        await writer.drain()
        writer.close()

    return handler


async def test_a_kept_connection_the_server_closed_is_retried_once_on_a_new_one() -> None:
    requests: list[tuple[bytes, bytes]] = []
    # The server closes without saying Connection: close.
    ok = answer_once(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", requests)
    async with fake_server(ok) as url:
        pool = HTTPPool(url, limit=2, timeout=5)
        assert (await pool.request("PUT", "/x", b"one")).status == 200
        assert len(pool._idle) == 1
        # The kept connection is dead by now: the request goes out again on a new one.
        assert (await pool.request("PUT", "/x", b"two")).status == 200
        assert [body for _, body in requests] == [b"one", b"two"]
        await pool.close()


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", "limit"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 70_000, "longer than"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000, "longer than"),
    ],
)
async def test_garbage_answers_are_errors_not_crashes(answer: bytes, error: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        await reader.read()  # hold the connection until the client gives up
        writer.close()

    async with fake_server(handler) as url:
        pool = HTTPPool(url, limit=1, timeout=5)
        with pytest.raises(HTTPError, match=error):
            await pool.request("PUT", "/x", b"body")
        assert not pool._idle
        await pool.close()


async def test_a_server_that_never_answers_times_out() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads the request, never answers
        writer.close()

    async with fake_server(handler) as url:
        pool = HTTPPool(url, limit=1, timeout=0.3)
        with pytest.raises(TimeoutError):
            await pool.request("PUT", "/x", b"body")
        assert not pool._idle
        await pool.close()


async def test_a_body_that_never_ends_times_out_and_the_pool_goes_on() -> None:
    answered = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        await read_request(reader)
        answered += 1
        if answered == 1:
            # No length, no chunks: the body ends when the server closes, which it never does.
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npartial")
            await writer.drain()
            await reader.read()
        else:
            writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()

    async with fake_server(handler) as url:
        pool = HTTPPool(url, limit=1, timeout=0.3)
        with pytest.raises(TimeoutError):
            await pool.request("PUT", "/x", b"body")  # never the partial body as an answer
        assert (await pool.request("PUT", "/x", b"body")).status == 202
        await pool.close()


async def test_base_path_host_and_fixed_headers_are_sent() -> None:
    requests: list[tuple[bytes, bytes]] = []
    async with fake_server(answer_once(b"HTTP/1.0 204 No Content\r\n\r\n", requests)) as url:
        pool = HTTPPool(url + "/pgw/", limit=1, timeout=5, headers={"Authorization": "Bearer t"})
        answer = await pool.request("DELETE", "/metrics/job/a", headers={"X-Extra": "1"})
        assert answer.status == 204 and not pool._idle  # HTTP/1.0: not kept
        await pool.close()
    head = requests[0][0].decode()
    assert head.startswith("DELETE /pgw/metrics/job/a HTTP/1.1\r\n")
    for line in ("Host: 127.0.0.1:", "Authorization: Bearer t", "X-Extra: 1", "Content-Length: 0"):
        assert f"\r\n{line}" in head, head


def serve_gets(answers: list[bytes | Handler]) -> Handler:
    """A handler answering each request with the next answer (bytes, or a handler of its own)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while answers:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return  # the client closed this connection
            answer = answers.pop(0)
            if isinstance(answer, bytes):
                writer.write(answer)
                await writer.drain()
            else:
                await answer(reader, writer)

    return handler


async def test_a_streamed_chunked_body_comes_in_pieces_and_keeps_the_connection() -> None:
    connections = 0
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nTrailer: 1\r\n\r\n"
    inner = serve_gets([chunked, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"])

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await inner(reader, writer)

    async with fake_server(handler) as url:
        pool = HTTPPool(url, limit=2, timeout=5)
        async with pool.stream("/metrics", chunk_size=4) as response:
            pieces = [piece async for piece in response]
        assert response.status == 200 and response.finished
        assert b"".join(pieces) == b"hello world" and max(map(len, pieces)) <= 4
        assert len(pool._idle) == 1, "a body read to its end leaves the connection kept"
        async with pool.stream("/metrics") as response:
            assert [piece async for piece in response] == [b"abc"]
        assert connections == 1 and len(pool._idle) == 1
        await pool.close()


async def test_a_streamed_body_until_close_is_read_whole_and_not_kept() -> None:
    async def until_close(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async with fake_server(serve_gets([until_close])) as url:
        pool = HTTPPool(url, limit=2, timeout=5)
        async with pool.stream("/metrics") as response:
            assert b"".join([piece async for piece in response]) == b"all of it"
        assert not pool._idle
        await pool.close()


async def test_stopping_a_streamed_body_early_discards_the_connection() -> None:
    closed = asyncio.Event()
    connections = 0

    async def endless(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            while True:  # until the client hangs up
                writer.write(b"4\r\nmore\r\n")
                await writer.drain()
                await asyncio.sleep(0.01)
        closed.set()

    inner = serve_gets([endless, b"HTTP/1.1 204 No Content\r\n\r\n"])

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await inner(reader, writer)

    async with fake_server(handler) as url:
        pool = HTTPPool(url, limit=2, timeout=5)
        async with pool.stream("/metrics") as response:
            async for piece in response:
                assert piece.startswith(b"more")
                break
        assert not response.finished and not pool._idle, "the unread rest closes the connection"
        await asyncio.wait_for(closed.wait(), 30)
        # The next request cannot get the rest of the old body as its answer.
        assert (await pool.request("GET", "/metrics")).status == 204
        assert connections == 2
        await pool.close()


async def test_each_wait_for_a_streamed_body_is_bounded_not_the_whole_body() -> None:
    async def slow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Eight pieces, 0.3 s apart: longer than the timeout in all, never in one wait.
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n")
        for _piece in range(8):
            await asyncio.sleep(0.3)
            writer.write(b"x")
            await writer.drain()

    async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nx")
        await writer.drain()
        await reader.read()  # the rest never comes; until the client hangs up

    async with fake_server(serve_gets([slow, stalled])) as url:
        pool = HTTPPool(url, limit=2, timeout=1.5)
        started = asyncio.get_running_loop().time()
        async with pool.stream("/metrics") as response:
            assert b"".join([piece async for piece in response]) == b"x" * 8
        assert asyncio.get_running_loop().time() - started > pool.timeout
        pieces: list[bytes] = []
        with pytest.raises(TimeoutError):
            async with pool.stream("/metrics") as response:
                async for piece in response:
                    pieces.append(piece)
        assert pieces == [b"x"] and not pool._idle
        await pool.close()


async def test_the_listing_stops_after_the_push_times_and_waits_per_read() -> None:
    page = (
        b"# TYPE push_time_seconds gauge\n"
        b'push_time_seconds{instance="i",job="j",publisher="p"} 1.5e+09\n'
        b"# TYPE push_failure_time_seconds gauge\n"
        b'push_failure_time_seconds{instance="i",job="j",publisher="p"} 0\n'
        b"# TYPE pushgateway_build_info gauge\n"
    )
    requests: list[bytes] = []

    async def listing(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(page), 16):  # slowly: 0.2 s a piece, more than the timeout in all
            await asyncio.sleep(0.2)
            writer.write(b"%x\r\n%s\r\n" % (len(page[i : i + 16]), page[i : i + 16]))
            await writer.drain()
        while True:  # every other series of a large Pushgateway, never read
            writer.write(b"400\r\n" + b"#" * 1023 + b"\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append((await read_request(reader))[0])
        with contextlib.suppress(ConnectionError):
            await listing(writer)

    async with fake_server(handler) as url:
        gateway = PushGateway(
            PushGatewayConfig(url=url, timeout=1.0, bearer_token=Secret("t", "tok"))
        )
        await gateway.start()
        try:
            groups = await gateway.push_times()
        finally:
            await gateway.close()
    assert [(g.labels, g.pushed) for g in groups] == [
        ({"instance": "i", "job": "j", "publisher": "p"}, 1.5e09)
    ]
    assert requests[0].startswith(b"GET /metrics HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer tok\r\n" in requests[0]
