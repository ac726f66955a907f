"""The minimal baseline clients: direct push to the Pushgateway, raw scraping of targets."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from prometheus_streams.receiver.http import HTTPPool

CONTENT_TYPE = "text/plain; version=0.0.4"


def health_lines(samples: int) -> bytes:
    """The series the poller appends to every scrape, so direct pushes carry the same body."""
    return (
        "# TYPE up gauge\nup 1\n# TYPE scrape_duration_seconds gauge\n"
        "scrape_duration_seconds 0.004000\n# TYPE scrape_samples_scraped gauge\n"
        f"scrape_samples_scraped {samples}\n"
    ).encode()


def group_path(gateway: str, instance: str) -> str:
    """The group URL the receiver uses for job node (publisher label on)."""
    return f"{gateway}/metrics/job/node/instance/{instance}/publisher/bench"


@dataclass
class Rate:
    """How many requests succeeded in how long; failures are counted apart."""

    done: int
    seconds: float
    failed: int = 0
    bytes: int = 0
    # (time, successes so far) after each success, for steady_rate
    progress: list[tuple[float, int]] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        """Successful requests per second."""
        return self.done / self.seconds if self.seconds > 0 else 0.0


def steady_rate(progress: Sequence[tuple[float, int]], total: int) -> float:
    """Per second between 10 % and 90 % of `total` done, from (time, done so far) readings.

    Start-up (connections, a first fetch) and the tail (the last answers,
    acks sent in a batch) are left out the same way for every contender; the
    crossing times are interpolated between readings.
    """
    low, high = 0.1 * total, 0.9 * total
    t_low = _crossing(progress, low)
    t_high = _crossing(progress, high)
    if t_low is None or t_high is None or t_high <= t_low:
        return 0.0
    return (high - low) / (t_high - t_low)


def _crossing(progress: Sequence[tuple[float, int]], level: float) -> float | None:
    previous: tuple[float, int] | None = None
    for t, done in progress:
        if done >= level:
            if previous is None or done == previous[1]:
                return t
            t0, d0 = previous
            return t0 + (t - t0) * (level - d0) / (done - d0)
        previous = (t, done)
    return None


async def push(
    urls: Sequence[str],
    body: bytes,
    concurrency: int,
    max_seconds: float,
    max_pushes: int,
    client: str = "aiohttp",
) -> Rate:
    """PUT `body` to the groups `urls` round-robin as fast as the Pushgateway accepts.

    Stops after `max_pushes` answered pushes or `max_seconds`, whichever comes
    first. `client` "aiohttp" is a plain aiohttp session; "lean" is the
    receiver's own keep-alive HTTP client, so the receiver's ratio to it counts
    only what consuming and checking add.
    """
    done = failed = 0
    next_index = 0
    progress: list[tuple[float, int]] = []
    deadline = time.perf_counter() + max_seconds
    headers = {"Content-Type": CONTENT_TYPE}
    base = urls[0].split("/metrics/", 1)[0]
    pool = HTTPPool(base, limit=concurrency, timeout=max(30.0, max_seconds))
    timeout = aiohttp.ClientTimeout(total=max(30.0, max_seconds))
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def put(url: str) -> int:
            if client == "lean":
                return (await pool.request("PUT", url[len(base) :], body, headers)).status
            async with session.put(url, data=body, headers=headers) as resp:
                await resp.read()
                return resp.status

        async def worker() -> None:
            nonlocal done, failed, next_index
            while done + failed < max_pushes and time.perf_counter() < deadline:
                if next_index >= max_pushes:
                    return
                url = urls[next_index % len(urls)]
                next_index += 1
                if 200 <= await put(url) < 300:
                    done += 1
                    progress.append((time.perf_counter(), done))
                else:
                    failed += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    await pool.close()
    return Rate(done, elapsed, failed, progress=progress)


async def scrape(
    urls: Sequence[str], concurrency: int, max_seconds: float, max_fetches: int, inflate: bool
) -> Rate:
    """GET the targets round-robin as fast as they answer, asking for gzip like the poller.

    With `inflate`, each gzipped page is also decompressed (what a parser must do);
    without, the compressed bytes are kept as they came (what forwarding needs).
    """
    done = failed = size = 0
    next_index = 0
    deadline = time.perf_counter() + max_seconds
    headers = {"Accept-Encoding": "gzip", "Accept": "text/plain;version=0.0.4"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def worker() -> None:
            nonlocal done, failed, next_index, size
            while next_index < max_fetches and time.perf_counter() < deadline:
                url = urls[next_index % len(urls)]
                next_index += 1
                async with session.get(url, headers=headers) as resp:
                    data = await resp.read()
                    if resp.status != 200:
                        failed += 1
                        continue
                    if inflate and resp.headers.get("Content-Encoding") == "gzip":
                        data = zlib.decompress(data, 16 + zlib.MAX_WBITS)
                    size += len(data)
                    done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Rate(done, time.perf_counter() - t0, failed, size)
