"""Command line: parse arguments, load the config, run a role until signalled."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, Counter, disable_created_metrics

from prometheus_streams import __version__, config, event_loop, logs
from prometheus_streams.check_config import describe
from prometheus_streams.enroll_command import add_enroll, run_enroll
from prometheus_streams.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, ConfigError
from prometheus_streams.monitor import MonitorServer, build_info, standard_collectors
from prometheus_streams.role import Role
from prometheus_streams.secret import redact_url
from prometheus_streams.security import tls
from prometheus_streams.service import (
    EXPECTED_FAILURES,
    Supervisor,
    TaskFailedError,
    install_signal_handlers,
    notify_when_ready,
)

log = logging.getLogger("prometheus_streams")

DEFAULT_CONFIG = "/etc/prometheus-streams/prometheus-streams.yaml"

DESCRIPTION = """\
Federate Prometheus metrics over NATS JetStream.

A poller in each datacenter scrapes its targets and publishes every scrape to
JetStream; a central receiver consumes them and pushes them to a Pushgateway
that the central Prometheus scrapes (honor_labels: true).
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with help for every command."""
    parser = argparse.ArgumentParser(
        prog="prometheus-streams",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(parser, argparse.SUPPRESS)
    parser.set_defaults(config=DEFAULT_CONFIG, debug=False, pid=None, log_format=None)
    parser.add_argument("--version", action="version", version=f"prometheus-streams {__version__}")
    # The same options after the command, as operators type them
    # (`check-config --config FILE`); SUPPRESS keeps one placed before it.
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser(
        "poller",
        parents=[common],
        help="scrape the configured jobs and publish every scrape to JetStream",
        description="Scrape every target of `jobs` on its schedule, add up, "
        "scrape_duration_seconds and scrape_samples_scraped, and publish each scrape to "
        "the JetStream stream of `poller_stream`. Keeps scraping while NATS is away, "
        "holding the newest scrape per target. Serves its own metrics on `monitor_port`.",
    )
    commands.add_parser(
        "receiver",
        parents=[common],
        help="consume scrapes from JetStream into the Pushgateway and/or remote-write stores",
        description="Fetch scrapes from the durable consumer of `receiver_stream`, drop "
        "those older than `max_age`, PUT the newest of each target to `push_gateway` "
        "and write every scrape, at its own time, to each `remote_write` store, "
        "acknowledging a message only after the destination accepted it. Each output has "
        "its own durable consumer. Several receivers may share them: the Pushgateway's "
        "work is shared, a remote-write output is written by one receiver at a time "
        "(the others stand by).",
    )
    commands.add_parser(
        "check-config",
        parents=[common],
        help="validate the configuration and print what it resolves to",
        description="Load and validate the configuration, print it resolved (target names, "
        "durations in seconds, defaults filled in) and the roles it can run. Exits 2 "
        "listing every problem when it is not valid.",
    )
    add_enroll(commands)
    commands.add_parser("version", help="print the version")
    return parser


def _add_common(parser: argparse.ArgumentParser, default: Any) -> None:
    """--config, --debug, --pid and --log-format, accepted before and after the command."""
    parser.add_argument(
        "--config",
        default=default,
        metavar="FILE",
        help=f"YAML configuration file (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument("--debug", action="store_true", default=default, help="log at debug level")
    parser.add_argument(
        "--pid", default=default, metavar="FILE", help="write the process id to FILE while running"
    )
    parser.add_argument(
        "--log-format",
        default=default,
        choices=logs.FORMATS,
        help="stderr as text (default) or JSON lines with structured fields (key log_format)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `prometheus-streams` command."""
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"prometheus-streams {__version__}")
        return EXIT_OK
    if args.command == "enroll":
        return run_enroll(args)
    logs.setup(logs.level_for(args.debug), fmt=args.log_format or "text")
    try:
        cfg = config.load(args.config)
        if args.command in config.ROLES:
            cfg.require(args.command)
            # Certificate problems are config problems: say so now, naming the file.
            tls.require_usable(cfg, args.command)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    log_format = args.log_format or cfg.log_format
    logs.setup(logs.level_for(args.debug), fmt=log_format)
    for warning in cfg.warnings:
        log.warning("%s", warning)
    if args.command == "check-config":
        return check_config(cfg)
    try:
        logs.setup(logs.level_for(args.debug or cfg.debug), cfg.logfile, log_format)
    except OSError as exc:
        print(f"error: {cfg.path}: logfile: cannot open {cfg.logfile}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    pid_file = Path(args.pid) if args.pid else None
    try:
        if pid_file is not None:
            pid_file.write_text(f"{os.getpid()}\n", encoding="ascii")
        return event_loop.run(run_role(args.command, cfg, pid_file))
    except OSError as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    finally:
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)


