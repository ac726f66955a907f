"""Targets behind basic auth, a bearer token and a client certificate (real TLS on loopback),
a job's `params` reaching the target, and a wrong password making `up 0` with the reason."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web
from harness import metric, new_poller, poller_config, running
from servers import HOST, NatsServer, async_wait_for, free_port
from test_scraping import _wait_last_scrape
from testca import TestCA

PAGE = "# TYPE guarded gauge\nguarded 1\n"


class GuardedTarget:
    """An aiohttp target that serves /metrics only to a request `allowed` accepts."""

    def __init__(self, allowed: Callable[[web.Request], bool]) -> None:
        self.allowed = allowed
        self.granted = 0
        self.refused = 0
        self.queries: list[list[tuple[str, str]]] = []
        self.port = 0

    async def _metrics(self, request: web.Request) -> web.Response:
        if not self.allowed(request):
            self.refused += 1
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="m"'})
        self.granted += 1
        self.queries.append(list(request.query.items()))
        return web.Response(text=PAGE)

    @asynccontextmanager
    async def serving(self, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
        """Serve until the block ends; yields the metrics URL."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0, ssl_context=ssl_context)
        await site.start()
        self.port = int(runner.addresses[0][1])
        scheme = "https" if ssl_context else "http"
        try:
            yield f"{scheme}://{HOST}:{self.port}/metrics"
        finally:
            await runner.cleanup()


def _basic(user: str, password: str) -> Callable[[web.Request], bool]:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return lambda request: request.headers.get("Authorization") == expected


def _private(path: Path, text: str) -> str:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


async def test_basic_auth_bearer_token_params_and_a_wrong_password(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    basic = GuardedTarget(_basic("scraper", "right-pw"))
    bearer = GuardedTarget(lambda r: r.headers.get("Authorization") == "Bearer tok-123")
    async with basic.serving() as basic_url, bearer.serving() as bearer_url:
        jobs = {
            "basic": {
                "basic_auth": {
                    "username": "scraper",
                    "password_file": _private(tmp_path / "pw", "right-pw"),
                },
                "params": {"module": ["if_mib"], "target": ["a", "b"]},
                "targets": [{"name": "b1", "url": basic_url}],
            },
            "bearer": {
                "authorization": {"credentials_file": _private(tmp_path / "tok", "tok-123")},
                "targets": [{"name": "t1", "url": bearer_url}],
            },
            "wrong": {
                "basic_auth": {"username": "scraper", "password": "wrong-pw"},
                "targets": [{"name": "w1", "url": basic_url}],
            },
        }
        poller, preg = new_poller(poller_config(tmp_path, nats_server.url, jobs))
        async with running(poller):
            good = await _wait_last_scrape(nats_server.url, "basic", "b1")
            token = await _wait_last_scrape(nats_server.url, "bearer", "t1")
            await async_wait_for(
                lambda: (
                    metric(preg, "poller_scrapes_total", poller_job="wrong", result="http_status")
                    >= 1
                ),
                message="the wrong password was not counted as an HTTP status",
            )
            refused = await _wait_last_scrape(nats_server.url, "wrong", "w1")
            last_error = poller.targets[("wrong", "w1")].last_error
    assert b"guarded 1" in good.body and b"\nup 1\n" in good.body
    assert b"guarded 1" in token.body and b"\nup 1\n" in token.body
    assert b"\nup 0\n" in refused.body and b"guarded" not in refused.body
    assert last_error == "HTTP 401 Unauthorized"
    assert bearer.granted >= 1 and bearer.refused == 0
    # Every request of the basic job carried the params, repeated values in order.
    assert basic.queries and all(
        q == [("module", "if_mib"), ("target", "a"), ("target", "b")] for q in basic.queries
    )
    assert basic.refused >= 1  # the wrong password's requests, and only those
    assert metric(preg, "poller_scrapes_total", poller_job="basic", result="http_status") == 0


async def test_client_certificate_over_real_tls(tmp_path: Path, nats_server: NatsServer) -> None:
    ca = TestCA(tmp_path / "ca")
    server = ca.server("target")
    client = ca.issue("scraper")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.ca_file))
    context.load_cert_chain(server.cert_file, server.key_file)
    context.verify_mode = ssl.CERT_REQUIRED
    seen: list[str] = []

    def allowed(request: web.Request) -> bool:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        seen.append(str(peer))
        return peer is not None

    target = GuardedTarget(allowed)
    async with target.serving(context) as url:
        tls = {"ca_file": str(ca.ca_file), "server_name": "localhost"}
        jobs = {
            "mtls": {
                "scheme": "https",
                "tls_config": {
                    **tls,
                    "cert_file": str(client.cert_file),
                    "key_file": str(client.key_file),
                },
                "targets": [{"name": "m1", "url": url}],
            },
            # The same target without a client certificate: the handshake fails.
            "nocert": {"tls_config": tls, "targets": [{"name": "n1", "url": url}]},
        }
        poller, preg = new_poller(poller_config(tmp_path, nats_server.url, jobs))
        async with running(poller):
            scrape = await _wait_last_scrape(nats_server.url, "mtls", "m1")
            await async_wait_for(
                lambda: poller.targets[("nocert", "n1")].last_error,
                message="the scrape without a client certificate did not fail",
            )
            refused = await _wait_last_scrape(nats_server.url, "nocert", "n1")
    assert b"guarded 1" in scrape.body and b"\nup 1\n" in scrape.body
    assert b"\nup 0\n" in refused.body
    assert "scraper" in seen[0]  # the target saw our client certificate
    assert metric(preg, "poller_scrapes_total", poller_job="mtls", result="success") >= 1


