"""A small keep-alive HTTP/1.1 client for the receiver's talk with the Pushgateway.

The receiver runs on the Pushgateway's machine and pushes hundreds of
bodies a second; every CPU millisecond it spends is one the Pushgateway
does not get. A general client pays for URL objects, header multidicts,
cookie and trace hooks on every request (a third of the CPU per PUT, see
docs/performance.md); this one writes the request in one piece and reads a
status line, headers and a Content-Length, chunked or read-to-close body.
Only what the Pushgateway's API needs is spoken: no redirects, no proxies,
no compression, one request at a time per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024  # status line and headers of a response

_T = TypeVar("_T")


class HTTPError(Exception):
    """The server's answer is not HTTP/1.x as we speak it."""


@dataclass(frozen=True)
class Response:
    """Status and body of one answer."""

    status: int
    body: bytes


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


class HTTPPool:
    """Keep-alive connections to one origin; at most `limit` are kept idle."""

    def __init__(
        self,
        url: str,
        *,
        limit: int,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        headers: dict[str, str] | None = None,
        max_body: int = 1024 * 1024,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.ssl = ssl_context if parts.scheme == "https" else None
        if self.ssl is None and parts.scheme == "https":
            self.ssl = ssl.create_default_context()
        self.limit = limit
        self.timeout = timeout
        self.max_body = max_body
        host = parts.netloc.rpartition("@")[2]
        fixed = {"Host": host, **(headers or {})}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self._idle: list[_Connection] = []
        self._closed = False

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        """Send one request and read its answer within the timeout.

        Raises TimeoutError, OSError or HTTPError when there is no usable answer.
        A kept connection the server closed meanwhile is retried once on a new one.
        """
        message = self._message(method, path, body, headers)
        async with asyncio.timeout(self.timeout):
            conn, (response, keep) = await self._exchange(
                message, lambda reader: self._read(reader, method)
            )
        self._release(conn, keep)
        return response

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, headers: dict[str, str] | None = None, *, chunk_size: int = 64 * 1024
    ) -> AsyncIterator[StreamedResponse]:
        """GET `path`; its body is read only as the caller iterates over the answer.

        The timeout bounds the answer's head and then each wait for more of the
        body, not the whole body, so a long body that keeps coming is read to its
        end. A body read to its end leaves the connection kept; one the caller
        stopped reading (or raised inside) closes it, as its rest is still unread.
        """
        message = self._message("GET", path, b"", headers)
        async with asyncio.timeout(self.timeout):
            conn, head = await self._exchange(message, _read_head)
        status, keep, length, chunked = head
        if status in (204, 304):
            length, chunked = 0, False
        response = StreamedResponse(status, conn.reader, self.timeout, length, chunked, chunk_size)
        try:
            yield response
        except BaseException:
            conn.close()
            raise
        self._release(conn, keep and response.finished and (length is not None or chunked))

    async def close(self) -> None:
        """Close every idle connection; requests in flight close theirs when done."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            with contextlib.suppress(OSError, ssl.SSLError):
                await conn.writer.wait_closed()

    def _message(
        self, method: str, path: str, body: bytes, headers: dict[str, str] | None
    ) -> bytes:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"{method} {self.base_path}{path} HTTP/1.1\r\n{extra}Content-Length: {len(body)}\r\n"
        ).encode("latin-1")
        return head + self._fixed + b"\r\n" + body

    async def _exchange(
        self, message: bytes, read: Callable[[asyncio.StreamReader], Awaitable[_T]]
    ) -> tuple[_Connection, _T]:
        """Send `message` on a kept or new connection and `read` the answer.

        A kept connection the server closed meanwhile is retried once on a new one.
        """
        while True:
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else await self._connect()
            try:
                conn.writer.write(message)
                await conn.writer.drain()
                return conn, await read(conn.reader)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                conn.close()
                if reused and not getattr(exc, "partial", b""):
                    continue  # closed while idle: nothing was answered, ask again
                raise _as_os_error(exc) from None
            except BaseException:
                conn.close()
                raise

    def _release(self, conn: _Connection, keep: bool) -> None:
        if keep and not self._closed and len(self._idle) < self.limit:
            self._idle.append(conn)
        else:
            conn.close()

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(
            self.host,
            self.port,
            ssl=self.ssl,
            server_hostname=self.host if self.ssl is not None else None,
            limit=MAX_HEAD,
        )
        return _Connection(reader, writer)

    async def _read(self, reader: asyncio.StreamReader, method: str) -> tuple[Response, bool]:
        """One response; whether the connection can carry the next request."""
        status, keep, length, chunked = await _read_head(reader)
        if method == "HEAD" or status in (204, 304):
            return Response(status, b""), keep
        if chunked:
            return Response(status, await self._read_chunked(reader)), keep
        if length is not None:
            if length > self.max_body:
                raise HTTPError(f"response body of {length} bytes, limit {self.max_body}")
            return Response(status, await reader.readexactly(length)), keep
        # Neither length nor chunks: the body ends when the server closes.
        return Response(status, await self._read_to_end(reader)), False

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            chunk = _chunk_size(await _until(reader, b"\r\n"))
            if chunk == 0:
                await _skip_trailers(reader)
                return b"".join(parts)
            size += chunk
            if size > self.max_body:
                raise HTTPError(f"response body beyond {self.max_body} bytes")
            parts.append(await reader.readexactly(chunk))
            if await reader.readexactly(2) != b"\r\n":
                raise HTTPError("chunk not followed by CRLF")

    async def _read_to_end(self, reader: asyncio.StreamReader) -> bytes:
        body = b""
        while len(body) <= self.max_body:
            more = await reader.read(self.max_body + 1 - len(body))
            if not more:
                return body
            body += more
        raise HTTPError(f"response body beyond {self.max_body} bytes")


class StreamedResponse:
    """An answer whose body is read as it arrives: `async for piece in response`.

    Each wait for the next piece is bounded by the timeout; TimeoutError,
    OSError or HTTPError end the reading.
    """

    def __init__(
        self,
        status: int,
        reader: asyncio.StreamReader,
        timeout: float,
        length: int | None,
        chunked: bool,
        chunk_size: int,
    ) -> None:
        self.status = status
        self.finished = False  # the body was read to its end
        self._reader = reader
        self._timeout = timeout
        self._chunk_size = chunk_size
        self._chunked = chunked
        self._in_chunks = False  # a chunk was read, so its CRLF comes before the next size
        # Bytes left of the Content-Length or of the current chunk; None: until close.
        self._left = 0 if chunked else length

    def __aiter__(self) -> StreamedResponse:
        return self

    async def __anext__(self) -> bytes:
        if self.finished:
            raise StopAsyncIteration
        try:
            async with asyncio.timeout(self._timeout):
                piece = await self._next()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise _as_os_error(exc) from None
        if not piece:
            self.finished = True
            raise StopAsyncIteration
        return piece

    async def _next(self) -> bytes:
        """The next piece of the body; b"" at its end."""
        reader = self._reader
        if self._left is None:
            return await reader.read(self._chunk_size)
        if self._chunked and not self._left:
            if self._in_chunks and await reader.readexactly(2) != b"\r\n":
                raise HTTPError("chunk not followed by CRLF")
            self._in_chunks = True
            self._left = _chunk_size(await _until(reader, b"\r\n"))
            if not self._left:
                await _skip_trailers(reader)
        if not self._left:
            return b""
        piece = await reader.read(min(self._chunk_size, self._left))
        if not piece:
            raise ConnectionResetError("connection closed before the end of the body")
        self._left -= len(piece)
        return piece


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, bool, int | None, bool]:
    """Status, keep-alive, Content-Length and chunked of the next final answer."""
    while True:
        head = _parse_head(await _until(reader, b"\r\n\r\n"))
        if head[0] >= 200:
            return head
        # 1xx: an interim answer; the real one follows.


def _chunk_size(line: bytes) -> int:
    try:
        size = int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        raise HTTPError(f"bad chunk size line {line[:40]!r}") from None
    if size < 0:
        raise HTTPError(f"bad chunk size line {line[:40]!r}")
    return size


async def _skip_trailers(reader: asyncio.StreamReader) -> None:
    while (await _until(reader, b"\r\n")) != b"\r\n":
        pass


async def _until(reader: asyncio.StreamReader, separator: bytes) -> bytes:
    """Read through `separator`; a line longer than MAX_HEAD is an HTTPError."""
    try:
        return await reader.readuntil(separator)
    except asyncio.LimitOverrunError:
        raise HTTPError(f"response line or headers longer than {MAX_HEAD} bytes") from None


def _parse_head(head: bytes) -> tuple[int, bool, int | None, bool]:
    """Status, keep-alive, Content-Length and chunked, from a response head."""
    lines = head[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise HTTPError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    keep = version != b"HTTP/1.0"
    length: int | None = None
    chunked = False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise HTTPError(f"bad header line {line[:80]!r}")
        name = name.strip().lower()
        value = value.strip()
        if name == b"content-length":
            if not value.isdigit():
                raise HTTPError(f"bad Content-Length {value[:40]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = value.lower().endswith(b"chunked")
        elif name == b"connection":
            tokens = value.lower()
            if b"close" in tokens:
                keep = False
            elif b"keep-alive" in tokens:
                keep = True
    return int(code), keep, length, chunked


def _as_os_error(exc: BaseException) -> OSError:
    if isinstance(exc, OSError):
        return exc
    return ConnectionResetError(f"connection closed before a full answer ({exc})")
