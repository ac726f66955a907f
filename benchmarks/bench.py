"""`benchmarks/run`: the whole pipeline against its limits and against Prometheus agent mode.

Starts real nats-server, Pushgateway and Prometheus processes, the synthetic
target server and our poller and receiver, all on 127.0.0.1, in a temporary
directory; measures; stops every process it started, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from benchmarks import (
    gateway,
    ha,
    hotpath,
    pipeline,
    poller_relabel,
    report,
    rw_vmagent,
    topology,
    vmagent,
)
from benchmarks.context import BIG_PAGE, BIG_SAMPLES, NODE_PAGE, NODE_SAMPLES, PROFILES, Context
from benchmarks.services import binary, start_targets

SCENARIOS: dict[str, Callable[[Context], None]] = {
    "raw": gateway.raw_scrape,
    "gateway": gateway.gateway_limit,
    "drain": gateway.drain,
    "drain_pinned": gateway.drain_pinned,
    "hotpath": hotpath.hotpath,
    "pipeline": pipeline.pipeline,
    "agent": pipeline.agent,
    "scale": pipeline.scale,
    "recovery": pipeline.recovery,
    "vmagent": vmagent.poller_vs_vmagent,
    "rw_vmagent": rw_vmagent.rw_vmagent,
    "relabel": poller_relabel.poller_relabel,
    "ha": ha.ha,
    "topology": topology.topology,
}


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv of installed tools
            argv, capture_output=True, text=True, timeout=20, check=False
        )
    except OSError as exc:
        return f"unavailable: {exc}"
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) else ""
    )


def _meta(ctx: Context, command: str) -> dict[str, object]:
    return {
        "benchmark": "prometheus-streams",
        "profile": ctx.profile.name,
        "runs": ctx.profile.runs,
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
        },
        "versions": {
            "prometheus-streams": _version([binary("prometheus-streams"), "version"]),
            "nats-server": _version([binary("nats-server"), "--version"]),
            "pushgateway": _version([binary("prometheus-pushgateway"), "--version"]),
            "prometheus": _version([binary("prometheus"), "--version"]),
            # Debian's build prints an empty -version: the package's version instead.
            "vmagent, victoria-metrics": _version(
                ["dpkg-query", "-W", "-f=${Version}", "victoria-metrics"]
            ),
        },
        "pages": {
            "node": {"bytes": len(NODE_PAGE), "samples": NODE_SAMPLES},
            "big": {"bytes": len(BIG_PAGE), "samples": BIG_SAMPLES},
        },
        "stream": {
            "pipeline_and_recovery": {"max_msgs_per_subject": 10, "storage": "file"},
            "drain_and_scale": {"max_msgs_per_subject": 1, "storage": "file"},
        },
        "elapsed_s": round(time.monotonic() - ctx.started, 1),
    }


def _header(meta: dict[str, object]) -> list[str]:
    versions = meta["versions"]
    assert isinstance(versions, dict)
    return [
        f"prometheus-streams benchmark, profile {meta['profile']} ({meta['runs']} runs per "
        f"figure: median, then min - max), {meta['date']}",
        f"machine: {meta['machine']}; took {meta['elapsed_s']}s; 1-min load average at "
        f"scenario starts {meta.get('load_average_at_scenario_start')}",
        *(f"  {name}: {text}" for name, text in versions.items()),
    ]


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen profile and print the report."""
    parser = argparse.ArgumentParser(
        prog="benchmarks/run", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a run of about a minute")
    size.add_argument("--smoke", action="store_true", help="tiny counts, for CI (~30 s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help=f"comma-separated scenarios to run (default all: {','.join(SCENARIOS)})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--vmagent-targets", type=int, metavar="N", help="targets of the vmagent scenario"
    )
    parser.add_argument(
        "--vmagent-interval",
        type=float,
        metavar="S",
        help="scrape interval of the vmagent scenario",
    )
    parser.add_argument(
        "--profile-poller",
        metavar="FILE",
        help="run the poller under cProfile (CPU time), stats to FILE (its CPU figures then "
        "include the profiler's cost)",
    )
    parser.add_argument(
        "--profile-receiver",
        metavar="FILE",
        help="run rw_vmagent's steady-state receiver under cProfile (CPU time), stats to FILE",
    )
    args = parser.parse_args(argv)
    if args.profile_poller and args.profile_receiver:
        parser.error("--profile-poller and --profile-receiver: one at a time")
    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.vmagent_targets is not None:
        profile = dataclasses.replace(profile, vmagent_targets=args.vmagent_targets)
    if args.vmagent_interval is not None:
        profile = dataclasses.replace(profile, vmagent_interval=args.vmagent_interval)
    names = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    command = "benchmarks/run " + " ".join(argv if argv is not None else sys.argv[1:])
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="prometheus-streams-bench-"))
    ctx = Context(profile, work, quiet=False)
    if args.profile_poller:
        stats = Path(args.profile_poller).resolve()
        os.environ["BENCH_PROFILE_OUT"] = str(stats)  # the poller inherits it
        ctx.poller_launcher = [sys.executable, str(Path(__file__).with_name("profiled.py"))]
    if args.profile_receiver:
        os.environ["BENCH_PROFILE_OUT"] = str(Path(args.profile_receiver).resolve())
        ctx.receiver_launcher = [sys.executable, str(Path(__file__).with_name("profiled.py"))]
    failed = False
    loads: dict[str, float] = {}
    try:
        ctx.targets = start_targets(ctx.procs)
        for name in names:
            loads[name] = round(os.getloadavg()[0], 2)
            ctx.log(f"scenario {name} (load average {loads[name]})")
            SCENARIOS[name](ctx)
    except KeyboardInterrupt:
        print("benchmark: interrupted; stopping every process it started", file=sys.stderr)
        failed = True
    except Exception as exc:
        print(f"benchmark: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"benchmark: logs kept in {work}", file=sys.stderr)
        args.keep = failed = True
    finally:
        ctx.procs.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    meta = _meta(ctx, command.strip())
    # Other work on the machine skews every figure: show how busy it was.
    meta["load_average_at_scenario_start"] = loads
    meta["load_average_at_end"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(report.as_json(ctx, meta))
    else:
        print(report.table(ctx, _header(meta)))
    if args.keep:
        print(f"benchmark: work directory {work}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
