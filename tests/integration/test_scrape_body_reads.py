"""The scraper reads a body of known length in one read and a chunked one within the limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from servers import HOST

from prometheus_streams.poller.scraper import Scraper

PAGE = b"# TYPE m gauge\n" + b"".join(b'm{n="%d"} %d\n' % (i, i) for i in range(2000))


async def _chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/plain; version=0.0.4"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, len(PAGE), 1000):
        await response.write(PAGE[start : start + 1000])
    await response.write_eof()
    return response


async def _sized(request: web.Request) -> web.Response:
    return web.Response(body=PAGE, headers={"Content-Type": "text/plain; version=0.0.4"})


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/chunked", _chunked)
    app.router.add_get("/sized", _sized)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    try:
        yield f"http://{HOST}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("path", ["chunked", "sized"])
async def test_body_within_the_limit_is_read_whole(
    base_url: str, scraper: Scraper, path: str
) -> None:
    for _ in range(3):  # the same URL again: a kept-alive connection, the parsed URL reused
        # One byte under body_size_limit: a body that reaches it fails, as in Prometheus 2.42.
        result = await scraper.scrape(f"{base_url}/{path}", 10.0, len(PAGE) + 1)
        assert result.ok, result.detail
        assert result.body == PAGE


@pytest.mark.parametrize("path", ["chunked", "sized"])
@pytest.mark.parametrize("limit", [len(PAGE) - 1, len(PAGE)])
async def test_body_above_the_limit_is_refused(
    base_url: str, scraper: Scraper, path: str, limit: int
) -> None:
    result = await scraper.scrape(f"{base_url}/{path}", 10.0, limit)
    assert result.error == "too_large"
    assert f"body_size_limit {limit}" in result.detail