def check_config(cfg: config.Config) -> int:
    """Print the resolved configuration and which roles it can run."""
    verdicts: dict[str, list[str]] = {}
    for role in config.ROLES:
        problems = cfg.problems_for(role)
        if not problems:
            try:
                tls.require_usable(cfg, role)  # the files, as starting the role would
            except ConfigError as exc:
                problems = exc.problems
        verdicts[role] = problems
    resolved = describe(cfg)
    resolved["fit_for"] = [role for role, problems in verdicts.items() if not problems]
    print(yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True), end="")
    for role, problems in verdicts.items():
        verdict = "fit" if not problems else "not fit: " + "; ".join(problems)
        print(f"# {role}: {verdict}")
    for note in config_notes(cfg):
        print(f"# {note}")
    return EXIT_OK if resolved["fit_for"] else EXIT_USAGE


def config_notes(cfg: config.Config) -> list[str]:
    """What an operator migrating from the original should know about this config."""
    notes = []
    shared = config.shared_identity(cfg.identity)
    if shared:
        notes.append(f"WARNING: identity: {shared}")
    brokers = cfg.management.brokers
    if brokers:
        notes.append(
            "management.brokers: in the original these were Choria brokers; here they are "
            "NATS servers for a separate management connection (status, pause, resume as a "
            f"NATS micro service), reached with the stream's auth: "
            f"{', '.join(redact_url(url) for url in brokers)}. "
            "Remove the key to serve management on the stream's own connection."
        )
    return notes


def _new_role(command: str, cfg: config.Config, registry: CollectorRegistry) -> Role:
    if command == "poller":
        from prometheus_streams.poller.app import Poller

        return Poller(cfg, registry, monitor_port=cfg.monitor_port)
    from prometheus_streams.receiver.app import Receiver

    return Receiver(cfg, registry)


def _reloader(
    command: str, cfg: config.Config, role: Role, registry: CollectorRegistry
) -> Callable[[], object]:
    """What SIGHUP, POST /api/v1/reload and management's reload do: load the file again;
    a bad one leaves the running config alone and is answered with its errors."""
    reloads = Counter(
        "prometheus_streams_config_reloads_total",
        "SIGHUP configuration reloads by result",
        ["result"],
        registry=registry,
    )

    def reload(who: str = "SIGHUP") -> dict[str, Any]:
        try:
            new = config.load(cfg.path)
            new.require(command)
        except ConfigError as exc:
            reloads.labels("failure").inc()
            log.error(
                "configuration not reloaded (%s), the running one stays: %s",
                who,
                "; ".join(exc.problems),
            )
            return {"reloaded": False, "errors": list(exc.problems)}
        for warning in new.warnings:
            log.warning("%s", warning)
        role.reload(new)
        reloads.labels("success").inc()
        log.info("configuration reloaded from %s (%s)", cfg.path, who)
        return {"reloaded": True, "errors": [], "warnings": list(new.warnings)}

    role.reloader = reload
    return reload


async def _start_monitor(
    cfg: config.Config, registry: CollectorRegistry, role: Role
) -> MonitorServer | None:
    """Serve /metrics and the status page; raises OSError when the port is taken."""
    if not cfg.monitor_port:
        return None
    monitor = MonitorServer(
        registry,
        cfg.monitor_address,
        cfg.monitor_port,
        role,
        allow_remote_control=cfg.management.http_remote,
    )
    await monitor.start()
    return monitor


async def run_role(command: str, cfg: config.Config, pid_file: Path | None = None) -> int:
    """Run the poller or the receiver until SIGTERM/SIGINT."""
    # `_created` series would double what the Pushgateway stores for our own job.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    standard_collectors(registry)
    build_info(registry, command, cfg.identity)
    role = _new_role(command, cfg, registry)
    stop = asyncio.Event()

    def force_exit() -> None:
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)

    install_signal_handlers(stop, _reloader(command, cfg, role, registry), role.ready, force_exit)
    try:
        monitor = await _start_monitor(cfg, registry, role)
    except OSError as exc:
        log.error(
            "%s: monitor_port: cannot listen on %s:%d: %s",
            cfg.path,
            cfg.monitor_address,
            cfg.monitor_port,
            exc.strerror or exc,
        )
        return EXIT_FAILURE
    log.info("prometheus-streams %s %s starting as %s", __version__, command, cfg.identity)
    # Beside the role, not in it: a crash here is logged by the supervisor's callback.
    process_tasks = Supervisor("process")
    process_tasks.spawn(notify_when_ready(role.ready, stop), "notify-ready")
    if command == "receiver":
        # Start-up's objects (modules, config) out of the cyclic GC's reach, and
        # fewer young collections: a scrape makes many short-lived tasks and futures.
        # Here, once per process: a Receiver started in a test's process leaves its GC be.
        gc.freeze()
        gc.set_threshold(10_000, 10, 10)
    try:
        await role.run(stop)
    except EXPECTED_FAILURES as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    except TaskFailedError as exc:
        log.error("stopped after a failure: %s", exc)
        return EXIT_FAILURE
    finally:
        await process_tasks.cancel_all()
        if monitor is not None:
            await monitor.stop()
    log.info("%s stopped cleanly", command)
    return EXIT_OK
