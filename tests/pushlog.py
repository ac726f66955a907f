"""What reached the Pushgateway, push by push: numbered scrape targets and a recording proxy.

`SeqTargets` serves many targets from one aiohttp server, each page carrying
`test_seq N` where N counts that target's scrapes. `PushRecorder` sits in
front of a real Pushgateway, forwards every request and notes each PUT's
group and `test_seq`, with its arrival time: pushed twice, out of order and
the longest gap between two pushes of a group are then plain to see.
"""

from __future__ import annotations

import gzip
import itertools
import re
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from servers import HOST, serve_app

__all__ = ["Push", "PushRecorder", "SeqTargets"]

_SEQ = re.compile(rb"^test_seq(?:\{[^}]*\})? (\S+)", re.MULTILINE)


class SeqTargets:
    """`count` scrape targets on one server: /metrics/<name> answers `test_seq <n>`."""

    def __init__(self, count: int) -> None:
        self.names = [f"t{i}" for i in range(count)]
        self.scrapes: dict[str, int] = dict.fromkeys(self.names, 0)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.scrapes:
            raise web.HTTPNotFound()
        self.scrapes[name] += 1
        body = f"# TYPE test_seq gauge\ntest_seq {self.scrapes[name]}\n"
        return web.Response(text=body, content_type="text/plain")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics/{name}", self._handle)
        self._runner, self.port = await serve_app(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def jobs(self, job: str = "node") -> dict[str, object]:
        """The poller's `jobs` section scraping every target."""
        targets = [{"name": n, "url": f"http://{HOST}:{self.port}/metrics/{n}"} for n in self.names]
        return {job: {"targets": targets}}


@dataclass(frozen=True)
class Push:
    """One PUT that the Pushgateway accepted."""

    instance: str
    seq: int
    at: float  # time.monotonic() of the answer


class PushRecorder:
    """A pass-through HTTP proxy to `upstream` that records every accepted PUT."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.pushes: list[Push] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner, self.port = await serve_app(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        async with self._session.request(
            request.method, self.upstream + request.rel_url.raw_path_qs, data=body, headers=headers
        ) as response:
            answer = await response.read()
            status = response.status
            content_type = response.headers.get("Content-Type")
        if request.method == "PUT" and 200 <= status < 300:
            self._note(request.path, request.headers.get("Content-Encoding"), body)
        reply = web.Response(status=status, body=answer)
        if content_type:
            reply.headers["Content-Type"] = content_type
        return reply

    def _note(self, path: str, encoding: str | None, body: bytes) -> None:
        parts = path.split("/")
        if "instance" not in parts:
            return
        instance = parts[parts.index("instance") + 1]
        if encoding == "gzip":
            body = gzip.decompress(body)
        match = _SEQ.search(body)
        if match is not None:
            self.pushes.append(Push(instance, int(float(match.group(1))), time.monotonic()))

    # -- what the record shows -----------------------------------------------

    def by_instance(self) -> dict[str, list[Push]]:
        """Every instance's pushes in arrival order."""
        grouped: dict[str, list[Push]] = {}
        for push in self.pushes:
            grouped.setdefault(push.instance, []).append(push)
        return grouped

    def twice(self) -> list[tuple[str, int]]:
        """(instance, seq) pushed more than once."""
        seen: set[tuple[str, int]] = set()
        again = []
        for push in self.pushes:
            key = (push.instance, push.seq)
            if key in seen:
                again.append(key)
            seen.add(key)
        return again

    def out_of_order(self) -> list[tuple[str, int, int]]:
        """(instance, seq, the seq pushed before it) where a group went back in time."""
        back = []
        for instance, pushes in self.by_instance().items():
            for before, push in itertools.pairwise(pushes):
                if push.seq < before.seq:
                    back.append((instance, push.seq, before.seq))
        return back

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time between two pushes of one group, over pushes in [start, end]."""
        longest = 0.0
        for pushes in self.by_instance().values():
            times = [p.at for p in pushes if start <= p.at <= end]
            for a, b in itertools.pairwise(times):
                longest = max(longest, b - a)
        return longest

    def newest(self) -> dict[str, int]:
        """The highest seq pushed per instance."""
        return {i: max(p.seq for p in pushes) for i, pushes in self.by_instance().items()}
