"""Talk to the Pushgateway: group URLs and PUT requests."""

from __future__ import annotations

import base64
import functools
import ssl
from dataclasses import dataclass
from urllib.parse import quote

from prometheus_streams import __version__
from prometheus_streams.config import PushGatewayConfig
from prometheus_streams.receiver.http import HTTPError, HTTPPool
from prometheus_streams.receiver.stale import GroupTimes, PushTimeParser
from prometheus_streams.wire import CONTENT_TYPE

# Statuses that will not change by retrying the same body.
PERMANENT_STATUSES = frozenset({400, 413, 422})
# The listing of push times: text 0.0.4, read in pieces of this size.
LISTING_ACCEPT = "text/plain; version=0.0.4"
LISTING_CHUNK = 64 * 1024


def _segment(name: str, value: str) -> str:
    # The Pushgateway splits the path on `/`, so such values (and empty ones)
    # travel base64url-encoded; everything else is percent-encoded.
    if not value:
        return f"{name}@base64/="
    if "/" in value or value in (".", ".."):  # dot segments would be collapsed by URL code
        return f"{name}@base64/{base64.urlsafe_b64encode(value.encode()).decode()}"
    return f"{name}/{quote(value, safe='')}"


def group_path(
    job: str,
    instance: str,
    publisher: str | None,
    labels: tuple[tuple[str, str], ...] = (),
) -> str:
    """The grouping key path: /metrics/job/<j>/instance/<i>[/<label>/<v>...][/publisher/<p>]."""
    size = len(job) + len(instance) + len(publisher or "")
    if labels or size > CACHED_KEY_CHARS:
        # Kept for short keys only: what publishers send bounds the memory.
        return _group_path(job, instance, publisher, labels)
    return _cached_group_path(job, instance, publisher)


CACHED_KEY_CHARS = 256


@functools.lru_cache(maxsize=32768)  # targets, across every publisher
def _cached_group_path(job: str, instance: str, publisher: str | None) -> str:
    return _group_path(job, instance, publisher, ())


def _group_path(
    job: str,
    instance: str,
    publisher: str | None,
    labels: tuple[tuple[str, str], ...],
) -> str:
    parts = ["/metrics", _segment("job", job), _segment("instance", instance)]
    parts.extend(_segment(name, value) for name, value in labels)
    if publisher is not None:
        parts.append(_segment("publisher", publisher))
    return "/".join(parts)


def path_of_labels(labels: dict[str, str]) -> str | None:
    """The path of a group as the Pushgateway lists it; None without job."""
    if "job" not in labels:
        return None
    rest = [(k, v) for k, v in sorted(labels.items()) if k not in ("job", "instance", "publisher")]
    parts = ["/metrics", _segment("job", labels["job"])]
    if "instance" in labels:
        parts.append(_segment("instance", labels["instance"]))
    parts.extend(_segment(k, v) for k, v in rest)
    if "publisher" in labels:
        parts.append(_segment("publisher", labels["publisher"]))
    return "/".join(parts)


def ssl_context(config: PushGatewayConfig) -> ssl.SSLContext | None:
    """How to check the Pushgateway's certificate: the configured CA, or the system's."""
    if not config.url.startswith("https:"):
        return None
    context = ssl.create_default_context(cafile=config.ca)
    if config.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def auth_headers(config: PushGatewayConfig) -> dict[str, str]:
    """The Authorization header for basic auth or a bearer token, if configured."""
    if config.username is not None and config.password is not None:
        pair = f"{config.username}:{config.password.reveal()}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    if config.bearer_token is not None:
        return {"Authorization": f"Bearer {config.bearer_token.reveal()}"}
    return {}


@dataclass(frozen=True)
class PushResult:
    """What the Pushgateway said; `status` 0 means no answer at all."""

    status: int
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Any 2xx is success."""
        return 200 <= self.status < 300

    @property
    def permanent(self) -> bool:
        """Retrying the same body cannot succeed."""
        return self.status in PERMANENT_STATUSES


class PushGateway:
    """One keep-alive HTTP client for one Pushgateway: pushes, the listing and deletes."""

    def __init__(self, config: PushGatewayConfig) -> None:
        self.config = config
        self._pool: HTTPPool | None = None

    async def start(self) -> None:
        """Open the connection pool."""
        self._pool = HTTPPool(
            self.config.url,
            limit=self.config.concurrency,
            timeout=self.config.timeout,
            ssl_context=ssl_context(self.config),
            headers={
                "User-Agent": f"prometheus-streams/{__version__}",
                **auth_headers(self.config),
            },
        )

    async def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def put(self, path: str, body: bytes) -> PushResult:
        """PUT a body to a group, replacing everything the group held."""
        return await self._request("PUT", path, body, {"Content-Type": CONTENT_TYPE})

    async def delete(self, path: str) -> PushResult:
        """Delete a whole group."""
        return await self._request("DELETE", path, b"", {})

    async def push_times(self) -> list[GroupTimes]:
        """Every group's labels and push times, streamed from the Pushgateway's /metrics.

        Raises TimeoutError, OSError or HTTPError when the listing cannot be read.
        """
        assert self._pool is not None, "start() first"
        parser = PushTimeParser()
        headers = {"Accept": LISTING_ACCEPT, "Accept-Encoding": "identity"}
        # A Pushgateway holding millions of series takes a while to write them
        # all: the timeout bounds each wait for more, not the whole listing.
        async with self._pool.stream("/metrics", headers, chunk_size=LISTING_CHUNK) as response:
            if response.status != 200:
                raise HTTPError(f"listing push times: HTTP {response.status}")
            async for chunk in response:
                parser.feed(chunk)
                if parser.complete:
                    break  # the rest is every pushed series: not needed, not read
        return parser.close()

    async def _request(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> PushResult:
        assert self._pool is not None, "start() first"
        try:
            response = await self._pool.request(method, path, body, headers)
        except TimeoutError:
            return PushResult(0, f"no answer within {self.config.timeout:g}s")
        except (OSError, HTTPError) as exc:
            return PushResult(0, f"{type(exc).__name__}: {exc}")
        text = response.body.decode("utf-8", errors="replace")
        return PushResult(response.status, text.strip()[:500])
