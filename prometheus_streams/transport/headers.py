"""nats-py's client with a cheaper parse of message headers; the same dict out.

nats-py 2.16 parses each message's header block in `_parse_header_lines`,
testing every header name for white space with a generator over its
characters: about 40 µs for our nine headers, 2 % of the receiver's CPU per
scrape (docs/performance.md, "Remote write, second pass"). This does the
same checks with str methods in C. tests/unit/test_nats_headers.py holds it
to nats-py's own function, so an upgrade that changes the rules shows.
"""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client as NATS
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


class Client(NATS):
    """nats-py's client, parsing headers with parse_header_lines; JetStream from pubacks."""

    _parse_header_lines = staticmethod(parse_header_lines)

    def jetstream(self, **opts: Any) -> JetStreamContext:
        """A JetStream context whose publish_async costs less (transport/pubacks.py)."""
        return JetStream(self, **opts)