async def test_proxy_url_carries_the_scrape_and_redirects_can_be_refused(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    # The proxy answers itself: nothing listens at the target's own address.
    absent = f"http://{HOST}:{free_port()}/metrics"
    asked: list[str] = []

    async def proxy_handler(request: web.Request) -> web.Response:
        asked.append(str(request.url))
        if request.url.path == "/moved":
            raise web.HTTPFound("/metrics")
        return web.Response(text=PAGE)

    app = web.Application()
    app.router.add_get("/metrics", proxy_handler)
    app.router.add_get("/moved", proxy_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, HOST, 0).start()
    proxy = f"http://{HOST}:{runner.addresses[0][1]}"
    jobs = {
        "proxied": {"proxy_url": proxy, "targets": [{"name": "p1", "url": absent}]},
        "strict": {
            "proxy_url": proxy,
            "follow_redirects": False,
            "targets": [{"name": "s1", "url": absent.replace("/metrics", "/moved")}],
        },
    }
    try:
        poller, _ = new_poller(poller_config(tmp_path, nats_server.url, jobs))
        async with running(poller):
            scrape = await _wait_last_scrape(nats_server.url, "proxied", "p1")
            await async_wait_for(
                lambda: poller.targets[("strict", "s1")].last_error,
                message="the redirect was followed",
            )
            strict_error = poller.targets[("strict", "s1")].last_error
    finally:
        await runner.cleanup()
    assert b"guarded 1" in scrape.body and b"\nup 1\n" in scrape.body
    assert absent in asked  # the proxy was asked for the target's absolute URL
    assert strict_error == "HTTP 302 Found"


async def test_a_reload_brings_a_rotated_password_to_the_running_scrapes(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    target = GuardedTarget(_basic("scraper", "old-pw"))
    password_file = tmp_path / "pw"
    async with target.serving() as url:
        jobs = {
            "node": {
                "basic_auth": {
                    "username": "scraper",
                    "password_file": _private(password_file, "old-pw"),
                },
                "targets": [{"name": "n1", "url": url}],
            }
        }
        poller, _ = new_poller(poller_config(tmp_path, nats_server.url, jobs))
        async with running(poller):
            await async_wait_for(lambda: target.granted >= 1, message="the old password failed")
            # The target takes only the new password now, the poller still sends the old one.
            target.allowed = _basic("scraper", "new-pw")
            await async_wait_for(
                lambda: poller.targets[("node", "n1")].last_error == "HTTP 401 Unauthorized",
                message="the old password was not refused",
            )
            _private(password_file, "new-pw")
            poller.reload(poller_config(tmp_path, nats_server.url, jobs))
            granted = target.granted
            await async_wait_for(
                lambda: target.granted > granted and not poller.targets[("node", "n1")].last_error,
                message="the reloaded password was not used",
            )
