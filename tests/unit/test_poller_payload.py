"""The message body the poller builds from a scrape."""

from __future__ import annotations

import gzip

import pytest

from prometheus_streams.poller.payload import build_payload
from prometheus_streams.poller.scraper import ScrapeResult
from prometheus_streams.wire import decompress

PAGE = b"# TYPE a gauge\na 1\nb 2\n"


def test_gzipped_page_is_forwarded_untouched_with_health_as_second_member() -> None:
    original = gzip.compress(PAGE, mtime=0)
    payload = build_payload(ScrapeResult(started=1.0, duration=0.5, body=PAGE, gzip=original))
    assert payload.data.startswith(original)
    text = decompress(payload.data, 1 << 20)
    assert text.startswith(PAGE)
    assert b"\nup 1\n" in text and b"\nscrape_samples_scraped 2\n" in text


def test_page_without_final_newline_still_separates_the_health_series() -> None:
    page = b"a 1"
    result = ScrapeResult(started=1.0, duration=0.1, body=page, gzip=gzip.compress(page))
    text = decompress(build_payload(result).data, 1 << 20)
    assert text.startswith(b"a 1\n# TYPE up gauge\nup 1\n")


def test_page_with_its_own_up_is_recompressed_without_it() -> None:
    page = b"# TYPE up gauge\nup 1\nother 2\n"
    result = ScrapeResult(started=1.0, duration=0.1, body=page, gzip=gzip.compress(page))
    payload = build_payload(result)
    assert payload.replaced == 2
    text = decompress(payload.data, 1 << 20)
    assert text.count(b"# TYPE up gauge") == 1 and b"other 2\n" in text


def test_failed_scrape_is_up_0_alone() -> None:
    result = ScrapeResult(started=1.0, duration=2.0, error="timeout", detail="slow")
    text = decompress(build_payload(result).data, 1 << 20)
    assert b"\nup 0\n" in text and b"scrape_samples_scraped 0\n" in text
    assert b"a 1" not in text


def test_isal_and_zlib_write_the_same_gzip_members(monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_streams.poller import payload

    assert payload._ISAL is not None  # a dependency: the poller's rewrite relies on its speed
    body = b"# TYPE a gauge\n" + b"".join(b'a{n="%d"} %d\n' % (n, n) for n in range(500))
    isal = payload.gzip_member(body, 1) + payload.gzip_member(b"up 1\n", 1)
    monkeypatch.setattr(payload, "_ISAL", None)
    stdlib = payload.gzip_member(body, 1) + payload.gzip_member(b"up 1\n", 1)
    assert gzip.decompress(isal) == gzip.decompress(stdlib) == body + b"up 1\n"
    assert isal[:4] == stdlib[:4] == b"\x1f\x8b\x08\x00" and len(isal) <= len(stdlib) * 1.1


@pytest.mark.parametrize("size", [0, 5, 65535, 65536, 140_000])
def test_a_stored_member_inflates_as_any_gzip_member(size: int) -> None:
    from prometheus_streams.poller.payload import stored_member

    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    both = gzip.compress(PAGE, mtime=0) + stored_member(data)
    assert gzip.decompress(both) == decompress(both, 1 << 20) == PAGE + data
    assert stored_member(data)[:4] == b"\x1f\x8b\x08\x00"
