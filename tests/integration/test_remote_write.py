"""The remote-write output, through real nats-server, pollers, receivers and real stores:
Prometheus 2.42 with its remote-write receiver, and VictoriaMetrics."""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml
from harness import TOPIC, metric, new_poller, new_receiver, poller_config, running, write_config
from servers import NatsServer, Target, async_wait_for, free_port, http_request
from stores import PrometheusStore, VictoriaMetricsStore
from tcpproxy import TcpProxy

from prometheus_streams import config, wire

INTERVAL = 1.0
BODY = (
    b"# TYPE demo_value gauge\n"
    b'demo_value{kind="a"} 1.5\n'
    b'demo_value{kind="b"} 2\n'
    b"# TYPE demo_total counter\n"
    b'demo_total{job="inner"} 7\n'
)


def rw_receiver(
    tmp_path: Path, nats_url: str, write_url: str, name: str = "central", **rw: Any
) -> config.Config:
    """A receiver config with one remote-write output and no Pushgateway."""
    entry = {
        "url": write_url,
        "name": "store",
        "remote_timeout": "5s",
        "queue_config": {"batch_send_deadline": "1s", "max_backoff": "1s"},
        **rw,
    }
    data: dict[str, Any] = {
        "identity": name,
        "receiver_stream": {
            "urls": nats_url,
            "topic": TOPIC,
            "client_id": f"receiver-{name}",
            "durable": "central",  # shared by every receiver of a test
            "fetch_batch": 16,
            "ack_wait": "5s",
        },
        "remote_write": [entry],
        "shutdown_grace": "5s",
    }
    return config.load(write_config(tmp_path, data, f"receiver-{name}.yaml"))


def jobs_for(target: Target) -> dict[str, Any]:
    """One job `node` with the target named as Prometheus names it (host:port)."""
    return {"node": {"targets": [{"name": instance_of(target), "url": target.url}]}}


def instance_of(target: Target) -> str:
    return target.url.split("//", 1)[1].split("/", 1)[0]


