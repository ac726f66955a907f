"""Remote-write stores for tests: Prometheus, VictoriaMetrics, vmagent, and a scripted fake.

Prometheus (Debian's 2.42, `--web.enable-remote-write-receiver`, out-of-order
ingestion off) and VictoriaMetrics (Debian's 1.79, single node) run as real
processes on free 127.0.0.1 ports, like the servers in tests/servers.py: a
missing binary raises, a store that does not come up raises with its log tail.
`stop()` keeps the data (so `restart()` brings the same store back, as after an
outage); `close()` also removes the data directory.

FakeStore answers what no real store shows on demand (503s, 429 with
Retry-After, a 400 with a body) and records every request's raw body.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import yaml
from aiohttp import web
from authkit import bcrypt_hash
from prometheus_client.parser import text_string_to_metric_families
from servers import HOST, _ProcessServer, async_wait_for, free_port, serve_app
from testca import Issued, TestCA

__all__ = [
    "EMPTY_WRITE_REQUEST",
    "STALE_MARKER",
    "FakeStore",
    "PrometheusStore",
    "RecordedRequest",
    "Reply",
    "SeriesSamples",
    "VictoriaMetricsStore",
    "VmAgent",
    "VmAuth",
    "metric_sum",
]

# raw samples per series: labels (with __name__) -> [(timestamp ms, value as the store wrote it)]
SeriesSamples = dict[frozenset[tuple[str, str]], list[tuple[int, str]]]

# A remote-write request without series: snappy's encoding of zero bytes. Both stores
# answer it 204, so it probes auth and TLS without needing the protobuf encoder.
EMPTY_WRITE_REQUEST = b"\x00"
WRITE_HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
REQUEST_TIMEOUT = 10.0
# how VictoriaMetricsStore.samples(stale_markers=True) shows a Prometheus staleness marker
STALE_MARKER = "stale"


def metric_sum(
    text: str, name: str, labels: Mapping[str, str] | None = None, default: float | None = None
) -> float:
    """Sum of the samples called `name` (matching `labels`) in exposition `text`.

    When no sample of that name exists at all, `default` is returned, or with
    no default an AssertionError is raised, so a misspelt metric fails the
    test instead of reading as 0. (A Go counter vector shows nothing, not even
    its HELP line, until its first label set is used.)
    """
    wanted = dict(labels or {})
    found = False
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != name:
                continue
            found = True
            if all(sample.labels.get(k) == v for k, v in wanted.items()):
                total += sample.value
    if not found:
        if default is not None:
            return default
        raise AssertionError(f"no metric {name!r} exposed")
    return total


def _range_ms(start: float, end: float) -> int:
    span = round((end - start) * 1000)
    if span <= 0:
        raise ValueError(f"empty range: start {start} is not before end {end}")
    return span


# --------------------------------------------------------------------------- #
# a process with an HTTP API (optionally behind basic auth and TLS)
# --------------------------------------------------------------------------- #


class _HttpProcess(_ProcessServer):
    """A server process reached over HTTP(S) on a free loopback port."""

    ready_path = "/health"

    def __init__(
        self,
        tmp_dir: Path,
        binary: str,
        basic_auth: tuple[str, str] | None = None,
        ca: TestCA | None = None,
        server_name: str | None = None,
    ) -> None:
        super().__init__(tmp_dir, binary)
        self._port = free_port()
        self.data_dir = self.tmp_dir / "data"
        self.basic_auth = basic_auth
        self.bearer_token: str | None = None
        self.started_in: float | None = None
        self.ca_file: Path | None = None
        self.server_cert: Issued | None = None
        self.client_cert: Issued | None = None
        self._client_ssl: ssl.SSLContext | None = None
        self._client_ssl_without_cert: ssl.SSLContext | None = None
        if ca is not None:
            # the port in the names keeps two stores sharing one CA apart
            self.ca_file = ca.ca_file
            self.server_cert = (
                ca.server(f"{self.name}-{self._port}")
                if server_name is None
                else ca.issue(f"{self.name}-{self._port}", dns=(server_name,))
            )
            self.client_cert = ca.issue(f"{self.name}-{self._port}-client")
            self._client_ssl_without_cert = ssl.create_default_context(cafile=str(ca.ca_file))
            self._client_ssl = ssl.create_default_context(cafile=str(ca.ca_file))
            if server_name is not None:
                # The helper itself connects to 127.0.0.1, which that certificate does not name.
                self._client_ssl.check_hostname = False
                self._client_ssl_without_cert.check_hostname = False
            self._client_ssl.load_cert_chain(
                str(self.client_cert.cert_file), str(self.client_cert.key_file)
            )

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT (https with a CA)."""
        scheme = "https" if self.server_cert is not None else "http"
        return f"{scheme}://{HOST}:{self._port}"

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"

    @property
    def write_url(self) -> str:
        """The remote-write endpoint (all of these servers accept remote write there)."""
        return f"{self.url}/api/v1/write"

    def _vm_tls_args(self) -> list[str]:
        """VictoriaMetrics's flags for HTTPS (server side only: 1.79 has none for client certs)."""
        if self.server_cert is None:
            return []
        return [
            "-tls",
            f"-tlsCertFile={self.server_cert.cert_file}",
            f"-tlsKeyFile={self.server_cert.key_file}",
        ]

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} not running")
        return self.process.pid

    def _headers(self, credentials: bool) -> dict[str, str]:
        if credentials and self.bearer_token is not None:
            return {"Authorization": f"Bearer {self.bearer_token}"}
        if not credentials or self.basic_auth is None:
            return {}
        token = base64.b64encode(":".join(self.basic_auth).encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def _ssl(self, client_cert: bool) -> ssl.SSLContext | None:
        return self._client_ssl if client_cert else self._client_ssl_without_cert

    def _ready(self) -> bool:
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            f"{self.url}{self.ready_path}", headers=self._headers(True)
        )
        try:
            with urllib.request.urlopen(request, timeout=2.0, context=self._ssl(True)) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def start(self) -> None:
        """Start and wait until ready; `started_in` says how long that took."""
        began = time.monotonic()
        super().start()
        self.started_in = time.monotonic() - began

    def close(self) -> None:
        """Stop the process and remove its data directory."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        credentials: bool = True,
        client_cert: bool = True,
    ) -> tuple[int, bytes]:
        """One request to the server: (status, body); credentials, client cert optional."""
        all_headers = {**self._headers(credentials), **(headers or {})}
        context = self._ssl(client_cert)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(
                method,
                f"{self.url}{path}",
                params=params,
                data=body,
                headers=all_headers,
                ssl=context if context is not None else True,
            ) as response,
        ):
            return response.status, await response.read()

    async def _get_ok(
        self, path: str, params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None
    ) -> bytes:
        status, body = await self.request("GET", path, params=params)
        if status != 200:
            raise AssertionError(f"{self.name}: GET {path} {params} -> {status}: {body[:500]!r}")
        return body

    async def write(
        self, body: bytes, credentials: bool = True, client_cert: bool = True
    ) -> tuple[int, bytes]:
        """POST a snappy-compressed remote-write request to write_url: (status, body)."""
        return await self.request(
            "POST",
            "/api/v1/write",
            body=body,
            headers=WRITE_HEADERS,
            credentials=credentials,
            client_cert=client_cert,
        )

    async def counter(
        self, name: str, labels: Mapping[str, str] | None = None, default: float | None = None
    ) -> float:
        """Sum of metric `name` over its label sets (matching `labels`) on the server's /metrics.

        A metric not exposed at all raises AssertionError unless `default` is given.
        """
        text = (await self._get_ok("/metrics")).decode()
        return metric_sum(text, name, labels, default)

    async def _query(self, expr: str, at: float | None) -> list[dict[str, Any]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        document = json.loads(await self._get_ok("/api/v1/query", params))
        if document.get("status") != "success":
            raise AssertionError(f"{self.name}: query {expr!r} failed: {document}")
        result: list[dict[str, Any]] = document["data"]["result"]
        return result


# --------------------------------------------------------------------------- #
# Prometheus 2.42 with the remote-write receiver
# --------------------------------------------------------------------------- #


class PrometheusStore(_HttpProcess):
    """Prometheus receiving remote write (TSDB in tmp_dir/data); optionally scraping too.

    `scrape_configs` are Prometheus's own (a list of dicts) so the same server
    can also scrape targets directly. `basic_auth` (user, password) and `ca`
    (HTTPS, with a client certificate required unless `require_client_cert`
    is False) go into a --web.config.file. With `ca`, `client_cert` holds the
    certificate and key a client must present. With `server_name` too, the
    server's certificate names only that host (not 127.0.0.1).

    Remote-written samples are queryable at once. Scraping is not: 2.42's
    scrape manager applies new targets on a fixed 5 s tick, so the first
    direct scrape comes about 5 s after start() or reload().
    """

    name = "prometheus"
    ready_path = "/-/ready"

    def __init__(
        self,
        tmp_dir: Path,
        scrape_configs: Sequence[Mapping[str, Any]] = (),
        basic_auth: tuple[str, str] | None = None,
        ca: TestCA | None = None,
        require_client_cert: bool = True,
        extra_args: Sequence[str] = (),
        server_name: str | None = None,
    ) -> None:
        super().__init__(tmp_dir, "prometheus", basic_auth, ca, server_name)
        self.config_path = self.tmp_dir / "prometheus.yml"
        self.web_config_path = self.tmp_dir / "web-config.yml"
        self.require_client_cert = require_client_cert
        self.extra_args = list(extra_args)
        self._write_config(scrape_configs)
        self._write_web_config()

    def _write_config(self, scrape_configs: Sequence[Mapping[str, Any]]) -> None:
        document = {"scrape_configs": [dict(c) for c in scrape_configs]}
        self.config_path.write_text(yaml.safe_dump(document, sort_keys=False))

    def _write_web_config(self) -> None:
        document: dict[str, Any] = {}
        if self.server_cert is not None:
            tls: dict[str, str] = {
                "cert_file": str(self.server_cert.cert_file),
                "key_file": str(self.server_cert.key_file),
            }
            if self.require_client_cert:
                tls["client_auth_type"] = "RequireAndVerifyClientCert"
                tls["client_ca_file"] = str(self.ca_file)
            document["tls_server_config"] = tls
        if self.basic_auth is not None:
            user, password = self.basic_auth
            document["basic_auth_users"] = {user: bcrypt_hash(password)}
        if document:
            self.web_config_path.write_text(yaml.safe_dump(document))

    def _command(self) -> list[str]:
        command = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={HOST}:{self._port}",
            "--web.enable-remote-write-receiver",
            # reload() rewrites the scrape configs of a running store
            "--web.enable-lifecycle",
        ]
        if self.web_config_path.exists():
            command.append(f"--web.config.file={self.web_config_path}")
        return [*command, *self.extra_args]

    async def reload(self, scrape_configs: Sequence[Mapping[str, Any]]) -> None:
        """Replace the scrape configs of the running server (POST /-/reload)."""
        self._write_config(scrape_configs)
        status, body = await self.request("POST", "/-/reload")
        if status != 200:
            raise AssertionError(f"prometheus: reload -> {status}: {body[:500]!r}")

    async def query(self, expr: str, time: float | None = None) -> list[dict[str, Any]]:
        """The result list of an instant query (at unix `time`, default now)."""
        return await self._query(expr, time)

    async def samples(self, selector: str, start: float, end: float | None = None) -> SeriesSamples:
        """Raw samples of `selector` with start <= timestamp <= end (unix seconds), per series.

        An instant query of a range selector returns the stored samples with
        their own timestamps; stale markers are not among them.
        """
        end = time.time() if end is None else end
        expr = f"{selector}[{_range_ms(start, end)}ms]"
        first, last = round(start * 1000), round(end * 1000)
        found: SeriesSamples = {}
        for series in await self._query(expr, end):
            points = [(int(Decimal(str(ts)) * 1000), value) for ts, value in series["values"]]
            kept = [(ts, value) for ts, value in points if first <= ts <= last]
            if kept:
                found[frozenset(series["metric"].items())] = kept
        return found

    async def flush(self) -> None:
        """Nothing to do: Prometheus answers queries from its head at once."""

    async def out_of_order_rejections(self) -> float:
        """Samples and write requests Prometheus 2.42 refused for their timestamps.

        The sum of the TSDB's refusals (out of order, out of bounds, too old;
        from remote write and scrapes alike) and of remote-write requests
        answered 400: a sample with a duplicate timestamp (same time, other
        value) is counted only there. An out-of-order sample inside one
        request is dropped at commit with a 204, counted only by the TSDB.
        Compare with 0; the units are mixed. The TSDB counters are vectors
        (label `type`) that 2.42 shows only from their first increment.
        """
        total = 0.0
        for name in (
            "prometheus_tsdb_out_of_order_samples_total",
            "prometheus_tsdb_out_of_bound_samples_total",
            "prometheus_tsdb_too_old_samples_total",
        ):
            total += await self.counter(name, default=0.0)
        return total + await self.rejected_writes()

    async def rejected_writes(self) -> float:
        """Remote-write requests answered 400 (bad body, or a sample refused for its timestamp)."""
        return await self.counter(
            "prometheus_http_requests_total",
            {"handler": "/api/v1/write", "code": "400"},
            default=0.0,
        )


# --------------------------------------------------------------------------- #
# VictoriaMetrics single node 1.79
# --------------------------------------------------------------------------- #


class VictoriaMetricsStore(_HttpProcess):
    """Single-node VictoriaMetrics (storage in tmp_dir/data), no deduplication.

    `basic_auth` uses -httpAuth.*, which 1.79 applies to the API but not to
    /health and /metrics. `ca` turns on HTTPS; 1.79 has no flag to require or
    verify client certificates, so `client_cert` is issued but never checked.
    """

    name = "victoria-metrics"
    ready_path = "/health"

    def __init__(
        self,
        tmp_dir: Path,
        basic_auth: tuple[str, str] | None = None,
        ca: TestCA | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(tmp_dir, "victoria-metrics", basic_auth, ca)
        self.extra_args = list(extra_args)

    def _command(self) -> list[str]:
        command = [
            self.binary,
            f"-storageDataPath={self.data_dir}",
            f"-httpListenAddr={HOST}:{self._port}",
            # tests write samples of any age up to now: keep everything
            "-retentionPeriod=100y",
            # the defaults hide the newest 30 s from queries and cache responses
            "-search.latencyOffset=0s",
            "-search.disableCache",
        ]
        if self.basic_auth is not None:
            user, password = self.basic_auth
            command += [f"-httpAuth.username={user}", f"-httpAuth.password={password}"]
        return [*command, *self._vm_tls_args(), *self.extra_args]

    async def flush(self) -> None:
        """Make every sample received so far searchable (/internal/force_flush)."""
        await self._get_ok("/internal/force_flush")

    async def import_text(self, text: str) -> None:
        """Store exposition text (explicit timestamps in ms kept) via /api/v1/import/prometheus."""
        status, body = await self.request("POST", "/api/v1/import/prometheus", body=text.encode())
        if status // 100 != 2:
            raise AssertionError(f"victoria-metrics: import -> {status}: {body[:500]!r}")

    async def query(self, expr: str, time: float | None = None) -> list[dict[str, Any]]:
        """The result list of an instant query (at unix `time`, default now); flushes first."""
        await self.flush()
        return await self._query(expr, time)

    async def samples(
        self, selector: str, start: float, end: float | None = None, stale_markers: bool = False
    ) -> SeriesSamples:
        """Raw samples of `selector` with start <= timestamp <= end (unix seconds), per series.

        Read from /api/v1/export after a flush; values are the text VictoriaMetrics
        wrote. Staleness markers (exported as null) are left out, as Prometheus's
        range selectors do, or kept as the value STALE_MARKER with `stale_markers`.
        """
        await self.flush()
        end = time.time() if end is None else end
        params = [("match[]", selector), ("start", f"{start:.3f}"), ("end", f"{end:.3f}")]
        text = (await self._get_ok("/api/v1/export", params)).decode()
        first, last = round(start * 1000), round(end * 1000)
        found: SeriesSamples = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            # numbers as text: the values stay exactly as exported, NaN included
            series = json.loads(line, parse_int=str, parse_float=str, parse_constant=str)
            points = zip(series["timestamps"], series["values"], strict=True)
            kept = [
                (int(ts), STALE_MARKER if value is None else value)
                for ts, value in points
                if first <= int(ts) <= last and (value is not None or stale_markers)
            ]
            if kept:
                key = frozenset(series["metric"].items())
                found[key] = sorted(found.get(key, []) + kept)
        return found


# --------------------------------------------------------------------------- #
# vmagent (benchmark contender)
# --------------------------------------------------------------------------- #


class VmAgent(_HttpProcess):
    """vmagent scraping `scrape_configs` and remote-writing to `remote_write_url`.

    `extra_args` carries what else the run needs (e.g. -remoteWrite.basicAuth.*,
    -remoteWrite.tlsCAFile, -promscrape.* tuning).
    """

    name = "vmagent"
    ready_path = "/health"

    def __init__(
        self,
        tmp_dir: Path,
        remote_write_url: str,
        scrape_configs: Sequence[Mapping[str, Any]],
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(tmp_dir, "vmagent")
        self.remote_write_url = remote_write_url
        self.config_path = self.tmp_dir / "vmagent.yml"
        self.config_path.write_text(
            yaml.safe_dump({"scrape_configs": [dict(c) for c in scrape_configs]}, sort_keys=False)
        )
        self.extra_args = list(extra_args)

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"-promscrape.config={self.config_path}",
            f"-remoteWrite.url={self.remote_write_url}",
            f"-remoteWrite.tmpDataPath={self.data_dir}",
            f"-httpListenAddr={HOST}:{self._port}",
            *self.extra_args,
        ]


# --------------------------------------------------------------------------- #
# vmauth: a real bearer-token check in front of a store
# --------------------------------------------------------------------------- #


class VmAuth(_HttpProcess):
    """vmauth passing requests with `bearer_token` on to `backend_url`, refusing others with 401.

    Neither Prometheus 2.42 nor VictoriaMetrics 1.79 checks bearer tokens
    itself; users put vmauth (or a proxy like it) in front.
    """

    name = "vmauth"
    ready_path = "/health"

    def __init__(
        self,
        tmp_dir: Path,
        backend_url: str,
        bearer_token: str,
        ca: TestCA | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(tmp_dir, "vmauth", ca=ca)
        self.bearer_token = bearer_token
        self.config_path = self.tmp_dir / "vmauth.yml"
        users = [{"bearer_token": bearer_token, "url_prefix": backend_url.rstrip("/")}]
        self.config_path.write_text(yaml.safe_dump({"users": users}))
        self.extra_args = list(extra_args)

    def _command(self) -> list[str]:
        command = [
            self.binary,
            f"-auth.config={self.config_path}",
            f"-httpListenAddr={HOST}:{self._port}",
        ]
        return [*command, *self._vm_tls_args(), *self.extra_args]


# --------------------------------------------------------------------------- #
# a scripted fake store
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Reply:
    """One scripted answer of FakeStore (after `delay` seconds)."""

    status: int = 204
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    """A request FakeStore received: raw body (still snappy-compressed) and its answer."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    received_at: float


