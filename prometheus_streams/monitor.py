"""Own observability over HTTP: /metrics, /-/healthy, /-/ready, / and /api/v1/status."""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from prometheus_streams import __version__

log = logging.getLogger(__name__)

StatusFn = Callable[[], dict[str, Any]]
ReadyFn = Callable[[], tuple[bool, str]]


def build_info(registry: CollectorRegistry, role: str, identity: str) -> None:
    """Export the version and role as an info-style gauge."""
    gauge = Gauge(
        "prometheus_streams_build_info",
        "Version and role of this process",
        ["version", "role", "identity"],
        registry=registry,
    )
    gauge.labels(__version__, role, identity).set(1)


class MonitorServer:
    """Serve metrics, health and status on the monitor port."""

    def __init__(
        self,
        registry: CollectorRegistry,
        address: str,
        port: int,
        ready: ReadyFn,
        status: StatusFn,
    ) -> None:
        self._registry = registry
        self._address = address
        self._port = port
        self._ready = ready
        self._status = status
        self._runner: web.AppRunner | None = None
        self.bound_port = 0

    async def start(self) -> None:
        """Listen; raise OSError when the port cannot be bound."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/-/healthy", self._healthy)
        app.router.add_get("/-/ready", self._ready_handler)
        app.router.add_get("/api/v1/status", self._status_json)
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
        ok, why = self._ready()
        return web.Response(text=f"{why}\n", status=200 if ok else 503)

    async def _status_json(self, _request: web.Request) -> web.Response:
        return web.json_response(self._status(), dumps=lambda o: json.dumps(o, default=str))

    async def _status_page(self, _request: web.Request) -> web.Response:
        status = self._status()
        rows = []
        for section, value in status.items():
            pretty = json.dumps(value, indent=2, default=str)
            rows.append(f"<h2>{html.escape(section)}</h2><pre>{html.escape(pretty)}</pre>")
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<meta http-equiv='refresh' content='10'>"
            f"<title>prometheus-streams {__version__}</title></head><body>"
            f"<h1>prometheus-streams {html.escape(__version__)}</h1>"
            + "".join(rows)
            + "<p><a href='/metrics'>metrics</a> · <a href='/api/v1/status'>json</a></p>"
            "</body></html>"
        )
        return web.Response(text=page, content_type="text/html")
