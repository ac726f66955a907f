"""Scrape one target over HTTP the way Prometheus does."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from prometheus_streams import __version__

ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
USER_AGENT = f"prometheus-streams/{__version__}"


@dataclass(frozen=True)
class ScrapeResult:
    """The outcome of one scrape; `error` is empty on success."""

    started: float  # wall-clock seconds
    duration: float
    body: bytes = b""
    error: str = ""  # the reason label: refused, timeout, http_status, too_large, ...
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the target answered 2xx with a body within limits."""
        return not self.error


class Scraper:
    """Owns the HTTP session shared by all targets (keep-alive, bounded pool)."""

    def __init__(self, connections: int = 100) -> None:
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the session."""
        connector = aiohttp.TCPConnector(limit=self._connections)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"Accept": ACCEPT, "User-Agent": USER_AGENT},
            auto_decompress=True,
        )

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def scrape(self, url: str, limit_s: float, body_limit: int) -> ScrapeResult:
        """Fetch `url` within `limit_s` seconds, refusing bodies above `body_limit` bytes."""
        assert self._session is not None, "start() first"
        started = time.time()
        t0 = time.perf_counter()

        def result(**kwargs: object) -> ScrapeResult:
            return ScrapeResult(started=started, duration=time.perf_counter() - t0, **kwargs)  # type: ignore[arg-type]

        headers = {"X-Prometheus-Scrape-Timeout-Seconds": f"{limit_s:g}"}
        try:
            async with asyncio.timeout(limit_s):
                async with self._session.get(url, headers=headers, allow_redirects=True) as resp:
                    if not 200 <= resp.status < 300:
                        return result(error="http_status", detail=f"HTTP {resp.status}")
                    if resp.content_length is not None and resp.content_length > body_limit:
                        return result(
                            error="too_large",
                            detail=f"{resp.content_length} bytes exceeds {body_limit}",
                        )
                    chunks = []
                    size = 0
                    async for chunk in resp.content.iter_chunked(65536):
                        size += len(chunk)
                        if size > body_limit:
                            return result(
                                error="too_large", detail=f"body exceeds {body_limit} bytes"
                            )
                        chunks.append(chunk)
                    body = b"".join(chunks)
        except TimeoutError:
            return result(error="timeout", detail=f"no answer within {limit_s:g}s")
        except aiohttp.ClientConnectorError as exc:
            return result(error="refused", detail=str(exc))
        except aiohttp.ClientPayloadError as exc:
            return result(error="bad_body", detail=str(exc))
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return result(error="error", detail=f"{type(exc).__name__}: {exc}")
        return result(body=body)
