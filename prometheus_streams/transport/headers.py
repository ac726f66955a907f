"""nats-py's client with a cheaper parse and build of message headers; the same bytes.

nats-py 2.16 parses each message's header block in `_parse_header_lines`,
testing every header name for white space with a generator over its
characters: about 40 µs for our nine headers, 2 % of the receiver's CPU per
scrape (docs/performance.md, "Remote write, second pass"). This does the
same checks with str methods in C. tests/unit/test_nats_headers.py holds it
to nats-py's own function, so an upgrade that changes the rules shows.

Publishing with headers (each scrape), the header block is built with each
name checked once, and the command is written at the end of the loop turn
instead of through nats-py's flusher task: 4.5-8 % of the poller's
CPU (docs/performance.md, "Poller, round two"); the same bytes as nats-py's
_send_publish (tests/unit/test_nats_headers.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from nats import errors
from nats.aio.client import _HEADER_KEY_RE, _HEADER_VALUE_NEWLINES
from nats.aio.client import Client as NATS
from nats.aio.transport import TcpTransport
from nats.js import JetStreamContext

from prometheus_streams.transport.pubacks import JetStream


def parse_header_lines(raw: bytes) -> dict[str, str]:
    """A `Name: Value\\r\\n` block as nats-py's _parse_header_lines parses it."""
    out: dict[str, str] = {}
    for line in raw.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        try:
            key = name.strip().decode("ascii")
        except UnicodeDecodeError:
            continue
        # No white space inside the name (str.isspace's, as nats-py tests it).
        if key and key.split() != [key]:
            continue
        out[key] = value.strip().decode("utf-8", "replace")
    return out


# A header name as nats-py writes it (`Name: `), checked once per name;
# b"" for a name nats-py skips (empty after strip).
_NAMES: dict[str, bytes] = {}


def _name(key: str) -> bytes:
    name = _NAMES.get(key)
    if name is None:
        stripped = key.strip()
        if stripped and not _HEADER_KEY_RE.fullmatch(stripped):
            raise errors.BadHeaderError(stripped)
        name = stripped.encode() + b": " if stripped else b""
        if len(_NAMES) < 1000:  # header names are few; a bound all the same
            _NAMES[key] = name
    return name


def header_block(headers: dict[str, str]) -> bytes:
    """The NATS/1.0 header block nats-py's _send_publish writes for `headers`."""
    parts = [b"NATS/1.0\r\n"]
    for key, value in headers.items():
        name = _name(key)
        if not name:
            continue
        value = value.strip()
        if "\r" in value or "\n" in value:
            value = value.translate(_HEADER_VALUE_NEWLINES)
        parts += (name, value.encode(), b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def hpub_command(subject: str, reply: str, hdr: bytes, payload: bytes) -> bytes:
    """An HPUB as nats-py's hpub_cmd writes it, with one copy of the payload."""
    head = f"HPUB {subject} {reply} {len(hdr)} {len(hdr) + len(payload)}\r\n".encode()
    return b"".join((head, hdr, payload, b"\r\n"))


class Client(NATS):
    """nats-py's client, parsing headers with parse_header_lines; JetStream from pubacks."""

    _parse_header_lines = staticmethod(parse_header_lines)
    _write_soon = False  # a _write_pending is scheduled

    async def _send_publish(
        self,
        subject: str,
        reply: str,
        payload: bytes,
        payload_size: int,
        headers: dict[str, Any] | None,
    ) -> None:
        # nats-py 2.16 builds the header block per publish with a regular
        # expression and three copies per header (about 10 µs for ours);
        # the same bytes here with each name checked once
        # (tests/unit/test_nats_headers.py holds the command to nats-py's).
        if headers is None or not subject:
            await super()._send_publish(subject, reply, payload, payload_size, headers)
            return
        command = hpub_command(subject, reply, header_block(headers), payload)
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += payload_size
        await self._send_command(command)
        if self.is_connected and type(self._transport) is TcpTransport:
            # Written by a callback at the end of this loop turn, with what
            # else was queued in it, instead of waking nats-py's flusher task
            # per publish (a future, a queue put, a drain). No drain: the
            # outbox has at most PUBLISH_WORKERS messages in flight.
            if not self._write_soon:
                self._write_soon = True
                asyncio.get_running_loop().call_soon(self._write_pending)
        elif self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()

    def _write_pending(self) -> None:
        self._write_soon = False
        # Disconnected since: nats-py sends what is pending after reconnecting.
        if self._pending and self.is_connected and type(self._transport) is TcpTransport:
            self._transport.writelines(self._pending)  # type: ignore[no-untyped-call]
            self._pending = []
            self._pending_data_size = 0

    def jetstream(self, **opts: Any) -> JetStreamContext:
        """A JetStream context whose publish_async costs less (transport/pubacks.py)."""
        return JetStream(self, **opts)
