"""Real servers for tests: nats-server, Prometheus Pushgateway and a scrape target.

Every server listens on 127.0.0.1 only, on a free port. Start-up waits on a
readiness condition (polling with a generous bound), never on a fixed sleep.
When a binary is missing or a server fails to come up, a RuntimeError with the
server's log tail is raised: tests fail loudly instead of being skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar, cast, overload

from aiohttp import web

__all__ = [
    "DEFAULT_TARGET_BODY",
    "NatsServer",
    "Pushgateway",
    "Target",
    "async_wait_for",
    "find_binary",
    "free_port",
    "wait_for",
]

T = TypeVar("T")

HOST = "127.0.0.1"
SETUP_HINT = "run scripts/setup-tests.sh"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
LOG_TAIL_BYTES = 4000


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def find_binary(name: str) -> str:
    """Return the path of executable `name`.

    The directory of the running interpreter (the venv's bin/) is searched
    first, then PATH. Raises RuntimeError when the binary is nowhere.
    """
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: {SETUP_HINT}")
    return found


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = HOST) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_request(
    method: str,
    url: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """Synchronous HTTP request; returns (status, body), also for 4xx/5xx."""
    if not url.startswith(f"http://{HOST}:"):
        raise ValueError(f"refusing non-loopback URL {url!r}")
    request = urllib.request.Request(  # noqa: S310 - scheme/host checked above
        url, data=data, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback http only
            status: int = response.status
            body: bytes = response.read()
            return status, body
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _http_status(url: str) -> int | None:
    """GET url and return its status, or None if the server is unreachable."""
    try:
        return http_request("GET", url, timeout=2.0)[0]
    except (OSError, urllib.error.URLError):
        return None


def _describe(value: object) -> str:
    return f" (last value: {value!r})"


def wait_for(
    predicate: Callable[[], T | bool | None],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "",
) -> T:
    """Poll a sync predicate until it returns a truthy value; return that value.

    Raises AssertionError (message + last value) after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return cast(T, value)
        if time.monotonic() >= deadline:
            raise AssertionError(
                (message or f"condition not met within {timeout}s") + _describe(value)
            )
        time.sleep(interval)


@overload
async def async_wait_for(
    predicate: Callable[[], Awaitable[T | None]],
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    message: str = ...,
) -> T: ...


@overload
async def async_wait_for(
    predicate: Callable[[], T | bool | None],
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    message: str = ...,
) -> T: ...


async def async_wait_for(
    predicate: Callable[[], T | bool | Awaitable[T | bool | None] | None],
    timeout: float = 30.0,  # noqa: ASYNC109 - a polling bound, not a cancellation scope
    interval: float = 0.05,
    message: str = "",
) -> T:
    """Like wait_for, for a sync or async predicate, sleeping with asyncio.sleep."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        value = await result if inspect.isawaitable(result) else result
        if value:
            return cast(T, value)
        if loop.time() >= deadline:
            raise AssertionError(
                (message or f"condition not met within {timeout}s") + _describe(value)
            )
        await asyncio.sleep(interval)


# --------------------------------------------------------------------------- #
# subprocess servers
# --------------------------------------------------------------------------- #


class StartStop:
    """Started by `with`, and stopped (closed, where that cleans up more) on leaving it."""

    def start(self) -> None:
        """Start and wait until ready."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop."""
        raise NotImplementedError

    def close(self) -> None:
        """What leaving `with` does: stop."""
        self.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _ProcessServer(StartStop):
    """A server subprocess whose output goes to a log file in tmp_dir."""

    name = "server"
    start_timeout = START_TIMEOUT

    def __init__(self, tmp_dir: Path, binary: str) -> None:
        self.tmp_dir = Path(tmp_dir)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.binary = find_binary(binary)
        self.log_path = self.tmp_dir / f"{binary}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # subclasses provide these
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, limit: int = LOG_TAIL_BYTES) -> str:
        """The last `limit` bytes of the server's log (all its runs)."""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "<no log>"
        return data[-limit:].decode("utf-8", "replace")

    def start(self) -> None:
        """Start the process and block until it is ready (or raise)."""
        if self.running:
            raise RuntimeError(f"{self.name} already running")
        self._log = self.log_path.open("ab")
        self._log.write(f"===== starting {self._command()}\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.tmp_dir,
        )
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                self._cleanup()
                raise RuntimeError(
                    f"{self.name} exited with code {code} during start-up; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if self._ready():
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.name} not ready after {self.start_timeout}s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, wait up to 10 s, then SIGKILL. Safe to call twice."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        self._cleanup()

    def kill(self) -> None:
        """SIGKILL the process at once (simulates a crash)."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
        self._cleanup()

    def restart(self) -> None:
        """Stop, then start again with the same port and data."""
        self.stop()
        self.start()

    def _cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


# Fresh ports a nats-server tries when another process took the first ones.
PORT_RETRIES = 5


class NatsServer(_ProcessServer):
    """nats-server with JetStream (file store in tmp_dir/js) and monitoring.

    The port (and monitoring port) are chosen once, so restart() comes back on
    the same address with the same store directory: JetStream data survives.
    """

    name = "nats-server"

    def __init__(self, tmp_dir: Path, port: int | None = None, extra_config: str = "") -> None:
        super().__init__(tmp_dir, "nats-server")
        # Ports picked here may be re-picked at the first start (see start()).
        self._own_ports = port is None
        self._port = port if port is not None else free_port()
        self.monitor_port = free_port()
        self.store_dir = self.tmp_dir / "js"
        self.config_path = self.tmp_dir / "nats-server.conf"
        self.extra_config = extra_config
        self._write_config()

    def _write_config(self) -> None:
        text = (
            f'server_name: "test-nats-{self._port}"\n'
            f'listen: "{HOST}:{self._port}"\n'
            f'http: "{HOST}:{self.monitor_port}"\n'
            f"jetstream {{\n"
            f"  store_dir: {json.dumps(str(self.store_dir))}\n"
            f"}}\n"
        )
        if self.extra_config:
            text += self.extra_config.rstrip("\n") + "\n"
        self.config_path.write_text(text)

    def start(self) -> None:
        """Start; at the first start, ports taken meanwhile by another process are re-picked.

        free_port()'s ports are free when picked; another test process (xdist
        workers, other suites on a shared machine) may listen on one before
        nats-server does. A restart keeps its ports (clients reconnect there).
        """
        for attempt in range(PORT_RETRIES):
            try:
                super().start()
            except RuntimeError as exc:
                if not self._own_ports or "address already in use" not in str(exc):
                    raise
                if attempt == PORT_RETRIES - 1:
                    raise
                self._port, self.monitor_port = free_port(), free_port()
                self._write_config()
                continue
            self._own_ports = False
            return

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self._port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{HOST}:{self.monitor_port}"

    def _command(self) -> list[str]:
        return [self.binary, "-c", str(self.config_path)]

    def _ready(self) -> bool:
        if not port_open(self._port):
            return False
        return _http_status(f"{self.monitor_url}/healthz?js-enabled-only=true") == 200


class Pushgateway(_ProcessServer):
    """prometheus-pushgateway with a persistence file and the admin API."""

    name = "prometheus-pushgateway"

    def __init__(self, tmp_dir: Path, extra_args: list[str] | None = None) -> None:
        super().__init__(tmp_dir, "prometheus-pushgateway")
        self._port = free_port()
        self.persistence_file = self.tmp_dir / "pgw.data"
        self.extra_args = list(extra_args or [])

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._port}"

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"--web.listen-address={HOST}:{self._port}",
            f"--persistence.file={self.persistence_file}",
            "--web.enable-admin-api",
            *self.extra_args,
        ]

    def _ready(self) -> bool:
        return _http_status(f"{self.url}/-/ready") == 200

    def _get(self, path: str) -> bytes:
        status, body = http_request("GET", f"{self.url}{path}")
        if status != 200:
            raise AssertionError(f"GET {path} -> {status}: {body[:500]!r}")
        return body

    def groups(self) -> list[dict[str, Any]]:
        """The `data` list of GET /api/v1/metrics (one entry per group)."""
        document = json.loads(self._get("/api/v1/metrics"))
        data: list[dict[str, Any]] = document["data"]
        return data

    def group_labels(self) -> list[dict[str, str]]:
        """The grouping labels of every group."""
        return [dict(group["labels"]) for group in self.groups()]

    def metrics_text(self) -> str:
        """The body of GET /metrics (text exposition)."""
        return self._get("/metrics").decode("utf-8")

    def wipe(self) -> None:
        """Delete every group (PUT /api/v1/admin/wipe)."""
        status, body = http_request("PUT", f"{self.url}/api/v1/admin/wipe")
        if status not in (200, 202):
            raise AssertionError(f"wipe -> {status}: {body[:500]!r}")


# --------------------------------------------------------------------------- #
# scrape target
# --------------------------------------------------------------------------- #

DEFAULT_TARGET_BODY = (
    b"# HELP test_requests_total Requests handled.\n"
    b"# TYPE test_requests_total counter\n"
    b'test_requests_total{code="200"} 42\n'
    b"# HELP test_temperature_celsius Current temperature.\n"
    b"# TYPE test_temperature_celsius gauge\n"
    b"test_temperature_celsius 21.5\n"
)
TARGET_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def serve_app(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve `app` on a free loopback port: its runner (cleanup() stops it) and the port."""
    # A short shutdown timeout so stopping does not wait on hanging requests.
    runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, 0).start()
    return runner, int(runner.addresses[0][1])


class Target:
    """A real HTTP scrape target (aiohttp on 127.0.0.1, random port).

    Change `body`, `status`, `delay` and `content_encoding` at any time; each
    request increments `requests` and appends its headers to `headers_seen`.
    """

    def __init__(self, body: bytes = DEFAULT_TARGET_BODY) -> None:
        self.body: bytes = body
        self.status: int = 200
        self.delay: float = 0.0
        self.content_encoding: str | None = None
        self.headers_seen: list[dict[str, str]] = []
        self.requests: int = 0
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.headers_seen.append(dict(request.headers))
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        body = self.body
        headers = {"Content-Type": TARGET_CONTENT_TYPE}
        if self.content_encoding == "gzip":
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        elif self.content_encoding is not None:
            headers["Content-Encoding"] = self.content_encoding
        return web.Response(status=self.status, body=body, headers=headers)

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("target already started")
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        self._runner, self._port = await serve_app(app)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(runner.cleanup(), timeout=10.0)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("target not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/metrics"

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
