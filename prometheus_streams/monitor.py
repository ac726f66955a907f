"""Own observability over HTTP: /metrics, /-/healthy, /-/ready, the status page and controls."""

from __future__ import annotations

import ipaddress
import json
import logging
from importlib import resources

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from prometheus_streams import __version__
from prometheus_streams.management import act
from prometheus_streams.role import Role

log = logging.getLogger(__name__)
DEFAULT_TOP = 10
MAX_TOP = 1000


def build_info(registry: CollectorRegistry, role: str, identity: str) -> None:
    """Export the version and role as an info-style gauge."""
    gauge = Gauge(
        "prometheus_streams_build_info",
        "Version and role of this process",
        ["version", "role", "identity"],
        registry=registry,
    )
    gauge.labels(__version__, role, identity).set(1)


def standard_collectors(registry: CollectorRegistry) -> None:
    """The process_* and python_* families every Prometheus client exports, on our registry."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return remote == "unix"


class MonitorServer:
    """Serve metrics, health, status and pause/resume on the monitor port."""

    def __init__(
        self,
        registry: CollectorRegistry,
        address: str,
        port: int,
        role: Role,
        allow_remote_control: bool = False,
    ) -> None:
        self._registry = registry
        self._address = address
        self._port = port
        self._role = role
        self._allow_remote_control = allow_remote_control
        self._runner: web.AppRunner | None = None
        self._page = resources.files("prometheus_streams").joinpath("status.html").read_text()
        self.bound_port = 0
        self.status_requests = 0

    async def start(self) -> None:
        """Listen; raise OSError when the port cannot be bound."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/-/healthy", self._healthy)
        app.router.add_get("/-/ready", self._ready_handler)
        app.router.add_get("/api/v1/status", self._status_json)
        app.router.add_post("/api/v1/pause", self._control)
        app.router.add_post("/api/v1/resume", self._control)
        app.router.add_post("/api/v1/reload", self._control)
        app.router.add_get("/api/v1/top", self._top)
        app.router.add_get("/", self._status_page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._address, self._port)
        await site.start()
        server = site._server  # aiohttp exposes the bound socket only here
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("monitor listening on %s:%d", self._address, self.bound_port)

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthy(self, _request: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    async def _ready_handler(self, _request: web.Request) -> web.Response:
        ok, why = self._role.ready()
        return web.Response(text=f"{why}\n", status=200 if ok else 503)

    async def _status_json(self, _request: web.Request) -> web.Response:
        self.status_requests += 1
        ok, why = self._role.ready()
        body = {"version": __version__, "ready": ok, "ready_reason": why, **self._role.status()}
        return web.json_response(body, dumps=lambda o: json.dumps(o, default=str))

    async def _control(self, request: web.Request) -> web.Response:
        if not self._allow_remote_control and not _is_loopback(request.remote):
            return web.json_response(
                {
                    "error": "pause/resume/reload are accepted from loopback only"
                    " (management.http_remote)"
                },
                status=403,
            )
        action = request.path.rsplit("/", 1)[1]
        result = act(self._role, action, f"HTTP from {request.remote}")
        status = 400 if result.get("reloaded") is False else 200
        return web.json_response(result, status=status, dumps=lambda o: json.dumps(o, default=str))

    async def _top(self, request: web.Request) -> web.Response:
        try:
            n = int(request.query.get("n", str(DEFAULT_TOP)))
        except ValueError:
            n = 0
        if not 1 <= n <= MAX_TOP:
            return web.json_response(
                {"error": f"n must be an integer from 1 to {MAX_TOP}"}, status=400
            )
        return web.json_response(self._role.top(n), dumps=lambda o: json.dumps(o, default=str))

    async def _status_page(self, _request: web.Request) -> web.Response:
        return web.Response(text=self._page, content_type="text/html")
