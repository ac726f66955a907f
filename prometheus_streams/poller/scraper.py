"""Scrape one target over HTTP the way Prometheus does."""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import ssl
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from prometheus_streams import __version__
from prometheus_streams.config.model import Authorization, BasicAuth, HTTPTLSConfig
from prometheus_streams.exposition_check import exposition_error
from prometheus_streams.secret import redact_text, userinfo_secrets
from prometheus_streams.transport import http1
from prometheus_streams.wire import WireError, decompress

ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
USER_AGENT = f"prometheus-streams/{__version__}"
# Every `result` a scrape can have (the poller's scrapes_total starts each at 0).
RESULTS = (
    "success",
    "refused",
    "timeout",
    "http_status",
    "too_large",
    "bad_body",
    "invalid_exposition",
    "error",
    # Prometheus' limits (the job's sample_limit, label limits, target_limit).
    "sample_limit",
    "label_limit",
    "target_limit",
)
REDIRECTS = (301, 302, 303, 307, 308)
# Prometheus keeps a target's idle connection 5 minutes, above any sane scrape
# interval: at the default 1m a scrape neither reconnects nor repeats a TLS handshake.
KEEPALIVE = 300.0
# URLs that answered a redirect: asked through aiohttp, which follows it, from then on.
MAX_REDIRECTING = 4096


@functools.lru_cache(maxsize=65536)
def _parsed(url: str) -> URL:
    # aiohttp parses a str URL on every request; a target's URL is the same
    # every time (docs/performance.md, "Against vmagent").
    return URL(url)


class ClientSettings(Protocol):
    """A job's or an http_sd endpoint's HTTP keys, as Prometheus names them."""

    @property
    def basic_auth(self) -> BasicAuth | None: ...
    @property
    def authorization(self) -> Authorization | None: ...
    @property
    def tls_config(self) -> HTTPTLSConfig | None: ...
    @property
    def proxy_url(self) -> str | None: ...
    @property
    def follow_redirects(self) -> bool: ...


def request_options(settings: ClientSettings) -> dict[str, Any]:
    """aiohttp request arguments for `settings`: Authorization, TLS, proxy, redirects."""
    options: dict[str, Any] = {"allow_redirects": settings.follow_redirects}
    if settings.basic_auth is not None:
        auth = settings.basic_auth
        password = auth.password.reveal() if auth.password is not None else ""
        pair = base64.b64encode(f"{auth.username}:{password}".encode()).decode("ascii")
        options["headers"] = {"Authorization": f"Basic {pair}"}
    elif settings.authorization is not None:
        scheme, credentials = settings.authorization.type, settings.authorization.credentials
        options["headers"] = {"Authorization": f"{scheme} {credentials.reveal()}"}
    if settings.tls_config is not None:
        options["ssl"] = _ssl_context(settings.tls_config)
        if settings.tls_config.server_name:
            options["server_hostname"] = settings.tls_config.server_name
    if settings.proxy_url is not None:
        options["proxy"] = settings.proxy_url
    return options


def _ssl_context(tls: HTTPTLSConfig) -> ssl.SSLContext:
    # Made again when a file changes, so renewed certificates are picked up.
    files = (tls.ca_file, tls.cert_file, tls.key_file)
    return _cached_context(tls, tuple(os.stat(f).st_mtime_ns if f else 0 for f in files))


@functools.lru_cache(maxsize=256)
def _cached_context(tls: HTTPTLSConfig, _mtimes: tuple[int, ...]) -> ssl.SSLContext:
    return tls.ssl_context()


@functools.lru_cache(maxsize=65536)
def _origin(url: URL, context: ssl.SSLContext | None, server_name: str | None) -> http1.Origin:
    host = url.raw_host or ""
    return http1.Origin(
        url.scheme,
        host,
        url.port or 0,
        url.host_port_subcomponent or host,
        context if url.scheme == "https" else None,
        server_name,
    )


