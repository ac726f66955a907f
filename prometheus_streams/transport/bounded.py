"""Reading a body of unknown length from aiohttp, up to a limit."""

from __future__ import annotations

import aiohttp


async def read_at_most(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, or its first `limit + 1` bytes: the caller refuses a longer one.

    One read(n) returns what has arrived so far: an answer of several TLS
    records or TCP segments would come back cut short.
    """
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        part = await content.read(limit + 1 - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)
