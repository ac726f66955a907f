"""The `enroll` command: its arguments and its run, apart from the roles' command line."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from prometheus_streams.errors import EXIT_FAILURE, EXIT_OK

T = TypeVar("T")


def argument(check: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from a checker raising ValueError (usage error, exit 2)."""

    def convert(text: str) -> T:
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def add_enroll(commands: Any) -> None:
    from prometheus_streams.security import certs, enroll, puppetca
    from prometheus_streams.units import parse_duration

    sub = commands.add_parser(
        "enroll",
        help="get a certificate from a Puppet CA into a Puppet ssldir",
        description="Get a certificate for IDENTITY from a Puppet CA, as `puppet ssl bootstrap "
        "--waitforcert` does: fetch the CA certificate (print its fingerprint, or check it "
        "against --ca-fingerprint), make a key, submit a request, wait until the CA signs "
        "it, check it and write the Puppet ssldir layout (certs/ca.pem, "
        "certs/IDENTITY.pem, private_keys/IDENTITY.pem, public_keys/, "
        "certificate_requests/, crl.pem) that `tls: {scheme: puppet}` reads. Safe to run "
        "again: a valid certificate is left alone, an existing key is reused. Exits 0 when "
        "enrolled, 1 on failure or timeout, 2 on bad arguments.",
    )
    sub.add_argument(
        "identity",
        metavar="IDENTITY",
        type=argument(enroll.check_identity),
        help="certificate name (lower case), usually the host's FQDN",
    )
    sub.add_argument(
        "--dir",
        required=True,
        metavar="DIR",
        type=Path,
        help="the ssldir to write, e.g. /etc/prometheus-streams/ssl",
    )
    sub.add_argument(
        "--ca",
        default=enroll.DEFAULT_CA,
        metavar="HOST:PORT",
        type=argument(puppetca.parse_address),
        help=f"the Puppet CA (default: {enroll.DEFAULT_CA})",
    )
    sub.add_argument(
        "--ca-fingerprint",
        metavar="SHA256",
        type=argument(certs.normalize_fingerprint),
        help="trust the CA only if its certificate has this SHA256 fingerprint",
    )
    sub.add_argument(
        "--wait",
        default=enroll.DEFAULT_WAIT,
        metavar="DURATION",
        type=argument(parse_duration),
        help="how long to wait for the CA to sign (default: 30m; 0: do not wait)",
    )


def run_enroll(args: argparse.Namespace) -> int:
    """The `enroll` command: progress on stdout, one error line on stderr."""
    from prometheus_streams.security.enroll import EnrollError, EnrollOptions, enroll

    host, port = args.ca
    options = EnrollOptions(
        identity=args.identity,
        ssl_dir=args.dir,
        ca_host=host,
        ca_port=port,
        fingerprint=args.ca_fingerprint,
        wait=args.wait,
    )

    def say(message: str) -> None:
        print(message, flush=True)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await enroll(options, say, stop)

    try:
        asyncio.run(run())
    except EnrollError as exc:
        print(f"error: enroll {args.identity}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"error: enroll {args.identity}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
