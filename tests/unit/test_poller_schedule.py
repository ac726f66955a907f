"""The poller's per-target phase and the job list it scrapes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from prometheus_streams.config import SELF_JOB, Config, Job, Target
from prometheus_streams.poller.schedule import (
    MAX_TICK,
    first_scrape,
    scrape_jobs,
    stable_offset,
    tick_of,
)

NODE = Job(
    name="node",
    targets=(Target(name="h:9100", url="http://h:9100/metrics"),),
    scrape_interval=30.0,
    scrape_timeout=5.0,
    body_size_limit=1024,
)


def _config(**overrides: str) -> Config:
    return Config(
        path="test.yaml",
        identity=overrides.get("identity", "dc1-poller"),
        scrape_interval=15.0,
        scrape_timeout=3.0,
        body_size_limit=2048,
        monitor_address=overrides.get("monitor_address", "0.0.0.0"),  # noqa: S104
        jobs=(NODE,),
    )


def _offsets_in_a_new_process(hash_seed: str) -> list[float]:
    code = (
        "from prometheus_streams.poller.schedule import stable_offset\n"
        f"print(repr([stable_offset(k, 60.0) for k in {KEYS!r}]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
    ).stdout
    return [float(value) for value in out.strip().strip("[]").split(",")]


KEYS = ("dc1/node/h:9100", "dc2/node/h:9100", "dc1/app/10.0.0.1:8080")


def test_stable_offset_survives_restarts() -> None:
    """A restarted poller (another hash seed) puts every target at the same phase."""
    here = [stable_offset(key, 60.0) for key in KEYS]
    assert _offsets_in_a_new_process("1") == here
    assert _offsets_in_a_new_process("2") == here


@pytest.mark.parametrize("interval", [0.001, 1.0, 15.0, 60.0, 3600.0])
def test_stable_offset_lies_within_the_interval(interval: float) -> None:
    for index in range(500):
        offset = stable_offset(f"poller/job/target-{index}", interval)
        assert 0.0 <= offset < interval


def test_stable_offset_differs_between_keys() -> None:
    offsets = {stable_offset(f"poller/job/target-{index}", 60.0) for index in range(200)}
    assert len(offsets) == 200


def test_stable_offset_spreads_targets_over_the_interval() -> None:
    offsets = [stable_offset(f"poller/job/target-{index}", 60.0) for index in range(600)]
    buckets = [0] * 6
    for offset in offsets:
        buckets[int(offset // 10)] += 1
    assert all(50 <= count <= 150 for count in buckets), buckets


def test_stable_offset_scales_with_the_interval() -> None:
    key = "poller/job/target"
    assert stable_offset(key, 120.0) == pytest.approx(2 * stable_offset(key, 60.0))


def test_scrape_jobs_without_monitor_port_are_the_configured_jobs() -> None:
    config = _config()
    assert scrape_jobs(config, 0) == (NODE,)


def test_scrape_jobs_with_monitor_port_add_the_self_job() -> None:
    config = _config(identity="USDC1")
    jobs = scrape_jobs(config, 10000)
    assert jobs[:-1] == (NODE,)
    assert jobs[-1] == Job(
        name=SELF_JOB,
        targets=(Target(name="USDC1", url="http://127.0.0.1:10000/metrics"),),
        scrape_interval=15.0,
        scrape_timeout=3.0,
        body_size_limit=2048,
    )
    assert SELF_JOB == "prometheus_streams"


@pytest.mark.parametrize("address", ["0.0.0.0", "::", ""])  # noqa: S104
def test_self_job_scrapes_loopback_when_bound_to_any_address(address: str) -> None:
    jobs = scrape_jobs(_config(monitor_address=address), 9999)
    assert jobs[-1].targets[0].url == "http://127.0.0.1:9999/metrics"


@pytest.mark.parametrize(
    ("address", "url"),
    [
        ("10.1.2.3", "http://10.1.2.3:9999/metrics"),
        ("::1", "http://[::1]:9999/metrics"),
        ("poller.example.net", "http://poller.example.net:9999/metrics"),
    ],
)
def test_self_job_scrapes_the_specific_bind_address(address: str, url: str) -> None:
    jobs = scrape_jobs(_config(monitor_address=address), 9999)
    assert jobs[-1].targets[0].url == url


@pytest.mark.parametrize("interval", [0.5, 1.0, 5.0, 15.0, 22.5, 60.0, 90.25])
def test_first_scrape_is_on_the_grid_within_a_tick_of_the_phase(interval: float) -> None:
    tick = tick_of(interval)
    assert tick <= MAX_TICK and interval / tick == pytest.approx(round(interval / tick))
    now = 1_764_000_000.123
    for index in range(200):
        offset = stable_offset(f"poller/job/target-{index}", interval)
        first = first_scrape(now, interval, offset)
        assert now <= first < now + interval + tick
        assert first / tick == pytest.approx(round(first / tick), abs=1e-6)
        phase = (first - offset) % interval  # 0 (or just under interval) when on phase
        assert min(phase, interval - phase) < tick + 1e-6
        # A restart later keeps the same grid point, an interval on, and so on.
        for cycles in (1, 7, 1000):
            later = first_scrape(first + (cycles - 1) * interval + 0.001, interval, offset)
            assert later == pytest.approx(first + cycles * interval)


def test_targets_share_ticks_instead_of_each_its_own_moment() -> None:
    now = 1_764_000_000.0
    for interval in (5.0, 15.0, 60.0):
        starts = {
            first_scrape(now, interval, stable_offset(f"p/j/t-{i}", interval)) for i in range(200)
        }
        ticks = round(interval / tick_of(interval))
        # One wake-up per tick at most (the last may round up to the next interval) ...
        assert len(starts) <= ticks + 1
        assert len(starts) >= 0.8 * ticks  # ... and the ticks still spread the targets
