"""Fixtures starting real servers on free 127.0.0.1 ports.

A missing binary or a server that does not come up makes the test fail (never
skip); see tests/servers.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from cluster import NatsCluster
from puppetserver import PuppetServer
from servers import NatsServer, Pushgateway, Target
from stores import FakeStore, PrometheusStore, VictoriaMetricsStore

from prometheus_streams.poller.scraper import Scraper


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A started nats-server with JetStream, stopped after the test."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """A started 3-node JetStream cluster (tests/cluster.py), stopped after the test."""
    cluster = NatsCluster(tmp_path / "cluster")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[Pushgateway]:
    """A started Pushgateway (admin API on, persistence file), stopped after."""
    gateway = Pushgateway(tmp_path / "pushgateway")
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest_asyncio.fixture
async def target() -> AsyncIterator[Target]:
    """A started HTTP scrape target serving /metrics, stopped after."""
    server = Target()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def prometheus_store(tmp_path: Path) -> Iterator[PrometheusStore]:
    """A started Prometheus 2.42 receiving remote write; stopped and its TSDB removed after."""
    store = PrometheusStore(tmp_path / "prometheus-store")
    store.start()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def victoria_store(tmp_path: Path) -> Iterator[VictoriaMetricsStore]:
    """A started single-node VictoriaMetrics; stopped and its storage removed after."""
    store = VictoriaMetricsStore(tmp_path / "victoria-store")
    store.start()
    try:
        yield store
    finally:
        store.close()


@pytest_asyncio.fixture
async def fake_store() -> AsyncIterator[FakeStore]:
    """A started FakeStore answering 204 until scripted otherwise, stopped after."""
    store = FakeStore()
    await store.start()
    try:
        yield store
    finally:
        await store.stop()


@pytest.fixture(scope="session")
def puppet_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PuppetServer]:
    """One real Puppet CA (Debian's puppetserver) for the whole session, stopped at the end."""
    server = PuppetServer(tmp_path_factory.mktemp("puppetserver"))
    server.start()
    print(f"\npuppetserver ready in {server.started_in:.1f}s on {server.address}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def scraper() -> AsyncIterator[Scraper]:
    """A started Scraper, closed after the test."""
    scraper = Scraper()
    await scraper.start()
    try:
        yield scraper
    finally:
        await scraper.close()
