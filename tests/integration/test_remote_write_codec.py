"""The remote-write codec against a real Prometheus 2.42 with its remote-write receiver.

What the text parser and the protobuf/snappy encoder make of a page must be
what Prometheus stores: labels (escapes and UTF-8 included), values and
timestamps to the bit and the millisecond, and a staleness marker that ends
the series for an instant query.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import aiohttp
from servers import async_wait_for
from stores import PrometheusStore

from prometheus_streams.receiver.remote_write.protocol import (
    HEADERS,
    STALE_NAN,
    compress,
    encode_labels,
    encode_series,
    write_request,
)
from prometheus_streams.receiver.remote_write.text import parse_page, series_labels


async def _write(session: aiohttp.ClientSession, url: str, series: list[bytes]) -> None:
    body = compress(write_request(series))
    async with session.post(f"{url}/api/v1/write", data=body, headers=HEADERS) as response:
        answer = await response.text()
        assert 200 <= response.status < 300, (response.status, answer)


async def _query(session: aiohttp.ClientSession, url: str, query: str, at_ms: int) -> Any:
    """The result of an instant query, numbers kept as the exact decimals Prometheus wrote."""
    params = {"query": query, "time": str(Decimal(at_ms) / 1000)}
    async with session.get(f"{url}/api/v1/query", params=params) as response:
        document = json.loads(await response.read(), parse_float=Decimal)
    assert document["status"] == "success", document
    return document["data"]["result"]


PAGE = (
    b"# HELP rw_codec_bytes A gauge.\n"
    b"# TYPE rw_codec_bytes gauge\n"
    b'rw_codec_bytes{path="C:\\\\tmp\\\\",quote="say \\"hi\\"",lines="a\\nb",'
    b'city="Z\xc3\xbcrich",empty="",z="last",} 0.30000000000000004\n'
    b"rw_codec_tiny -2.5e-300\n"
    b"rw_codec_stamped 123456789.123 %d\n"
    b"rw_codec_infinite +Inf\n"
)


async def test_prometheus_stores_what_the_codec_writes(prometheus_store: PrometheusStore) -> None:
    scrape_ms = int(time.time() * 1000) - 30_000
    own_ms = scrape_ms - 1_234  # a page's own timestamp is kept
    page = PAGE % own_ms
    extra = [("job", "node"), ("instance", "host:9100")]
    series = []
    expected: dict[str, tuple[dict[str, str], str, int]] = {}
    for key, value, stamp in parse_page(page):
        labels = [*series_labels(key), *extra]
        at = stamp if stamp is not None else scrape_ms
        series.append(encode_series(encode_labels(labels), [(value, at)]))
        expected[labels[0][1]] = (dict(labels), repr(value), at)
    async with aiohttp.ClientSession() as session:
        await _write(session, prometheus_store.url, series)

        async def stored() -> list[Any] | None:
            result = await _query(
                session, prometheus_store.url, '{__name__=~"rw_codec_.+"}[10m]', scrape_ms
            )
            return list(result) if len(result) == len(expected) else None

        result: list[Any] = await async_wait_for(stored, timeout=30, message="series not queryable")
    found = {}
    for entry in result:
        [(seconds, text)] = entry["values"]
        found[entry["metric"]["__name__"]] = (entry["metric"], text, int(seconds * 1000))
    for name, (want_labels, want_value, want_at) in expected.items():
        got_labels, got_value, got_at = found[name]
        assert got_labels == want_labels
        assert float(got_value) == float(want_value) and got_at == want_at, (name, got_value)
    labels = found["rw_codec_bytes"][0]
    assert labels["path"] == "C:\\tmp\\"
    assert labels["quote"] == 'say "hi"'
    assert labels["lines"] == "a\nb"
    assert labels["city"] == "Zürich"
    assert "empty" not in labels
    assert found["rw_codec_stamped"][2] == own_ms


async def test_a_stale_marker_ends_the_series_and_a_plain_nan_does_not(
    prometheus_store: PrometheusStore,
) -> None:
    first_ms = int(time.time() * 1000) - 60_000
    stale = encode_labels([("__name__", "rw_codec_gone"), ("job", "t")])
    kept = encode_labels([("__name__", "rw_codec_nan"), ("job", "t")])
    async with aiohttp.ClientSession() as session:
        await _write(
            session,
            prometheus_store.url,
            [
                encode_series(stale, [(1.0, first_ms), (STALE_NAN, first_ms + 1_000)]),
                encode_series(kept, [(1.0, first_ms), (float("nan"), first_ms + 1_000)]),
            ],
        )

        async def names(at_ms: int) -> set[str]:
            result = await _query(session, prometheus_store.url, '{job="t"}', at_ms)
            return {entry["metric"]["__name__"] for entry in result}

        both = {"rw_codec_gone", "rw_codec_nan"}
        await async_wait_for(
            lambda: _equal(names(first_ms + 500), both), timeout=30, message="not stored"
        )
        # Before the marker both series are there; after it only the plain NaN one.
        assert await names(first_ms + 500) == both
        assert await names(first_ms + 1_500) == {"rw_codec_nan"}
        assert await names(first_ms + 120_000) == {"rw_codec_nan"}
        [entry] = await _query(session, prometheus_store.url, "rw_codec_gone[1m]", first_ms + 1_500)
        # The marker is stored as a sample, but no query shows it as a value.
        assert [int(seconds * 1000) for seconds, _ in entry["values"]] == [first_ms]


async def _equal(values: Any, expected: set[str]) -> bool:
    return bool(await values == expected)
