"""A small DNS client (A, AAAA, SRV over UDP, TCP when truncated) for dns_sd_configs.

None of the project's dependencies resolves SRV records, and the system
resolver cannot be pointed at another server (tests run dnsmasq on a free
loopback port), so the few queries dns_sd needs are made here with the stdlib.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

QTYPES = {"A": 1, "AAAA": 28, "SRV": 33}
RCODE_NXDOMAIN = 3
RESOLV_CONF = "/etc/resolv.conf"
QUERY_TIMEOUT = 5.0


class DNSError(OSError):
    """A query that got no usable answer (timeout, server failure, malformed reply)."""


@dataclass(frozen=True)
class SRVRecord:
    """One SRV answer: where a service runs."""

    priority: int
    weight: int
    port: int
    target: str


def system_nameserver(path: str = RESOLV_CONF) -> str:
    """The first `nameserver` of resolv.conf as host:port; 127.0.0.1:53 without one."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            host = fields[1].split("%")[0]
            return f"[{host}]:53" if ":" in host else f"{host}:53"
    return "127.0.0.1:53"


def split_server(server: str) -> tuple[str, int]:
    """host:port ([v6]:port) into its parts."""
    host, _, port = server.rpartition(":")
    return host.strip("[]"), int(port)


def build_query(name: str, qtype: int, ident: int) -> bytes:
    """A recursive query for one name and type."""
    header = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    labels = b"".join(
        bytes([len(part)]) + part.encode("idna") for part in name.rstrip(".").split(".") if part
    )
    return header + labels + b"\x00" + struct.pack("!HH", qtype, 1)


def _read_name(message: bytes, offset: int) -> tuple[str, int]:
    """A possibly compressed name at `offset`; the name and the offset after it."""
    parts: list[str] = []
    end = -1
    for _ in range(128):  # bounded: a pointer loop must not hang us
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if end < 0:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | message[offset + 1]
            continue
        if length == 0:
            return ".".join(parts), (end if end >= 0 else offset + 1)
        parts.append(message[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    raise DNSError("malformed DNS name (pointer loop)")


def parse_answers(message: bytes, ident: int, qtype: int) -> list[object]:
    """The answers of `qtype` in a reply: address strings or SRVRecords; [] for NXDOMAIN."""
    try:
        got_id, flags, qdcount, ancount, _, _ = struct.unpack_from("!HHHHHH", message)
        if got_id != ident:
            raise DNSError("reply to another query")
        rcode = flags & 0x000F
        if rcode == RCODE_NXDOMAIN:
            return []
        if rcode:
            raise DNSError(f"server answered rcode {rcode}")
        offset = 12
        for _ in range(qdcount):
            _, offset = _read_name(message, offset)
            offset += 4
        answers: list[object] = []
        for _ in range(ancount):
            _, offset = _read_name(message, offset)
            rtype, _, _, length = struct.unpack_from("!HHIH", message, offset)
            offset += 10
            data = message[offset : offset + length]
            if rtype == qtype == 1 and length == 4:
                answers.append(str(ipaddress.IPv4Address(data)))
            elif rtype == qtype == 28 and length == 16:
                answers.append(str(ipaddress.IPv6Address(data)))
            elif rtype == qtype == 33:
                priority, weight, port = struct.unpack_from("!HHH", data)
                target, _ = _read_name(message, offset + 6)
                answers.append(SRVRecord(priority, weight, port, target))
            offset += length
        return answers
    except (struct.error, IndexError, ValueError) as exc:
        raise DNSError(f"malformed DNS reply: {exc}") from None


class _Reply(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def query(server: str, name: str, kind: str) -> list[object]:
    """Ask `server` (host:port) for the `kind` records of `name`."""
    host, port = split_server(server)
    qtype = QTYPES[kind]
    ident = secrets.randbelow(65536)
    packet = build_query(name, qtype, ident)
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        async with asyncio.timeout(QUERY_TIMEOUT):
            transport, protocol = await loop.create_datagram_endpoint(
                _Reply, remote_addr=(host, port), family=family
            )
            try:
                transport.sendto(packet)
                reply = await protocol.answer
            finally:
                transport.close()
            if len(reply) >= 4 and reply[2] & 0x02:  # truncated: ask again over TCP
                reader, writer = await asyncio.open_connection(host, port)
                try:
                    writer.write(struct.pack("!H", len(packet)) + packet)
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    reply = await reader.readexactly(size)
                finally:
                    writer.close()
    except TimeoutError:
        raise DNSError(f"no answer from {server} within {QUERY_TIMEOUT:g}s") from None
    except (OSError, asyncio.IncompleteReadError) as exc:
        if isinstance(exc, DNSError):
            raise
        raise DNSError(f"cannot ask {server}: {exc}") from None
    return parse_answers(reply, ident, qtype)
