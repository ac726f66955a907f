"""Scrapes through the lean HTTP/1.1 client answer as they did through aiohttp.

Real aiohttp targets on loopback; a raw socket only for a garbage answer, a
bad chunk and a body that stops coming.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from servers import HOST, free_port, serve_app
from test_http1_client import answering, raw_server

from prometheus_streams.config.model import Authorization, BasicAuth, HTTPTLSConfig
from prometheus_streams.poller.scraper import ACCEPT, USER_AGENT, Scraper
from prometheus_streams.secret import Secret

SLOW = 2.0  # seconds /slow takes to answer
PAGE = b"# TYPE m gauge\n" + b"".join(b'm{n="%d"} %d\n' % (i, i) for i in range(500))


@dataclass(frozen=True)
class Settings:
    """A job's HTTP keys."""

    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    tls_config: HTTPTLSConfig | None = None
    proxy_url: str | None = None
    follow_redirects: bool = True


class Site:
    """A target noting each request's connection and headers."""

    def __init__(self) -> None:
        self.peers: list[object] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.peers.append(
            request.transport.get_extra_info("peername") if request.transport else None
        )
        self.headers.append(dict(request.headers))
        self.paths.append(request.path_qs)
        if request.path == "/moved":
            raise web.HTTPFound("/metrics")
        if request.path == "/moved-to-hang":
            raise web.HTTPFound("/hang")
        if request.path == "/hang":
            await asyncio.sleep(3600)
        if request.path == "/slow":
            await asyncio.sleep(SLOW)
        if request.path == "/gzip":
            return web.Response(body=gzip.compress(PAGE), headers={"Content-Encoding": "gzip"})
        return web.Response(body=PAGE)


@pytest.fixture
async def site() -> AsyncIterator[tuple[Site, str]]:
    site = Site()
    app = web.Application()
    app.router.add_get("/{name}", site.handle)
    runner, port = await serve_app(app)
    try:
        yield site, f"http://{HOST}:{port}"
    finally:
        await runner.cleanup()


async def test_scrapes_send_prometheus_headers_over_one_kept_connection(
    site: tuple[Site, str], scraper: Scraper
) -> None:
    target, base = site
    bearer = Settings(
        authorization=Authorization(credentials=Secret("inline", "tok"), type="Bearer")
    )
    for _ in range(3):
        result = await scraper.scrape(f"{base}/metrics?a=b%20c", 7.5, 10**6, bearer)
        assert result.ok, result.detail
        assert result.body == PAGE
    assert len(set(target.peers)) == 1
    assert target.paths == ["/metrics?a=b%20c"] * 3
    sent = target.headers[0]
    assert sent["Accept"] == ACCEPT
    assert sent["Accept-Encoding"] == "gzip, deflate"
    assert sent["User-Agent"] == USER_AGENT
    assert sent["X-Prometheus-Scrape-Timeout-Seconds"] == "7.5"
    assert sent["Authorization"] == "Bearer tok"
    assert sent["Host"] == base.removeprefix("http://")


async def test_a_connection_idle_longer_than_aiohttps_keepalive_is_used_again(
    site: tuple[Site, str], scraper: Scraper
) -> None:
    """Scraped every 16 s (past aiohttp's 15 s), a target still sees one connection."""
    target, base = site
    for pause in (0.0, 16.0):
        await asyncio.sleep(pause)  # the idle time between two scrapes is the test's subject
        result = await scraper.scrape(f"{base}/metrics", 10.0, 10**6, Settings())
        assert result.ok, result.detail
    assert len(target.peers) == 2
    assert len(set(target.peers)) == 1, "a new connection after 16 s idle"


async def test_more_slow_targets_at_once_than_a_connection_pool_holds_all_answer(
    site: tuple[Site, str], scraper: Scraper
) -> None:
    """Scrapes through aiohttp (user info in the URL) share no pool limit, as in Prometheus.

    They shared 100 connections: a scrape waiting for one spent its own timeout
    on it, and a healthy target behind a proxy was reported down. The scrape
    grid starts a twentieth of the targets together, which made that likelier.
    """
    _, base = site
    many = 120
    url = base.replace("http://", "http://user:pw@")
    results = await asyncio.gather(
        *(scraper.scrape(f"{url}/slow?i={i}", 1.75 * SLOW, 10**6) for i in range(many))
    )
    failed = [r.detail for r in results if not r.ok]
    assert not failed, f"{len(failed)} of {many} failed: {failed[0]}"


async def test_a_gzip_page_is_kept_as_the_target_sent_it(
    site: tuple[Site, str], scraper: Scraper
) -> None:
    _, base = site
    result = await scraper.scrape(f"{base}/gzip", 10.0, 10**6)
    assert result.ok, result.detail
    assert result.body == PAGE
    assert result.gzip is not None and gzip.decompress(result.gzip) == PAGE


async def test_a_redirect_is_followed_unless_the_job_says_not_to(
    site: tuple[Site, str], scraper: Scraper
) -> None:
    target, base = site
    for _ in range(2):
        followed = await scraper.scrape(f"{base}/moved", 10.0, 10**6)
        assert followed.ok, followed.detail
        assert followed.body == PAGE
    # The first scrape asked twice (the lean client's answer was the redirect),
    # the second went through aiohttp at once.
    assert target.paths == ["/moved", "/moved", "/metrics", "/moved", "/metrics"]
    refused = await scraper.scrape(f"{base}/moved", 10.0, 10**6, Settings(follow_redirects=False))
    assert (refused.error, refused.detail) == ("http_status", "HTTP 302 Found")


async def test_a_slow_answer_times_out_at_the_limit_also_after_a_redirect(
    site: tuple[Site, str], scraper: Scraper
) -> None:
    # The lean client's own deadline first; after a redirect, aiohttp with what is left.
    _, base = site
    for path in ("/hang", "/moved-to-hang", "/moved-to-hang"):
        t0 = time.monotonic()
        result = await scraper.scrape(f"{base}{path}", 0.5, 10**6)
        took = time.monotonic() - t0
        assert (result.error, result.detail) == ("timeout", "no answer within 0.5s"), path
        assert 0.4 <= took < 5, (path, took)


async def test_a_closed_port_is_refused(scraper: Scraper) -> None:
    result = await scraper.scrape(f"http://{HOST}:{free_port()}/metrics", 10.0, 10**6)
    assert result.error == "refused"
    assert result.detail.startswith(f"Cannot connect to host {HOST}:")


@pytest.mark.parametrize(
    ("answer", "hang", "error"),
    [
        (b"220 smtp.example.net ESMTP\r\n\r\n", False, "error"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", False, "bad_body"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nm 1\n", False, "bad_body"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nm 1\n", True, "timeout"),
    ],
)
async def test_a_bad_answer_is_a_failed_scrape(
    scraper: Scraper, answer: bytes, hang: bool, error: str
) -> None:
    async with raw_server(answering(answer, hang)) as (port, _):
        result = await scraper.scrape(f"http://{HOST}:{port}/metrics", 0.5, 10**6)
    assert result.error == error, result.detail
    assert result.detail