@functools.lru_cache(maxsize=65536)
def with_params(url: str, params: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    """`url` with a job's `params` added; a parameter already in the URL wins, as a
    target's `__param_*` label does in Prometheus."""
    if not params:
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {name for name, _ in query}
    query += [(name, value) for name, values in params if name not in present for value in values]
    return urlunsplit(parts._replace(query=urlencode(query)))


# Not frozen: a frozen dataclass sets each field through object.__setattr__,
# and one is made per scrape.
@dataclass(slots=True)
class ScrapeResult:
    """The outcome of one scrape; `error` is empty on success."""

    started: float  # wall-clock seconds
    duration: float
    body: bytes = b""
    gzip: bytes | None = None  # the body as the target gzipped it, to forward untouched
    error: str = ""  # the reason label, one of RESULTS
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the target answered 2xx with a body within limits."""
        return not self.error


class Scraper:
    """Owns the HTTP clients shared by all targets (keep-alive).

    Scrapes go through the lean client (transport/http1.py); through aiohttp
    what it does not do: a proxy, user info in the URL, a redirect to follow.
    Neither limits the connections open at once; the lean client keeps at
    most `idle_per_origin` idle ones per origin.
    """

    def __init__(self, idle_per_origin: int = 100) -> None:
        self._connections = idle_per_origin
        self._session: aiohttp.ClientSession | None = None
        self._fast: http1.Client | None = None
        self._default_tls: ssl.SSLContext | None = None
        self._redirecting: set[str] = set()
        # Sent with every scrape, before the scrape's own headers, as aiohttp orders them.
        self._base = {
            "Accept": ACCEPT,
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": USER_AGENT,
        }

    async def start(self) -> None:
        """Open the session."""
        self._fast = http1.Client(idle_per_origin=self._connections, keepalive=KEEPALIVE)
        # No limit on connections at once, as in Prometheus (a target has one at a
        # time): a scrape waiting for a pooled connection spent its own timeout on
        # it, and more than 100 slow targets behind a proxy were reported down.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=self._base,
            # We inflate ourselves: one zlib call is far cheaper than aiohttp's
            # streaming inflate, and a gzip body can then be forwarded as it came.
            auto_decompress=False,
            # Prometheus keeps no cookies between scrapes; nor do we.
            cookie_jar=aiohttp.DummyCookieJar(),
            # Each scrape runs within its own asyncio.timeout: no second timer.
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._fast is not None:
            await self._fast.close()
            self._fast = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def scrape(
        self, url: str, limit_s: float, body_limit: int, settings: ClientSettings | None = None
    ) -> ScrapeResult:
        """Fetch `url` within `limit_s` seconds, refusing bodies of `body_limit` bytes or more.

        A body the Pushgateway or Prometheus would not parse makes a failed
        scrape, as it does in Prometheus: forwarded, the Pushgateway would
        refuse it and the target's group would keep its last good values.
        """
        # Prometheus 2.42 fails a body that reaches body_size_limit (`n >= limit`),
        # inflated or not: the largest body taken is one byte less.
        result = await self._fetch(url, limit_s, max(body_limit - 1, 0), settings)
        if result.ok:
            error = exposition_error(result.body)
            if error is not None:
                return replace(
                    result, error="invalid_exposition", detail=f"invalid exposition text: {error}"
                )
        return result

    async def _fetch(
        self, url: str, limit_s: float, body_limit: int, settings: ClientSettings | None
    ) -> ScrapeResult:
        started = time.time()
        t0 = time.perf_counter()

        def result(detail: str = "", **kwargs: object) -> ScrapeResult:
            # aiohttp puts the URL, user info and all, into some of its errors.
            if detail:
                detail = redact_text(detail, userinfo_secrets(url))
            return ScrapeResult(
                started=started,
                duration=time.perf_counter() - t0,
                detail=detail,
                **kwargs,  # type: ignore[arg-type]
            )

        headers = {"X-Prometheus-Scrape-Timeout-Seconds": f"{limit_s:g}"}
        options: dict[str, Any] = {"allow_redirects": True}
        try:
            if settings is not None:
                options = request_options(settings)
                headers.update(options.pop("headers", {}))
            async with asyncio.timeout(limit_s):
                origin = self._route(url, options)
                got: ScrapeResult | tuple[bytes, str] | None = None
                if origin is not None:
                    got = await self._get_fast(url, origin, headers, options, body_limit, result)
                if got is None:
                    got = await self._get(url, headers, options, body_limit, result)
        except TimeoutError:
            return result(error="timeout", detail=f"no answer within {limit_s:g}s")
        except (aiohttp.ClientConnectorError, http1.ConnectError) as exc:
            return result(error="refused", detail=str(exc))
        except (aiohttp.ClientPayloadError, http1.BodyError) as exc:
            return result(error="bad_body", detail=str(exc))
        except (aiohttp.ClientError, http1.HTTPError, OSError, ValueError, ssl.SSLError) as exc:
            return result(error="error", detail=f"{type(exc).__name__}: {exc}")
        if isinstance(got, ScrapeResult):
            return got
        raw, encoding = got
        try:
            if encoding == "gzip":
                return result(body=decompress(raw, body_limit), gzip=raw)
            if encoding == "deflate":
                wbits = zlib.MAX_WBITS if raw[:1] == b"\x78" else -zlib.MAX_WBITS
                return result(body=decompress(raw, body_limit, wbits))
        except WireError as exc:
            return result(
                error="too_large" if exc.reason == "too_large" else "bad_body", detail=str(exc)
            )
        if encoding not in ("identity", ""):
            return result(error="bad_body", detail=f"unsupported Content-Encoding {encoding!r}")
        return result(body=raw)

    def _route(self, url: str, options: dict[str, Any]) -> http1.Origin | None:
        """The origin for the lean client, or None for aiohttp."""
        if "proxy" in options or url in self._redirecting:
            return None
        parsed = _parsed(url)
        if parsed.raw_user is not None or parsed.scheme not in ("http", "https"):
            return None
        context = options.get("ssl")
        if context is None and parsed.scheme == "https":
            if self._default_tls is None:
                self._default_tls = ssl.create_default_context()
            context = self._default_tls
        return _origin(parsed, context, options.get("server_hostname"))

    async def _get_fast(
        self,
        url: str,
        origin: http1.Origin,
        headers: dict[str, str],
        options: dict[str, Any],
        body_limit: int,
        result: Callable[..., ScrapeResult],
    ) -> ScrapeResult | tuple[bytes, str] | None:
        """The answer's body and Content-Encoding, a failed result, or None for aiohttp."""
        assert self._fast is not None, "start() first"
        answer = await self._fast.request(
            "GET",
            origin,
            _parsed(url).raw_path_qs,
            {**self._base, **headers},
            body_limit=body_limit,
        )
        status = answer.status
        if status in REDIRECTS and options["allow_redirects"] and "location" in answer.headers:
            if len(self._redirecting) >= MAX_REDIRECTING:
                self._redirecting.clear()
            self._redirecting.add(url)
            return None
        if not 200 <= status < 300:
            reason = f" {answer.reason}" if answer.reason else ""
            return result(error="http_status", detail=f"HTTP {status}{reason}")
        if answer.truncated:
            if answer.length is not None:
                return result(
                    error="too_large",
                    detail=f"{answer.length} bytes, body_size_limit {body_limit + 1}",
                )
            return result(
                error="too_large", detail=f"body reaches body_size_limit {body_limit + 1}"
            )
        return answer.body, answer.headers.get("content-encoding", "identity").lower().strip()

    async def _get(
        self,
        url: str,
        headers: dict[str, str],
        options: dict[str, Any],
        body_limit: int,
        result: Callable[..., ScrapeResult],
    ) -> ScrapeResult | tuple[bytes, str]:
        """`_get_fast` through aiohttp."""
        assert self._session is not None, "start() first"
        async with self._session.get(_parsed(url), headers=headers, **options) as resp:
            if not 200 <= resp.status < 300:
                reason = f" {resp.reason}" if resp.reason else ""
                return result(error="http_status", detail=f"HTTP {resp.status}{reason}")
            if resp.content_length is not None and resp.content_length > body_limit:
                return result(
                    error="too_large",
                    detail=f"{resp.content_length} bytes, body_size_limit {body_limit + 1}",
                )
            # Of a known length within the limit (checked above): one read.
            known = resp.content_length is not None
            raw = await (resp.read() if known else self._read_bounded(resp, body_limit))
            if raw is None:
                return result(
                    error="too_large", detail=f"body reaches body_size_limit {body_limit + 1}"
                )
            return raw, resp.headers.get("Content-Encoding", "identity").lower().strip()

    @staticmethod
    async def _read_bounded(resp: aiohttp.ClientResponse, body_limit: int) -> bytes | None:
        """A body of unknown length, or None as soon as it exceeds `body_limit` bytes."""
        chunks = []
        size = 0
        async for chunk in resp.content.iter_chunked(65536):
            size += len(chunk)
            if size > body_limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)
