"""The synthetic scrape targets: one aiohttp process serving N target paths.

`/node/<i>/metrics` serves the node_exporter-like page and `/big/<i>/metrics`
the 10,000-series page, gzip-compressed when the client accepts gzip (as
node_exporter does); `/clock/<i>/metrics` the node page plus a gauge
`bench_served_ms`, the wall-clock ms when it was served (for scrape ->
queryable latencies). Every request's time is kept per path (the newest few),
and `/-/stats?since=T` returns them, so the benchmark can count late and
missed scrapes from the target's side.

Run: python -m benchmarks.targetserver --port P
"""

from __future__ import annotations

import argparse
import gzip
import time
from collections import deque

from aiohttp import web

from benchmarks import pages

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KEEP_TIMES = 32  # request times kept per path


class Targets:
    """The pages, pre-compressed once, and the request log."""

    def __init__(self) -> None:
        self.bodies = {"node": pages.node_page(), "big": pages.big_page()}
        # node_exporter (Go's compress/gzip) uses the default level, 6.
        self.gzipped = {
            kind: gzip.compress(body, compresslevel=6, mtime=0)
            for kind, body in self.bodies.items()
        }
        self.times: dict[str, deque[float]] = {}
        self.requests = 0

    async def page(self, request: web.Request) -> web.Response:
        """One scrape of one target."""
        kind = request.match_info["kind"]
        if kind != "clock" and kind not in self.bodies:
            raise web.HTTPNotFound()
        now = time.time()
        self.requests += 1
        key = f"{kind}/{request.match_info['index']}"
        times = self.times.get(key)
        if times is None:
            times = self.times[key] = deque(maxlen=KEEP_TIMES)
        times.append(now)
        if kind == "clock":
            body = self.bodies["node"] + b"# TYPE bench_served_ms gauge\nbench_served_ms %d\n" % (
                time.time() * 1000
            )
            zipped = gzip.compress(body, compresslevel=1, mtime=0)
        else:
            body, zipped = self.bodies[kind], self.gzipped[kind]
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            return web.Response(
                body=zipped, headers={"Content-Type": CONTENT_TYPE, "Content-Encoding": "gzip"}
            )
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def stats(self, request: web.Request) -> web.Response:
        """Request times per path since `since` (wall-clock seconds); with `summary`, a count."""
        since = float(request.query.get("since", "0"))
        if request.query.get("summary"):
            paths = sum(1 for v in self.times.values() if v and v[-1] >= since)
            return web.json_response({"requests": self.requests, "paths": paths})
        times = {k: [t for t in v if t >= since] for k, v in self.times.items()}
        return web.json_response({"requests": self.requests, "times": times})

    async def ready(self, request: web.Request) -> web.Response:
        """200 once serving."""
        return web.Response(text="ok")


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    targets = Targets()
    app = web.Application()
    app.router.add_get("/{kind}/{index}/metrics", targets.page)
    app.router.add_get("/-/stats", targets.stats)
    app.router.add_get("/-/ready", targets.ready)
    # A deep backlog: Prometheus opens one connection per target at once.
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=4096)


if __name__ == "__main__":
    main()