async def stream_scrape_times(nats_url: str, instance: str, publisher: str = "dc1") -> list[int]:
    """The scrape times (ms) of every message of one target on the stream, in stream order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        subject = wire.subject_for(TOPIC, publisher, "node", instance)
        sub = await js.pull_subscribe(subject, stream="PROMETHEUS")
        times: list[int] = []
        while True:
            try:
                msgs = await sub.fetch(256, timeout=1.0)
            except nats.errors.TimeoutError:
                break
            for msg in msgs:
                times.append(int((msg.headers or {})[wire.H_SCRAPE_TIME]))
            if len(msgs) < 256:
                break
        await sub.unsubscribe()
        return times
    finally:
        await nc.close()


async def up_times(
    store: PrometheusStore | VictoriaMetricsStore, publisher: str = "dc1"
) -> list[int]:
    """Timestamps (ms) of every `up` sample the pipeline wrote for `publisher`, sorted."""
    selector = f'up{{publisher="{publisher}"}}'
    series = await store.samples(selector, time.time() - 3600, time.time() + 60)
    assert len(series) <= 1, series
    return sorted(ts for samples in series.values() for ts, _ in samples)


async def test_samples_match_a_direct_scrape_at_the_pollers_scrape_times(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    target.body = BODY
    direct = {
        "job_name": "node",
        "scrape_interval": "1s",
        "static_configs": [{"targets": [instance_of(target)]}],
    }
    store = PrometheusStore(tmp_path / "prom", scrape_configs=[direct])
    store.start()
    try:
        poller, _ = new_poller(
            poller_config(tmp_path, nats_server.url, jobs_for(target), scrape_interval="1s")
        )
        receiver, registry = new_receiver(rw_receiver(tmp_path, nats_server.url, store.write_url))
        async with running(poller), running(receiver):
            await async_wait_for(
                lambda: (
                    metric(registry, "receiver_remote_write_samples_total", output="store") >= 30
                ),
                timeout=60,
                message="the pipeline wrote no samples",
            )
            times = await up_times(store)
            assert len(times) >= 4
        on_stream = await stream_scrape_times(nats_server.url, instance_of(target))
        # Every scrape the poller made, at exactly its scrape time, once.
        assert times == sorted(set(times))
        assert set(times) <= set(on_stream)
        assert times == sorted(on_stream)[: len(times)] or set(times) == set(on_stream)

        # Prometheus' own scrapes start about 5 s after it does: wait for them too.
        await async_wait_for(
            lambda: store.query('demo_value{publisher=""}'),
            timeout=60,
            message="Prometheus never scraped the target itself",
        )
        result = await store.query('{job="node"}')
        via_pipeline: dict[frozenset[tuple[str, str]], str] = {}
        scraped: dict[frozenset[tuple[str, str]], str] = {}
        for row in result:
            labels = dict(row["metric"])
            name = labels.get("__name__", "")
            if name.startswith("scrape_") and name not in ("scrape_samples_scraped",):
                continue  # durations differ; series_added etc. are Prometheus' own
            if labels.pop("publisher", None) == "dc1":
                via_pipeline[frozenset(labels.items())] = row["value"][1]
            else:
                scraped[frozenset(labels.items())] = row["value"][1]
        assert scraped, result
        assert via_pipeline == scraped
        # The body's own `job` label is kept as exported_job, as Prometheus does.
        assert any(("exported_job", "inner") in key for key in via_pipeline)
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["prometheus", "victoria"])
async def test_an_outage_of_the_store_is_written_afterwards_in_order(
    tmp_path: Path, nats_server: NatsServer, target: Target, kind: str
) -> None:
    target.body = BODY
    store: PrometheusStore | VictoriaMetricsStore = (
        PrometheusStore(tmp_path / "store")
        if kind == "prometheus"
        else VictoriaMetricsStore(tmp_path / "store")
    )
    store.start()
    host, port = store.url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    write_url = store.write_url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
    try:
        poller, preg = new_poller(
            poller_config(tmp_path, nats_server.url, jobs_for(target), scrape_interval="1s")
        )
        receiver, registry = new_receiver(rw_receiver(tmp_path, nats_server.url, write_url))

        def scrapes() -> float:
            return metric(preg, "poller_scrapes_total", poller_job="node", result="success")

        async def written_through(newest: int) -> bool:
            if isinstance(store, VictoriaMetricsStore):
                await store.flush()
            return max(await up_times(store), default=0) >= newest

        async with running(receiver):
            async with running(poller):
                await async_wait_for(lambda: up_times(store), timeout=60, message="nothing written")
                await proxy.cut()
                cut_at = scrapes()
                await async_wait_for(
                    lambda: scrapes() >= cut_at + 11, timeout=60, message="the poller stopped"
                )
                # The output shows how far behind it is while the store is away.
                assert metric(registry, "receiver_remote_write_lag_seconds", output="store") > 5
                await proxy.restore()
                restored = time.monotonic()
                newest = max(await stream_scrape_times(nats_server.url, instance_of(target)))
                await async_wait_for(
                    lambda: written_through(newest),
                    timeout=60,
                    message="the backlog was not written",
                )
                catch_up = time.monotonic() - restored
                print(f"caught up {catch_up:.2f}s after the store came back")
            # The poller has stopped: the last of its scrapes arrives too.
            final = max(await stream_scrape_times(nats_server.url, instance_of(target)))
            await async_wait_for(lambda: written_through(final), timeout=30)
        on_stream = await stream_scrape_times(nats_server.url, instance_of(target))
        if hasattr(store, "flush"):
            await store.flush()
        times = await up_times(store)
        assert len(times) == len(set(times)), "a scrape was written twice"
        assert set(on_stream) - set(times) == set(), "scrapes of the outage are missing"
        # What a user would query: one `up` sample per scrape the poller made.
        counted = await store.query('count_over_time(up{publisher="dc1"}[1h])')
        assert [row["value"][1] for row in counted] == [str(len(on_stream))]
        assert metric(registry, "receiver_remote_write_samples_retried_total", output="store") > 0
        if isinstance(store, PrometheusStore):
            assert await store.out_of_order_rejections() == 0
        # Caught up within two intervals of the store's return, plus one backoff (1s).
        assert catch_up <= 2 * INTERVAL + 1.0 + 3.0, catch_up
    finally:
        await proxy.stop()
        store.close()


async def test_vanished_series_and_dead_targets_go_stale_at_once(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    target.body = BODY
    store = PrometheusStore(tmp_path / "prom")
    store.start()
    try:
        poller, _ = new_poller(
            poller_config(tmp_path, nats_server.url, jobs_for(target), scrape_interval="1s")
        )
        receiver, registry = new_receiver(rw_receiver(tmp_path, nats_server.url, store.write_url))

        async def present(expr: str) -> bool:
            return bool(await store.query(expr))

        async with running(poller), running(receiver):
            await async_wait_for(
                lambda: present('demo_value{kind="b",publisher="dc1"}'), timeout=60
            )
            target.body = BODY.replace(b'demo_value{kind="b"} 2\n', b"")
            # Without a staleness marker the series would stay for 5 minutes.
            await async_wait_for(
                lambda: not_(present('demo_value{kind="b",publisher="dc1"}')),
                timeout=3 * INTERVAL + 5,
                message="the vanished series did not go stale",
            )
            assert await present('demo_value{kind="a",publisher="dc1"}')
            target.status = 500
            await async_wait_for(
                lambda: not_(present('demo_value{publisher="dc1"}')),
                timeout=3 * INTERVAL + 5,
                message="the dead target's series did not go stale",
            )
            up = await store.query('up{publisher="dc1"}')
            assert [row["value"][1] for row in up] == ["0"]
            assert (
                metric(registry, "receiver_remote_write_stale_markers_total", output="store") >= 3
            )
    finally:
        store.close()


async def not_(result: Any) -> bool:
    return not await result


async def test_history_stays_on_the_stream_for_remote_write(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    """The receiver lifts the per-subject limit; a poller started later does not lower it."""
    store = PrometheusStore(tmp_path / "prom")
    store.start()
    try:
        receiver, _ = new_receiver(rw_receiver(tmp_path, nats_server.url, store.write_url))
        async with running(receiver):
            nc = await nats.connect(nats_server.url)
            try:
                js = nc.jetstream()

                async def limit() -> int | None:
                    try:
                        info = await js.stream_info("PROMETHEUS")
                    except nats.js.errors.NotFoundError:
                        return None
                    return info.config.max_msgs_per_subject

                await async_wait_for(lambda: _is(limit(), -1), message="limit not lifted")
                poller, _ = new_poller(poller_config(tmp_path, nats_server.url, jobs_for(target)))
                async with running(poller):
                    await async_wait_for(
                        lambda: stream_scrape_times(nats_server.url, instance_of(target))
                    )
                    assert await limit() == -1
            finally:
                await nc.close()
    finally:
        store.close()


async def _is(result: Any, value: Any) -> bool:
    return bool(await result == value)


def test_stale_nan_is_what_prometheus_uses() -> None:
    from prometheus_streams.receiver.remote_write.protocol import STALE_NAN, is_stale

    assert math.isnan(STALE_NAN) and is_stale(STALE_NAN) and not is_stale(math.nan)


class Daemon:
    """A receiver process with its monitor on a free port."""

    def __init__(self, tmp_path: Path, cfg_path: Path, name: str) -> None:
        self.log_path = tmp_path / f"{name}.log"
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "prometheus_streams", "--config", str(cfg_path), "receiver"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def leading(self, port: int) -> bool:
        try:
            status, body = http_request("GET", f"http://127.0.0.1:{port}/api/v1/status")
        except OSError:
            return False
        if status != 200:
            return False
        entries = json.loads(body).get("remote_write", [])
        return bool(entries and entries[0].get("leading"))

    def partitions_led(self, port: int) -> int | None:
        """How many partitions of the output this receiver writes (None: no answer)."""
        try:
            status, body = http_request("GET", f"http://127.0.0.1:{port}/api/v1/status")
        except OSError:
            return None
        if status != 200:
            return None
        return sum(1 for entry in json.loads(body).get("remote_write", []) if entry["leading"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_daemons(
    tmp_path: Path, nats_url: str, write_url: str, ports: list[int], **rw: Any
) -> list[Daemon]:
    """Receiver processes sharing one remote-write output, each with its monitor on a port."""
    daemons = []
    for index, port in enumerate(ports):
        name = f"central-{index}"
        rw_receiver(tmp_path, nats_url, write_url, name=name, **rw)  # checks the config
        path = tmp_path / f"receiver-{name}.yaml"
        data = yaml.safe_load(path.read_text())
        data.update(monitor_port=port, monitor_address="127.0.0.1")
        path.write_text(yaml.safe_dump(data))
        daemons.append(Daemon(tmp_path, path, name))
    return daemons


async def test_two_receivers_share_the_output_and_one_is_killed(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    target.body = BODY
    store = PrometheusStore(tmp_path / "prom")
    store.start()
    daemons: list[Daemon] = []
    ports = [free_port(), free_port()]
    try:
        daemons += start_daemons(tmp_path, nats_server.url, store.write_url, ports)
        poller, _ = new_poller(
            poller_config(tmp_path, nats_server.url, jobs_for(target), scrape_interval="1s")
        )
        async with running(poller):
            leader = (
                await async_wait_for(
                    lambda: next(
                        (i + 1 for i, d in enumerate(daemons) if d.leading(ports[i])), None
                    ),
                    timeout=60,
                    message="no receiver leads the output",
                )
                - 1
            )
            await async_wait_for(lambda: up_times(store), timeout=60, message="nothing written")
            daemons[leader].proc.kill()  # SIGKILL: no lease given up, messages left unacked
            daemons[leader].proc.wait()
            killed = time.monotonic()
            other = 1 - leader
            await async_wait_for(
                lambda: daemons[other].leading(ports[other]),
                timeout=60,
                message="the other receiver did not take over",
            )
            print(f"the other receiver leads {time.monotonic() - killed:.1f}s after the kill")
        # The poller has stopped: everything it published must arrive.
        newest = max(await stream_scrape_times(nats_server.url, instance_of(target)))
        await async_wait_for(
            lambda: _at_least(up_times(store), newest),
            timeout=60,
            message="the survivor did not catch up",
        )
        on_stream = await stream_scrape_times(nats_server.url, instance_of(target))
        times = await up_times(store)
        assert set(on_stream) - set(times) == set(), "scrapes are missing"
        assert await store.out_of_order_rejections() == 0
    finally:
        for daemon in daemons:
            daemon.stop()
        store.close()


async def _written_through(
    store: PrometheusStore | VictoriaMetricsStore, publisher: str, newest: int
) -> bool:
    return max(await up_times(store, publisher), default=0) >= newest


async def _at_least(times: Any, newest: int) -> bool:
    return max(await times, default=0) >= newest


async def test_a_silent_target_goes_stale_after_stale_after(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    target.body = BODY
    store = PrometheusStore(tmp_path / "prom")
    store.start()
    try:
        poller, _ = new_poller(
            poller_config(tmp_path, nats_server.url, jobs_for(target), scrape_interval="1s")
        )
        receiver, registry = new_receiver(
            rw_receiver(tmp_path, nats_server.url, store.write_url, stale_after="2s")
        )

        async def present(expr: str) -> bool:
            return bool(await store.query(expr))

        async with running(receiver):
            async with running(poller):
                await async_wait_for(lambda: present('demo_value{publisher="dc1"}'), timeout=60)
            # The poller is gone (a removed target, a silent publisher): without
            # markers its series would stay in queries for Prometheus' 5 minutes.
            await async_wait_for(
                lambda: not_(present('{publisher="dc1"}')),
                timeout=30,
                message="the silent target's series did not go stale",
            )
            status = receiver.status()["remote_write"][0]
            assert status["name"] == "store" and status["leading"] is True
            assert status["samples_sent"] > 0 and status["targets"] == 0
        assert metric(registry, "receiver_remote_write_stale_markers_total", output="store") >= 6
    finally:
        store.close()


async def test_honor_timestamps_false_writes_at_the_scrape_time(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    stamped = int(time.time() * 1000) - 90_000
    target.body = f"# TYPE old gauge\nold 1 {stamped}\nnew 2\n".encode()
    store = PrometheusStore(tmp_path / "prom")
    store.start()
    try:
        jobs = jobs_for(target)
        jobs["honest"] = {"targets": [{"name": "honest", "url": target.url}]}
        jobs["node"]["honor_timestamps"] = False
        poller, _ = new_poller(poller_config(tmp_path, nats_server.url, jobs, scrape_interval="1s"))
        receiver, _ = new_receiver(rw_receiver(tmp_path, nats_server.url, store.write_url))
        async with running(poller), running(receiver):

            async def old_samples(job: str) -> list[int]:
                series = await store.samples(
                    f'old{{job="{job}"}}', time.time() - 600, time.time() + 60
                )
                return [ts for samples in series.values() for ts, _ in samples]

            kept = await async_wait_for(lambda: old_samples("honest"), timeout=60)
            assert set(kept) == {stamped}
            dropped = await async_wait_for(lambda: old_samples("node"), timeout=60)
            assert stamped not in dropped
            assert min(dropped) > stamped + 60_000
    finally:
        store.close()


async def test_receivers_share_a_partitioned_output_and_take_over_a_killed_ones_part(
    tmp_path: Path, nats_server: NatsServer, target: Target
) -> None:
    """partitions: 2, two receivers: each writes one publisher's scrapes; one is killed."""
    target.body = BODY
    publishers = ("dc1", "dc4")  # crc32 puts them in partitions 0 and 1
    store = PrometheusStore(tmp_path / "prom")
    store.start()
    daemons: list[Daemon] = []
    ports = [free_port(), free_port()]
    try:
        daemons += start_daemons(tmp_path, nats_server.url, store.write_url, ports, partitions=2)
        pollers = [
            new_poller(
                poller_config(
                    tmp_path, nats_server.url, jobs_for(target), publisher, scrape_interval="1s"
                )
            )[0]
            for publisher in publishers
        ]
        async with running(pollers[0]), running(pollers[1]):
            # Each receiver writes one partition: the work is shared.
            await async_wait_for(
                lambda: (
                    [d.partitions_led(p) for d, p in zip(daemons, ports, strict=True)] == [1, 1]
                ),
                timeout=90,
                message="the partitions were not shared out",
            )
            for publisher in publishers:
                await async_wait_for(functools.partial(up_times, store, publisher), timeout=60)
            daemons[0].proc.kill()
            daemons[0].proc.wait()
            await async_wait_for(
                lambda: daemons[1].partitions_led(ports[1]) == 2,
                timeout=60,
                message="the survivor did not take over the killed receiver's partition",
            )
        for publisher in publishers:
            newest = max(await stream_scrape_times(nats_server.url, instance_of(target), publisher))
            await async_wait_for(
                functools.partial(_written_through, store, publisher, newest),
                timeout=60,
                message=f"{publisher}'s scrapes were not all written",
            )
            on_stream = await stream_scrape_times(nats_server.url, instance_of(target), publisher)
            assert set(on_stream) - set(await up_times(store, publisher)) == set()
        assert await store.out_of_order_rejections() == 0
    finally:
        for daemon in daemons:
            daemon.stop()
        store.close()
