"""Receivers of different code writing remotely side by side, with vmagent, on the same targets.

Like side_by_side.py for pollers: one poller publishes, each receiver has a
remote-write output of its own name (so a consumer of its own: each writes
every scrape) into a VictoriaMetrics of its own, and vmagent scrapes the same
targets into another, as the yardstick. Prints, per window, each receiver's
CPU ms per 1,000 samples it wrote and vmagent's per 1,000 samples scraped.

    .venv/bin/python -m benchmarks.rw_side_by_side before=rev:1cd075e after=
    .venv/bin/python -m benchmarks.rw_side_by_side default= blocks=queue:10000

A receiver is NAME=SPEC: `rev:REV` runs the package as of git revision REV,
`queue:N` this tree with `max_samples_per_send: N` (vmagent's own block is
up to 10,000 rows), `env:K=V,...` this tree with those environment
variables, empty this tree with the output's defaults.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import rw_vmagent, vmagent
from benchmarks.procs import Processes
from benchmarks.services import (
    Service,
    StreamSettings,
    binary,
    start_nats,
    start_poller,
    start_rw_receiver,
    start_targets,
    start_victoria_metrics,
    start_vmagent,
    target_urls,
)
from benchmarks.side_by_side import _launcher, _ticks


def main() -> None:
    """Start everything, measure the windows, print them."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "receivers",
        nargs="+",
        metavar="NAME=SPEC",
        help="SPEC: rev:REV, queue:N, env:K=V,... or empty",
    )
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--window", type=float, default=20.0, help="seconds")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="prometheus-streams-rw-side-by-side-"))
    procs = Processes(work)
    try:
        targets = start_targets(procs)
        urls = target_urls(targets, args.targets)
        nats = start_nats(procs, work)
        sides: dict[str, tuple[int, Callable[[], float]]] = {}
        for item in args.receivers:
            name, _, spec = item.partition("=")
            launcher = _launcher(work, name, spec[4:]) if spec.startswith("rev:") else None
            if spec.startswith("env:"):
                launcher = ["env", *spec[4:].split(","), binary("prometheus-streams")]
            queue = {"max_samples_per_send": int(spec[6:])} if spec.startswith("queue:") else None
            store = start_victoria_metrics(procs, work, f"vm-{name}")
            receiver = start_rw_receiver(
                procs, work, nats, store, name=name, launcher=launcher, output=name, queue=queue
            )
            sides[name] = (receiver.proc.pid, _written(receiver))
        start_poller(procs, work, nats, urls, args.interval, StreamSettings(max_msgs_per_subject=1))
        store = start_victoria_metrics(procs, work, "vm-vmagent")
        agent = start_vmagent(procs, work, urls, args.interval, store)
        sides["vmagent"] = (agent.proc.pid, vmagent.vmagent_samples(agent))
        time.sleep(2 * args.interval + 3)  # every target written by each, and one more round
        for window in range(args.windows):
            before = {name: (_ticks(pid), samples()) for name, (pid, samples) in sides.items()}
            time.sleep(args.window)
            shown = []
            for name, (pid, samples) in sides.items():
                (user0, system0), count0 = before[name]
                user1, system1 = _ticks(pid)
                per = 1e6 / max(1.0, samples() - count0)
                user, system = (user1 - user0) * per, (system1 - system0) * per
                shown.append(f"{name} {user + system:.2f} (user {user:.2f}, system {system:.2f})")
            print(f"window {window}: " + "; ".join(shown), flush=True)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def _written(receiver: Service) -> Callable[[], float]:
    return lambda: rw_vmagent.written(receiver)


if __name__ == "__main__":
    main()