class FakeStore:
    """An aiohttp remote-write endpoint on 127.0.0.1 answering from a script.

    Scripted replies are used one per request, in order; when none is left
    every request gets `default`. With `bearer_token` set, a request without
    `Authorization: Bearer <token>` gets 401 and uses no scripted reply.
    """

    def __init__(self, bearer_token: str | None = None, default: Reply | None = None) -> None:
        self.bearer_token = bearer_token
        self.default = default if default is not None else Reply()
        self.requests: list[RecordedRequest] = []
        self._script: collections.deque[Reply] = collections.deque()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def script(self, reply: Reply, times: int = 1) -> None:
        """Answer the next `times` requests (after those already scripted) with `reply`."""
        self._script.extend([reply] * times)

    @property
    def pending_replies(self) -> int:
        return len(self._script)

    @property
    def accepted(self) -> list[RecordedRequest]:
        """The requests answered 2xx."""
        return [r for r in self.requests if 200 <= r.status < 300]

    async def wait_for_requests(self, count: int, timeout: float = 30.0) -> list[RecordedRequest]:  # noqa: ASYNC109 - a polling bound
        """Wait until at least `count` requests arrived; return them all."""
        await async_wait_for(
            lambda: len(self.requests) >= count,
            timeout=timeout,
            message=f"fake store: fewer than {count} requests (got {len(self.requests)})",
        )
        return list(self.requests)

    def _authorized(self, request: web.Request) -> bool:
        if self.bearer_token is None:
            return True
        return request.headers.get("Authorization") == f"Bearer {self.bearer_token}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self._authorized(request):
            reply = Reply(401, b"unauthorized\n")
        else:
            reply = self._script.popleft() if self._script else self.default
        self.requests.append(
            RecordedRequest(
                request.method,
                request.path,
                dict(request.headers),
                body,
                reply.status,
                time.time(),
            )
        )
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, body=reply.body, headers=dict(reply.headers))

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("fake store already started")
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # serve_app's short shutdown timeout: a delayed reply must not hold up stop()
        self._runner, self._port = await serve_app(app)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(runner.cleanup(), timeout=10.0)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("fake store not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
