"""What one stale sweep's listing of the Pushgateway costs the receiver, two ways.

    .venv/bin/python -m benchmarks.stale_listing [--groups 3000] [--sweeps 10]

Starts a Pushgateway, pushes `--groups` node pages (about 500 series each) as
groups, then lists them in a fresh child process per way, `--sweeps` times:
`json` as the sweep did before (GET /api/v1/metrics, parsed whole) and
`stream` as it does now (push times streamed from /metrics). Prints, per way,
the tracemalloc peak of the first listing, wall and CPU time of the second
(untraced), and the child's RSS before the first and after the last listing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.pages import node_page
from benchmarks.procs import Processes
from benchmarks.services import start_pushgateway
from prometheus_streams.config import PushGatewayConfig
from prometheus_streams.receiver.pushgateway import PushGateway


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _list_json(url: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url + "/api/v1/metrics") as resp,
    ):
        data = await resp.json(content_type=None)
    return len(data["data"])


async def _measure(way: str, url: str, sweeps: int) -> dict[str, Any]:
    gateway = PushGateway(PushGatewayConfig(url=url, timeout=120.0))
    await gateway.start()
    try:

        async def once() -> int:
            if way == "json":
                return await _list_json(url)
            return len(await gateway.push_times())

        rss_before = _rss_kib()
        tracemalloc.start()
        groups = await once()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        t0, cpu0 = time.perf_counter(), time.process_time()
        await once()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        for _ in range(sweeps - 2):
            await once()
        return {
            "way": way,
            "groups": groups,
            "peak_mib": round(peak / 2**20, 1),
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2),
            "rss_before_mib": round(rss_before / 1024, 1),
            "rss_after_mib": round(_rss_kib() / 1024, 1),
        }
    finally:
        await gateway.close()


async def _fill(url: str, groups: int) -> None:
    page = node_page()
    async with aiohttp.ClientSession() as session:
        limit = asyncio.Semaphore(8)

        async def put(i: int) -> None:
            async with (
                limit,
                session.put(
                    f"{url}/metrics/job/node/instance/t{i}/publisher/bench", data=page
                ) as resp,
            ):
                resp.raise_for_status()

        await asyncio.gather(*(put(i) for i in range(groups)))
    # Without the consistency check the Pushgateway answers before it stores.
    gateway = PushGateway(PushGatewayConfig(url=url, timeout=120.0))
    await gateway.start()
    try:
        for _ in range(600):
            if len(await gateway.push_times()) >= groups:
                break
            await asyncio.sleep(1)
    finally:
        await gateway.close()


def main() -> None:
    """Fill a Pushgateway and measure both ways in child processes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--groups", type=int, default=3000)
    parser.add_argument("--sweeps", type=int, default=10)
    parser.add_argument("--measure", choices=("json", "stream"))
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(_measure(args.measure, args.url, args.sweeps))))
        return
    with tempfile.TemporaryDirectory(prefix="stale-listing-") as work:
        procs = Processes(Path(work))
        try:
            gateway = start_pushgateway(procs, Path(work), check=False)  # a fast fill
            asyncio.run(_fill(gateway.url, args.groups))
            for way in ("json", "stream"):
                out = subprocess.run(  # noqa: S603 - this very module, fixed arguments
                    [
                        *(sys.executable, "-m", "benchmarks.stale_listing", "--measure", way),
                        *("--url", gateway.url, "--sweeps", str(args.sweeps)),
                    ],
                    check=False,
                    capture_output=True,
                    text=True,
                )
                print(out.stdout.strip() or f"{way}: failed: {out.stderr.strip()[-2000:]}")
        finally:
            procs.stop_all()


if __name__ == "__main__":
    main()
