"""http_sd against a real HTTP server that changes its answer; dns_sd against a real dnsmasq
on a free loopback port (A and SRV). A failed refresh keeps the last good targets."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from harness import (
    group_samples,
    metric,
    new_poller,
    new_receiver,
    poller_config,
    receiver_config,
    running,
)
from servers import (
    HOST,
    NatsServer,
    Pushgateway,
    Target,
    async_wait_for,
    free_port,
    port_open,
    wait_for,
)


class SDServer:
    """Serves `answer` as Prometheus' HTTP SD JSON; wants basic auth when `expected` is set."""

    def __init__(self) -> None:
        self.answer: object = []
        self.raw: str | None = None  # when set, served as it is (an invalid answer)
        self.in_halves = False  # the second half of the answer only after a pause
        self.requests = 0
        self.refresh_header = ""
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _sd(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.refresh_header = request.headers.get("X-Prometheus-Refresh-Interval-Seconds", "")
        if request.headers.get("Authorization") != "Bearer sd-token":
            return web.Response(status=401)
        if self.raw is not None:
            return web.Response(text=self.raw, content_type="application/json")
        if self.in_halves:
            return await self._in_halves(request, json.dumps(self.answer).encode())
        return web.json_response(self.answer)

    @staticmethod
    async def _in_halves(request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        await asyncio.sleep(0.2)  # the server's own pause: the first half arrives alone
        await response.write(body[len(body) // 2 :])
        await response.write_eof()
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/sd", self._sd)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, 0).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def sd_server() -> AsyncIterator[SDServer]:
    server = SDServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _dnsmasq_binary() -> str:
    found = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not Path(found).is_file():
        raise RuntimeError("dnsmasq not found: run scripts/setup.sh --test")
    return found


class DnsMasq:
    """A real dnsmasq on a free loopback port, run as a plain process with only our records."""

    def __init__(self, records: list[str]) -> None:
        self.port = free_port()
        self.records = records
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self) -> None:
        self.proc = proc = subprocess.Popen(
            [
                _dnsmasq_binary(),
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                f"--port={self.port}",
                f"--listen-address={HOST}",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--pid-file=",
                *self.records,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        # It listens on TCP too, on the same port: a connection means it is up.
        wait_for(lambda: port_open(self.port) or proc.poll() is not None, timeout=30)
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise RuntimeError(f"dnsmasq exited: {proc.stderr.read().decode()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def dnsmasq(target: Target) -> Iterator[DnsMasq]:
    server = DnsMasq(
        [
            f"--address=/web.test/{HOST}",
            "--address=/web6.test/::1",
            f"--srv-host=_metrics._tcp.svc.test,localhost,{target.port}",
        ]
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _names(poller: object, job: str) -> set[str]:
    return {name for (j, name) in poller.targets if j == job}  # type: ignore[attr-defined]


def _sd_job(sd_server: SDServer) -> dict[str, Any]:
    """Job `sd`, its targets from `sd_server` every 200ms."""
    url = f"http://{HOST}:{sd_server.port}/sd"
    sd = {"url": url, "refresh_interval": "200ms", "authorization": {"credentials": "sd-token"}}
    return {"sd": {"http_sd_configs": [sd]}}


async def test_http_sd_follows_the_answer_and_keeps_the_last_good_one(
    tmp_path: Path, nats_server: NatsServer, sd_server: SDServer, target: Target
) -> None:
    other = f"{HOST}:{free_port()}"  # nothing listens: a discovered target that is down
    here = f"{HOST}:{target.port}"
    sd_server.answer = [{"targets": [here], "labels": {"rack": "r1"}}]
    poller, preg = new_poller(poller_config(tmp_path, nats_server.url, _sd_job(sd_server)))
    async with running(poller):
        await async_wait_for(lambda: _names(poller, "sd") == {here}, message="first answer")
        await async_wait_for(lambda: target.requests >= 1, message="the target was not scraped")
        sd_server.answer = [{"targets": [here, other]}]
        await async_wait_for(lambda: _names(poller, "sd") == {here, other}, message="added")
        sd_server.answer = [{"targets": [other]}]
        await async_wait_for(lambda: _names(poller, "sd") == {other}, message="removed")

        def failures() -> float:
            return metric(
                preg, "poller_sd_refresh_failures_total", poller_job="sd", mechanism="http"
            )

        for invalid in ("{not json", json.dumps({"targets": ["x:1"]})):
            sd_server.raw = invalid
            before = failures()
            await async_wait_for(
                lambda b=before: failures() >= b + 2,  # type: ignore[misc]
                message="an invalid answer was not counted",
            )
            assert _names(poller, "sd") == {other}, "an invalid answer changed the targets"
        sd_server.raw = None
        sd_server.answer = [{"targets": [here]}]
        await async_wait_for(lambda: _names(poller, "sd") == {here}, message="recovered")
        errors = [e["error"] for e in poller.status()["recent_errors"]]
    assert sd_server.refresh_header == "0.2"
    assert any("job sd: http_sd:" in e and "not valid JSON" in e for e in errors), errors


async def test_http_sd_reads_an_answer_that_arrives_in_pieces(
    tmp_path: Path, nats_server: NatsServer, sd_server: SDServer
) -> None:
    wanted = {f"{HOST}:{free_port()}" for _ in range(3)}
    sd_server.answer = [{"targets": sorted(wanted), "labels": {"rack": "r1"}}]
    sd_server.in_halves = True
    poller, preg = new_poller(poller_config(tmp_path, nats_server.url, _sd_job(sd_server)))
    async with running(poller):
        await async_wait_for(lambda: sd_server.requests >= 2, message="two refreshes")
        await async_wait_for(lambda: _names(poller, "sd") == wanted, message="every target")
    failed = metric(preg, "poller_sd_refresh_failures_total", poller_job="sd", mechanism="http")
    assert failed == 0, f"{failed} refreshes failed on an answer in pieces"


async def test_dns_sd_a_and_srv_records_from_a_real_dns_server(
    tmp_path: Path, nats_server: NatsServer, target: Target, dnsmasq: DnsMasq
) -> None:
    jobs = {
        "a": {
            "dns_sd_configs": [
                {
                    "names": ["web.test"],
                    "type": "A",
                    "port": target.port,
                    "refresh_interval": "200ms",
                    "nameserver": dnsmasq.server,
                }
            ]
        },
        # AAAA through the named server; A without one, through the system resolver.
        "aaaa": {
            "dns_sd_configs": [
                {
                    "names": ["web6.test"],
                    "type": "AAAA",
                    "port": target.port,
                    "refresh_interval": "200ms",
                    "nameserver": dnsmasq.server,
                }
            ]
        },
        "system": {"dns_sd_configs": [{"names": ["localhost"], "type": "A", "port": target.port}]},
        "srv": {
            "dns_sd_configs": [
                {
                    "names": ["_metrics._tcp.svc.test"],
                    "refresh_interval": "200ms",
                    "nameserver": dnsmasq.server,
                }
            ]
        },
    }
    poller, preg = new_poller(poller_config(tmp_path, nats_server.url, jobs))
    async with running(poller):
        await async_wait_for(
            lambda: _names(poller, "a") == {f"{HOST}:{target.port}"}, message="A records"
        )
        await async_wait_for(
            lambda: _names(poller, "srv") == {f"localhost:{target.port}"}, message="SRV records"
        )
        await async_wait_for(
            lambda: _names(poller, "aaaa") == {f"[::1]:{target.port}"}, message="AAAA records"
        )
        await async_wait_for(
            lambda: _names(poller, "system") == {f"{HOST}:{target.port}"},
            message="A records from the system resolver",
        )
        await async_wait_for(
            lambda: (
                metric(preg, "poller_scrapes_total", poller_job="srv", result="success") >= 1
                and metric(preg, "poller_scrapes_total", poller_job="a", result="success") >= 1
            ),
            message="the discovered targets were not scraped",
        )
        # The DNS server goes away: refreshes fail, are counted, the targets stay.
        dnsmasq.stop()
        await async_wait_for(
            lambda: (
                metric(preg, "poller_sd_refresh_failures_total", poller_job="a", mechanism="dns")
                >= 2
            ),
            message="failed DNS refreshes were not counted",
        )
        assert _names(poller, "a") == {f"{HOST}:{target.port}"}
        assert _names(poller, "srv") == {f"localhost:{target.port}"}


async def test_discovery_meta_labels_reach_relabel_configs(
    tmp_path: Path,
    nats_server: NatsServer,
    pushgateway: Pushgateway,
    sd_server: SDServer,
    target: Target,
    dnsmasq: DnsMasq,
) -> None:
    """__meta_* of dns_sd, http_sd and file_sd, as Prometheus names them, turned into labels."""
    here = f"{HOST}:{target.port}"
    sd_server.answer = [{"targets": [here], "labels": {"__meta_rack": "r7", "zone": "z1"}}]
    (tmp_path / "groups.json").write_text(
        json.dumps([{"targets": [here], "labels": {"__meta_owner": "team-a"}}])
    )

    def to_label(sources: list[str], label: str, **rule: str) -> dict[str, Any]:
        return {"source_labels": sources, "target_label": label, **rule}

    dns = {"refresh_interval": "200ms", "nameserver": dnsmasq.server}
    scrape_configs = [
        {
            "job_name": "srv",
            "dns_sd_configs": [{"names": ["_metrics._tcp.svc.test"], **dns}],
            "relabel_configs": [
                to_label(["__meta_dns_name"], "dns_name"),
                to_label(
                    ["__meta_dns_srv_record_target", "__meta_dns_srv_record_port"],
                    "srv",
                    separator="/",
                ),
            ],
        },
        {
            "job_name": "a",
            "dns_sd_configs": [{"names": ["web.test"], "type": "A", "port": target.port, **dns}],
            "relabel_configs": [
                to_label(
                    ["__meta_dns_name", "__meta_dns_srv_record_port"],
                    "a_meta",
                    regex="(.*);(.*)",
                    replacement="$1|$2",
                )
            ],
        },
        {
            "job_name": "http",
            "http_sd_configs": [
                {
                    "url": f"http://{HOST}:{sd_server.port}/sd",
                    "refresh_interval": "200ms",
                    "authorization": {"credentials": "sd-token"},
                }
            ],
            "relabel_configs": [
                to_label(["__meta_rack"], "rack"),
                to_label(["__meta_url"], "sd_path", regex="http://[^/]+(/.*)"),
            ],
        },
        {
            "job_name": "file",
            "file_sd_configs": [{"files": ["groups.json"]}],
            "relabel_configs": [
                {"regex": "__meta_(owner)", "action": "labelmap"},
                to_label(["__meta_filepath"], "file", regex=".*/(.*)"),
            ],
        },
    ]
    cfg = poller_config(
        tmp_path, nats_server.url, {}, scrape_configs=scrape_configs, scrape_interval="1s"
    )
    poller, _ = new_poller(cfg)
    receiver, _ = new_receiver(receiver_config(tmp_path, nats_server.url, pushgateway.url))
    expected = {
        ("srv", f"localhost:{target.port}"): {
            "dns_name": "_metrics._tcp.svc.test",
            "srv": f"localhost./{target.port}",
        },
        ("a", here): {"a_meta": "web.test|"},
        ("http", here): {"rack": "r7", "sd_path": "/sd", "zone": "z1"},
        ("file", here): {"owner": "team-a", "file": "groups.json"},
    }

    def up_labels() -> dict[tuple[str, str], dict[str, str]]:
        text = pushgateway.metrics_text()
        found = {}
        for job, instance in expected:
            for key in group_samples(text, job, instance):
                if key.startswith("up{"):
                    pairs = (p.split("=", 1) for p in key[3:-1].split(",") if p)
                    labels = {k: v.strip('"') for k, v in pairs if k != "publisher"}
                    found[(job, instance)] = labels
        return found

    seen: list[object] = []

    def as_expected() -> bool:
        seen.append(found := up_labels())
        return found == expected

    async with running(poller), running(receiver):
        try:
            await async_wait_for(as_expected, timeout=60)
        except AssertionError:
            raise AssertionError(f"labels not as expected, last seen: {seen[-1]}") from None
