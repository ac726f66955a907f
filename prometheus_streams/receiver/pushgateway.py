"""Talk to the Pushgateway: group URLs and PUT requests."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp

from prometheus_streams import __version__
from prometheus_streams.config import PushGatewayConfig
from prometheus_streams.wire import CONTENT_TYPE

# Statuses that will not change by retrying the same body.
PERMANENT_STATUSES = frozenset({400, 413, 422})


def _segment(name: str, value: str) -> str:
    # The Pushgateway splits the path on `/`, so such values (and empty ones)
    # travel base64url-encoded; everything else is percent-encoded.
    if not value:
        return f"{name}@base64/="
    if "/" in value or value in (".", ".."):  # dot segments would be collapsed by URL code
        return f"{name}@base64/{base64.urlsafe_b64encode(value.encode()).decode()}"
    return f"{name}/{quote(value, safe='')}"


def group_path(job: str, instance: str, publisher: str | None) -> str:
    """The path of a grouping key: /metrics/job/<job>/instance/<i>[/publisher/<p>]."""
    parts = ["/metrics", _segment("job", job), _segment("instance", instance)]
    if publisher is not None:
        parts.append(_segment("publisher", publisher))
    return "/".join(parts)


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
    """A keep-alive HTTP client for one Pushgateway."""

    def __init__(self, config: PushGatewayConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the connection pool."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.config.concurrency),
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            headers={"User-Agent": f"prometheus-streams/{__version__}"},
        )

    async def close(self) -> None:
        """Close the pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def put(self, path: str, body: bytes) -> PushResult:
        """PUT a body to a group, replacing everything the group held."""
        assert self._session is not None, "start() first"
        try:
            async with self._session.put(
                self.config.url + path, data=body, headers={"Content-Type": CONTENT_TYPE}
            ) as resp:
                text = await resp.text(errors="replace")
                return PushResult(resp.status, text.strip()[:500])
        except TimeoutError:
            return PushResult(0, f"no answer within {self.config.timeout:g}s")
        except aiohttp.ClientError as exc:
            return PushResult(0, f"{type(exc).__name__}: {exc}")
