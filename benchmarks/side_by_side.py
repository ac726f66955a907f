"""Pollers of different code or settings side by side, with vmagent, on the same targets.

The figures of one `benchmarks/run` move by up to 15 % with the machine's
load; a change of a few percent shows only when both versions run at the
same time. Each poller publishes to the same nats-server (its own stream
subjects do not matter: CPU per sample is what is compared); vmagent and a
VictoriaMetrics run beside them as the yardstick.

    .venv/bin/python -m benchmarks.side_by_side before=rev:8e2d86e after=
    .venv/bin/python -m benchmarks.side_by_side asyncio=env:PROMETHEUS_STREAMS_LOOP=asyncio uvloop=

A poller is NAME=SPEC: `rev:REV` runs the package as of git revision REV
(extracted to the work directory, with this tree's built C extension), an
`env:K=V,...` runs this tree with those environment variables, empty runs this
tree as it is. Prints CPU ms per 1,000 samples (user and system) per window.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import vmagent
from benchmarks.procs import CLOCK_TICKS, Processes
from benchmarks.services import (
    REPO,
    StreamSettings,
    start_nats,
    start_poller,
    start_targets,
    start_victoria_metrics,
    start_vmagent,
    target_urls,
)

# Runs the CLI of the package under `path`, not the editable install's.
LAUNCHER = """\
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, {path!r})
import prometheus_streams.cli as cli
assert cli.__file__.startswith({path!r}), cli.__file__
sys.exit(cli.main(sys.argv[1:]))
"""


def _ticks(pid: int) -> tuple[float, float]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def _speedups_for(package: Path) -> None:
    """This tree's built C pass when the revision's C sources are the same, else built from them."""
    ours = REPO / "prometheus_streams"
    sources = sorted(package.glob("_speedups*.[ch]"))
    same = [p.name for p in sources] == sorted(p.name for p in ours.glob("_speedups*.[ch]"))
    if same and all(p.read_bytes() == (ours / p.name).read_bytes() for p in sources):
        for built in ours.glob("_speedups*.so"):
            shutil.copy(built, package)
        return
    # A C change measured against its parent must not run the new C on both sides.
    setup = (
        "from setuptools import Extension, setup\n"
        "setup(ext_modules=[Extension('prometheus_streams._speedups', "
        f"{[f'prometheus_streams/{p.name}' for p in sources if p.suffix == '.c']})])\n"
    )
    (package.parent / "setup.py").write_text(setup)
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=package.parent,
        capture_output=True,
        check=True,
    )


def _launcher(work: Path, name: str, rev: str) -> list[str]:
    """A command running the package as of `rev`, extracted under `work`."""
    tree = work / f"tree-{name}"
    tree.mkdir()
    archive = subprocess.run(  # noqa: S603 - fixed argv, a revision the user named
        ["git", "-C", str(REPO), "archive", rev, "prometheus_streams"],  # noqa: S607
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    _speedups_for(tree / "prometheus_streams")
    script = work / f"launch-{name}.py"
    script.write_text(LAUNCHER.format(path=str(tree)))
    return [sys.executable, str(script)]


def main() -> None:
    """Start everything, measure the windows, print them."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("pollers", nargs="+", metavar="NAME=SPEC")
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--window", type=float, default=20.0, help="seconds")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="prometheus-streams-side-by-side-"))
    procs = Processes(work)
    try:
        targets = start_targets(procs)
        urls = target_urls(targets, args.targets)
        nats = start_nats(procs, work)
        sides: dict[str, tuple[int, Callable[[], float]]] = {}
        for item in args.pollers:
            name, _, spec = item.partition("=")
            launcher = _launcher(work, name, spec[4:]) if spec.startswith("rev:") else None
            saved = dict(os.environ)
            if spec.startswith("env:"):
                # The poller inherits the benchmark's environment.
                os.environ.update(kv.split("=", 1) for kv in spec[4:].split(",") if "=" in kv)
            try:
                poller = start_poller(
                    procs,
                    work,
                    nats,
                    urls,
                    args.interval,
                    StreamSettings(max_msgs_per_subject=1),
                    name=name,
                    launcher=launcher,
                )
            finally:
                os.environ.clear()
                os.environ.update(saved)
            sides[name] = (poller.proc.pid, vmagent.poller_samples(poller))
        store = start_victoria_metrics(procs, work)
        agent = start_vmagent(procs, work, urls, args.interval, store)
        sides["vmagent"] = (agent.proc.pid, vmagent.vmagent_samples(agent))
        time.sleep(2 * args.interval + 3)  # every target scraped by each, and one more round
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


if __name__ == "__main__":
    main()
