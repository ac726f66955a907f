"""The answer side of the lean HTTP/1.1 client (transport/http1.py).

One asyncio Protocol per connection parses the answer as it arrives and
wakes the request once, when the whole answer is in; the body is delimited
by Content-Length, chunks or the connection's end, and reading stops at a
size limit. A malformed answer is an HTTPError.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast

MAX_HEAD = 64 * 1024  # status line and headers of an answer
MAX_LINE = 4096  # a chunk size line or a trailer

# Parser states.
_HEAD, _LENGTH, _SIZE, _CHUNK, _TRAILER, _TO_CLOSE, _DONE = range(7)


class HTTPError(Exception):
    """The answer is not HTTP/1.x as spoken here (its head is malformed)."""


class BodyError(HTTPError):
    """The answer's body is malformed or ended early (bad chunk, cut short)."""


@dataclass(slots=True)
class Answer:
    """One answer: status, headers (names lower case, repeats joined by ", "), body."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    length: int | None  # the announced Content-Length
    truncated: bool = False  # the body went past the limit: `body` is its start or empty


class HTTPConnection(asyncio.Protocol):
    """One connection; parses one answer at a time into `waiter`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self.idle_since = 0.0
        self.waiter: asyncio.Future[Answer] | None = None
        self.received = 0  # bytes of the current answer so far
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._size = 0
        self._state = _DONE
        self._left = 0
        self._limit = 0
        self._method = "GET"
        self._answer: Answer | None = None
        self._keep = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but alike.
        self.transport = cast(asyncio.Transport, transport)
        # Asked once: asyncio.get_running_loop() makes a getpid call each time (3.11).
        self._loop = asyncio.get_running_loop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self._state == _TO_CLOSE:
            self._finish(keep=False)
        elif self._state == _HEAD and not self.received:
            # A TLS alert (a client certificate refused) says more than the close.
            why = f": {exc}" if exc is not None else ""
            waiter.set_exception(ConnectionResetError(f"the server closed the connection{why}"))
        elif self._state == _HEAD:
            waiter.set_exception(HTTPError("connection closed within the answer's head"))
        else:
            waiter.set_exception(BodyError("connection closed before the end of the body"))

    def close(self) -> None:
        """Close now; an answer being read fails."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def start(self, message: bytes, method: str, limit: int) -> asyncio.Future[Answer]:
        """Send `message`; the future gets the answer."""
        assert self.transport is not None and self._loop is not None
        self.waiter = self._loop.create_future()
        self.received = self._size = 0
        self._buf.clear()
        self._parts = []
        self._state = _HEAD
        self._method = method
        self._limit = limit
        self._answer = None
        self.transport.write(message)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            self.close()  # bytes nobody asked for: this connection cannot be trusted
            return
        self.received += len(data)
        if self._state == _LENGTH:  # the common case: no copy into the buffer
            self._parts.append(data)
            self._size += len(data)
            if self._size >= self._left:
                self._end_length()
            return
        self._buf += data
        try:
            self._parse()
        except HTTPError as exc:
            self.close()
            self.waiter.set_exception(exc)

    def _parse(self) -> None:
        buf = self._buf
        while self._state != _DONE:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise HTTPError(f"answer head longer than {MAX_HEAD} bytes")
                    return
                head = bytes(buf[:end])
                del buf[: end + 4]
                self._head(head)
            elif state == _LENGTH:
                self._parts.append(bytes(buf))
                self._size += len(buf)
                buf.clear()
                if self._size >= self._left:
                    self._end_length()
                return
            elif state in (_SIZE, _TRAILER):
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_LINE:
                        raise BodyError("chunk size line or trailer too long")
                    return
                line = bytes(buf[:end])
                del buf[: end + 2]
                if state == _TRAILER:
                    if not line:
                        self._finish(keep=self._keep)
                elif (size := chunk_size(line)) == 0:
                    self._state = _TRAILER
                elif self._size + size > self._limit:
                    self._truncate()
                else:
                    self._left = size
                    self._state = _CHUNK
            elif state == _CHUNK:
                if len(buf) < self._left + 2:
                    return
                if buf[self._left : self._left + 2] != b"\r\n":
                    raise BodyError("chunk not followed by CRLF")
                self._parts.append(bytes(buf[: self._left]))
                self._size += self._left
                del buf[: self._left + 2]
                self._state = _SIZE
            else:  # _TO_CLOSE
                self._parts.append(bytes(buf))
                self._size += len(buf)
                buf.clear()
                if self._size > self._limit:
                    self._truncate()
                return

    def _head(self, head: bytes) -> None:
        status, reason, headers, keep = parse_head(head)
        if 100 <= status < 200 and status != 101:
            return  # an interim answer: the real one follows
        length: int | None = None
        if "content-length" in headers:
            value = headers["content-length"]
            if not value.isdigit():
                raise HTTPError(f"bad Content-Length {value[:40]!r}")
            length = int(value)
        self._answer = Answer(status, reason, headers, b"", length)
        self._keep = keep
        chunked = headers.get("transfer-encoding", "").lower().endswith("chunked")
        if self._method == "HEAD" or status in (204, 304) or (length == 0 and not chunked):
            self._finish(keep=keep)
        elif chunked:
            # Both a length and chunks: the chunks count, the connection is not kept.
            self._keep = keep and length is None
            self._answer.length = None
            self._state = _SIZE
        elif length is None:
            self._state = _TO_CLOSE
        elif length > self._limit:
            self._truncate()
        else:
            self._left = length
            self._state = _LENGTH

    def _end_length(self) -> None:
        body = b"".join(self._parts) if len(self._parts) != 1 else self._parts[0]
        keep = self._keep and len(body) == self._left  # more than announced: not kept
        self._parts = [body[: self._left]]
        self._finish(keep=keep)

    def _truncate(self) -> None:
        assert self._answer is not None
        self._answer.truncated = True
        self._finish(keep=False)

    def _finish(self, keep: bool) -> None:
        answer = self._answer
        assert answer is not None and self.waiter is not None
        answer.body = b"".join(self._parts)
        self._parts = []
        self._state = _DONE
        if not keep or self._buf:
            self.close()
        if not self.waiter.done():
            self.waiter.set_result(answer)


def parse_head(head: bytes) -> tuple[int, str, dict[str, str], bool]:
    """Status, reason, headers and keep-alive from an answer's head (without its CRLFCRLF)."""
    lines = head.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise HTTPError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise HTTPError(f"bad header line {line[:80]!r}")
        key = name.decode("latin-1").lower()
        text = value.strip().decode("latin-1")
        if key in headers:
            if key == "content-length" and headers[key] != text:
                raise HTTPError("two different Content-Length headers")
            if key != "content-length":
                text = f"{headers[key]}, {text}"
        headers[key] = text
    tokens = headers.get("connection", "").lower()
    keep = "keep-alive" in tokens if version == b"HTTP/1.0" else "close" not in tokens
    return int(code), reason.decode("latin-1").strip(), headers, keep


def chunk_size(line: bytes) -> int:
    """The size from a chunk's size line (its extensions ignored)."""
    digits = line.split(b";", 1)[0].strip()
    if not digits or len(digits) > 16 or digits.strip(b"0123456789abcdefABCDEF"):
        raise BodyError(f"bad chunk size line {line[:40]!r}")
    return int(digits, 16)
