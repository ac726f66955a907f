"""Prometheus' http_sd and dns_sd: target lists fetched or resolved on a refresh interval.

A refresh that fails (or answers nonsense) keeps the last good targets of that
config, is counted, and is logged once until it changes or recovers.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

import aiohttp

from prometheus_streams.config import Job, Target
from prometheus_streams.config.model import DNSSD, HTTPSD
from prometheus_streams.poller import LOGGER_NAME
from prometheus_streams.poller.discovery import DiscoveryError, parse_target_groups
from prometheus_streams.poller.dns import DNSError, SRVRecord, query, system_nameserver
from prometheus_streams.poller.scraper import USER_AGENT, request_options
from prometheus_streams.transport.bounded import read_at_most

log = logging.getLogger(LOGGER_NAME)

MECHANISMS = ("http", "dns")
HTTP_SD_TIMEOUT = 30.0
MAX_HTTP_SD_BYTES = 16 * 1024 * 1024


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def dns_meta(name: str, srv_target: str = "", srv_port: str = "") -> tuple[tuple[str, str], ...]:
    """Prometheus' dns_sd labels: the SRV ones empty for A and AAAA (the target keeps its dot)."""
    return (
        ("__meta_dns_mx_record_target", ""),  # MX lookups are not supported
        ("__meta_dns_name", name),
        ("__meta_dns_srv_record_port", srv_port),
        ("__meta_dns_srv_record_target", srv_target),
    )


class RemoteDiscovery:
    """Refreshes one job's http_sd and dns_sd configs, each on its own interval."""

    def __init__(
        self,
        job: Job,
        on_change: Callable[[str, tuple[Target, ...]], None],
        on_error: Callable[[str, str, str], None],
    ) -> None:
        self.job = job
        self._on_change = on_change
        self._on_error = on_error
        self._results: dict[int, tuple[Target, ...]] = {}
        self._last: tuple[Target, ...] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        """Refresh every config until cancelled."""
        polls: list[Awaitable[None]] = []
        for sd in self.job.http_sd:
            polls.append(self._poll(len(polls), "http", sd.url, sd.refresh_interval, sd))
        for dns in self.job.dns_sd:
            where = f"{dns.type} {', '.join(dns.names)}"
            polls.append(self._poll(len(polls), "dns", where, dns.refresh_interval, dns))
        if self.job.http_sd:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        try:
            await asyncio.gather(*polls)
        finally:
            if self._session is not None:
                await self._session.close()

    async def _poll(
        self, index: int, mechanism: str, where: str, interval: float, sd: HTTPSD | DNSSD
    ) -> None:
        failing = ""
        while True:
            try:
                if isinstance(sd, HTTPSD):
                    targets = await self._fetch_http(sd)
                else:
                    targets = await self._resolve(sd)
            except DiscoveryError as exc:
                message = str(exc)
                self._on_error(self.job.name, mechanism, message)
                if message != failing:
                    log.error(
                        "%s discovery for job %s: %s; keeping its previous targets",
                        mechanism,
                        self.job.name,
                        message,
                    )
                failing = message
            else:
                if failing:
                    log.info("%s discovery for job %s works again", mechanism, self.job.name)
                failing = ""
                self._results[index] = targets
                self._report()
            await asyncio.sleep(interval)

    def _report(self) -> None:
        merged: dict[str, Target] = {}
        for index in sorted(self._results):
            for target in self._results[index]:
                merged.setdefault(target.name, target)
        targets = tuple(merged[name] for name in sorted(merged))
        if targets != self._last:
            self._last = targets
            self._on_change(self.job.name, targets)

    async def _fetch_http(self, sd: HTTPSD) -> tuple[Target, ...]:
        assert self._session is not None
        try:
            # Inside: a certificate file that went missing is a failed refresh.
            options = request_options(sd)
            headers = {
                "Accept": "application/json",
                "X-Prometheus-Refresh-Interval-Seconds": f"{sd.refresh_interval:g}",
                **options.pop("headers", {}),
            }
            async with asyncio.timeout(HTTP_SD_TIMEOUT):
                async with self._session.get(sd.url, headers=headers, **options) as resp:
                    if resp.status != 200:
                        raise DiscoveryError(f"{sd.url}: HTTP {resp.status} {resp.reason or ''}")
                    if resp.content_type != "application/json":
                        raise DiscoveryError(
                            f"{sd.url}: Content-Type {resp.content_type!r}, "
                            "expected application/json"
                        )
                    body = await read_at_most(resp.content, MAX_HTTP_SD_BYTES)
        except TimeoutError:
            raise DiscoveryError(f"{sd.url}: no answer within {HTTP_SD_TIMEOUT:g}s") from None
        except (aiohttp.ClientError, OSError, ValueError, ssl.SSLError) as exc:
            raise DiscoveryError(f"{sd.url}: {type(exc).__name__}: {exc}") from None
        if len(body) > MAX_HTTP_SD_BYTES:
            raise DiscoveryError(f"{sd.url}: answer larger than {MAX_HTTP_SD_BYTES} bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise DiscoveryError(f"{sd.url}: answer is not UTF-8") from None
        return tuple(parse_target_groups(sd.url, text, self.job, as_json=True, meta="__meta_url"))

    async def _resolve(self, sd: DNSSD) -> tuple[Target, ...]:
        found: dict[str, tuple[tuple[str, str], ...]] = {}
        for name in sd.names:
            try:
                for address, meta in await self._lookup(sd, name):
                    found.setdefault(address, meta)
            except (DNSError, OSError) as exc:
                raise DiscoveryError(f"{sd.type} {name}: {exc}") from None
        job = self.job
        return tuple(
            Target(name=address, url=f"{job.scheme}://{address}{job.metrics_path}", meta=meta)
            for address, meta in found.items()
        )

    async def _lookup(self, sd: DNSSD, name: str) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
        """(host:port, its __meta_dns_* labels) of each record, as Prometheus labels them."""
        if sd.type == "SRV":
            records = await query(sd.nameserver or system_nameserver(), name, "SRV")
            return [
                (
                    _host_port(r.target.rstrip("."), r.port),
                    # Prometheus keeps the record's name as DNS writes it: rooted, with its dot.
                    dns_meta(name, r.target.rstrip(".") + ".", str(r.port)),
                )
                for r in records
                if isinstance(r, SRVRecord) and r.target
            ]
        if sd.nameserver is not None:
            ips = await query(sd.nameserver, name, sd.type)
            return [(_host_port(str(ip), sd.port), dns_meta(name)) for ip in ips]
        family = socket.AF_INET if sd.type == "A" else socket.AF_INET6
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                name, sd.port, family=family, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            # A name that does not exist has no targets, as in Prometheus.
            if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
                return []
            raise
        return [(_host_port(str(info[4][0]), sd.port), dns_meta(name)) for info in infos]
