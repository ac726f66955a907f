"""The remote-write store fixtures work: real Prometheus, VictoriaMetrics, vmagent; the fake."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import aiohttp
import pytest
from servers import Target, async_wait_for
from stores import (
    EMPTY_WRITE_REQUEST,
    STALE_MARKER,
    FakeStore,
    PrometheusStore,
    Reply,
    SeriesSamples,
    VictoriaMetricsStore,
    VmAgent,
    VmAuth,
)
from testca import TestCA

PROBE = frozenset({"__name__": "store_probe", "k": "a"}.items())


def _probe_body(value: int, timestamp_ms: int) -> bytes:
    return f'store_probe{{k="a"}} {value} {timestamp_ms}\n'.encode()


def _without_target_labels(found: SeriesSamples) -> SeriesSamples:
    drop = {"job", "instance"}
    return {
        frozenset((k, v) for k, v in key if k not in drop): points for key, points in found.items()
    }


async def test_prometheus_store_keeps_scraped_timestamps_and_counts_out_of_order(
    prometheus_store: PrometheusStore, target: Target
) -> None:
    print(f"\nprometheus ready in {prometheus_store.started_in:.2f}s")
    start = time.time() - 60
    first = int(time.time() * 1000) - 5000
    target.body = _probe_body(1, first)
    await prometheus_store.reload(
        [
            {
                "job_name": "probe",
                "scrape_interval": "200ms",
                "scrape_timeout": "200ms",
                "static_configs": [{"targets": [f"127.0.0.1:{target.port}"]}],
            }
        ]
    )

    async def probe() -> SeriesSamples:
        return _without_target_labels(await prometheus_store.samples("store_probe", start))

    async def probe_has(ts: int) -> bool:
        return any(t == ts for points in (await probe()).values() for t, _ in points)

    await async_wait_for(probe, message="the first scrape never stored")
    assert await probe() == {PROBE: [(first, "1")]}
    assert await prometheus_store.out_of_order_rejections() == 0

    second = first + 1000
    target.body = _probe_body(2, second)
    await async_wait_for(lambda: probe_has(second), message="the second timestamp never stored")

    # older than the newest sample of the series: refused, counted by the TSDB
    target.body = _probe_body(3, first + 500)
    await async_wait_for(
        lambda: prometheus_store.out_of_order_rejections(),
        message="the out-of-order sample was not counted",
    )
    assert await probe() == {PROBE: [(first, "1"), (second, "2")]}
    assert await prometheus_store.counter("prometheus_tsdb_out_of_order_samples_total") >= 1

    # more than an hour (half a head block) older than the newest sample: out of bounds
    target.body = _probe_body(4, second - 2 * 3600 * 1000)
    await async_wait_for(
        lambda: prometheus_store.counter("prometheus_tsdb_out_of_bound_samples_total", default=0),
        message="the out-of-bounds sample was not counted",
    )
    assert await probe() == {PROBE: [(first, "1"), (second, "2")]}
    assert await prometheus_store.rejected_writes() == 0

    # stop() keeps the TSDB: a restarted store (a destination back from an outage) still has it
    await asyncio.to_thread(prometheus_store.restart)
    assert await probe() == {PROBE: [(first, "1"), (second, "2")]}


async def test_prometheus_store_remote_write_refusals_are_counted(
    prometheus_store: PrometheusStore,
) -> None:
    assert await prometheus_store.write(EMPTY_WRITE_REQUEST) == (204, b"")
    status, _ = await prometheus_store.write(b"not snappy")
    assert status == 400
    assert await prometheus_store.rejected_writes() == 1
    assert await prometheus_store.out_of_order_rejections() == 1


async def test_prometheus_store_basic_auth(tmp_path: Path) -> None:
    with PrometheusStore(tmp_path / "prom", basic_auth=("writer", "s3cret")) as store:
        print(f"\nprometheus with basic auth ready in {store.started_in:.2f}s")
        status, _ = await store.write(EMPTY_WRITE_REQUEST, credentials=False)
        assert status == 401
        assert (await store.request("GET", "/api/v1/query", credentials=False))[0] == 401
        assert await store.write(EMPTY_WRITE_REQUEST) == (204, b"")
        assert await store.query("vector(1)") != []


async def test_prometheus_store_tls_requires_client_certificate(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    with PrometheusStore(tmp_path / "prom", ca=ca) as store:
        print(f"\nprometheus with TLS ready in {store.started_in:.2f}s")
        assert store.write_url.startswith("https://127.0.0.1:")
        assert store.client_cert is not None and store.ca_file == ca.ca_file
        assert await store.write(EMPTY_WRITE_REQUEST) == (204, b"")
        with pytest.raises(aiohttp.ClientError):
            await store.write(EMPTY_WRITE_REQUEST, client_cert=False)


async def test_victoria_store_keeps_imported_timestamps(
    victoria_store: VictoriaMetricsStore,
) -> None:
    print(f"\nvictoria-metrics ready in {victoria_store.started_in:.2f}s")
    now = int(time.time() * 1000)
    # sent out of order on purpose: VictoriaMetrics stores every sample, sorted
    await victoria_store.import_text(
        f'vm_probe{{k="a"}} 1 {now - 3000}\n'
        f'vm_probe{{k="a"}} 3 {now - 1000}\n'
        f'vm_probe{{k="a"}} 2.5 {now - 2000}\n'
        f'vm_probe{{k="b"}} 7 {now - 1500}\n'
    )
    found = await victoria_store.samples("vm_probe", time.time() - 60)
    assert found == {
        frozenset({"__name__": "vm_probe", "k": "a"}.items()): [
            (now - 3000, "1"),
            (now - 2000, "2.5"),
            (now - 1000, "3"),
        ],
        frozenset({"__name__": "vm_probe", "k": "b"}.items()): [(now - 1500, "7")],
    }
    result = await victoria_store.query('vm_probe{k="a"}')
    assert [r["value"][1] for r in result] == ["3"]
    await asyncio.to_thread(victoria_store.restart)
    assert await victoria_store.samples("vm_probe", time.time() - 60) == found
    assert await victoria_store.write(EMPTY_WRITE_REQUEST) == (204, b"")


async def test_victoria_store_basic_auth_over_tls(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    with VictoriaMetricsStore(tmp_path / "vm", basic_auth=("writer", "s3cret"), ca=ca) as store:
        print(f"\nvictoria-metrics with auth and TLS ready in {store.started_in:.2f}s")
        assert store.write_url.startswith("https://127.0.0.1:")
        status, _ = await store.write(EMPTY_WRITE_REQUEST, credentials=False)
        assert status == 401
        assert await store.write(EMPTY_WRITE_REQUEST) == (204, b"")
        # 1.79 cannot ask for client certificates: a client without one gets in
        assert await store.write(EMPTY_WRITE_REQUEST, client_cert=False) == (204, b"")
    assert not store.data_dir.exists()


async def test_vmauth_checks_bearer_token_before_victoria_store(
    victoria_store: VictoriaMetricsStore, tmp_path: Path
) -> None:
    token = secrets.token_hex(8)
    with VmAuth(tmp_path / "vmauth", victoria_store.url, token) as proxy:
        print(f"\nvmauth ready in {proxy.started_in:.2f}s")
        assert (await proxy.write(EMPTY_WRITE_REQUEST, credentials=False))[0] == 401
        # vmauth 1.79 answers an unknown token 400, not 401
        wrong = {"Authorization": "Bearer wrong"}
        status, body = await proxy.request(
            "POST", "/api/v1/write", headers=wrong, credentials=False
        )
        assert (status, body) == (
            400,
            b'cannot find the provided auth token "Bearer wrong" in config\n',
        )
        assert await proxy.write(EMPTY_WRITE_REQUEST) == (204, b"")
        requests = await victoria_store.counter("vm_http_requests_total", {"path": "/api/v1/write"})
        assert requests == 1


async def test_vmagent_scrapes_into_victoria_store(
    victoria_store: VictoriaMetricsStore, target: Target, tmp_path: Path
) -> None:
    config = {
        "job_name": "agent",
        "scrape_interval": "1s",
        "static_configs": [{"targets": [f"127.0.0.1:{target.port}"]}],
    }
    with VmAgent(tmp_path / "vmagent", victoria_store.write_url, [config]) as agent:
        print(f"\nvmagent ready in {agent.started_in:.2f}s")
        assert agent.pid > 0
        assert agent.metrics_url.endswith("/metrics")
        result = await async_wait_for(
            lambda: victoria_store.query('test_temperature_celsius{job="agent"}'),
            message="vmagent's samples never reached victoria-metrics",
        )
        assert result[0]["value"][1] == "21.5"
        assert await agent.counter("vmagent_remotewrite_requests_total") >= 1

        # a series gone from the page: vmagent writes a staleness marker for it
        target.body = b"other 1\n"
        start = time.time() - 60

        async def marked() -> bool:
            found = await victoria_store.samples("test_temperature_celsius", start, None, True)
            return any(points[-1][1] == STALE_MARKER for points in found.values())

        await async_wait_for(marked, message="no staleness marker in victoria-metrics")
        without = await victoria_store.samples("test_temperature_celsius", start)
        assert all(value == "21.5" for points in without.values() for _, value in points)


async def test_fake_store_answers_from_its_script(fake_store: FakeStore) -> None:
    fake_store.script(Reply(503), times=2)
    fake_store.script(Reply(429, headers={"Retry-After": "3"}))
    fake_store.script(Reply(400, b"out of order sample\n"))
    answers = []
    async with aiohttp.ClientSession() as session:
        for n in range(5):
            async with session.post(fake_store.write_url, data=b"body%d" % n) as response:
                answers.append((response.status, response.headers.get("Retry-After")))
                if response.status == 400:
                    assert await response.read() == b"out of order sample\n"
    assert answers == [(503, None), (503, None), (429, "3"), (400, None), (204, None)]
    assert [r.body for r in fake_store.requests] == [b"body%d" % n for n in range(5)]
    assert [r.body for r in fake_store.accepted] == [b"body4"]
    assert fake_store.requests[0].path == "/api/v1/write"


async def test_fake_store_requires_its_bearer_token() -> None:
    token = secrets.token_hex(8)
    async with FakeStore(bearer_token=token) as store, aiohttp.ClientSession() as session:
        store.script(Reply(503))
        async with session.post(store.write_url, data=b"x") as response:
            assert response.status == 401
        assert store.pending_replies == 1
        headers = {"Authorization": f"Bearer {token}"}
        async with session.post(store.write_url, data=b"y", headers=headers) as response:
            assert response.status == 503
        requests = await store.wait_for_requests(2)
        assert [(r.status, r.headers.get("Authorization")) for r in requests] == [
            (401, None),
            (503, f"Bearer {token}"),
        ]
