"""The seam between the receiver's core and where the scrapes go.

The core fetches messages, decodes and checks their headers, keeps one
message per group or all of them (as the output asks), waits for the
group's turn, drops what is older than max_age, and hands each message to
the output as a `Delivery`. The output answers with an `Outcome`; the core
acks, naks with a delay or terminates the message accordingly
(`receiver/acks.py`), so an output never touches NATS acks itself.

To add an output: write a class that satisfies `Output` in a module of its
own under `receiver/outputs/`, declare its metrics there on the registry it
is given, and build it in `receiver/outputs/__init__.py`. Nothing else in
the receiver needs to change.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from nats.aio.msg import Msg
from nats.errors import Error as NATSError

from prometheus_streams import wire
from prometheus_streams.config import Config, StreamConfig
from prometheus_streams.config.budget import SeriesBudgetConfig
from prometheus_streams.receiver.checks import BodyChecker
from prometheus_streams.receiver.series import SeriesTracker
from prometheus_streams.transport import Connection

MAX_NAK_DELAY = 30.0


class Wants(enum.Enum):
    """Which messages of a fetched batch an output is given."""

    # The newest scrape of each group (publisher, job, instance); older ones in
    # the batch are acked as superseded. Right for a store of current values
    # such as the Pushgateway.
    NEWEST_PER_GROUP = "newest_per_group"
    # Every scrape, one group's in scrape order. Right for a store of samples
    # over time, such as Prometheus remote write.
    EVERY_SCRAPE = "every_scrape"


class Action(enum.Enum):
    """What becomes of a message once the output has answered."""

    DELIVERED = "delivered"  # stored: acked (in a batch, see acks.ACK_DELAY)
    SKIPPED = "skipped"  # not needed (e.g. superseded): acked, counted in dropped_total
    RETRY = "retry"  # not stored for now: nak'ed, redelivered after `delay`
    FAILED = "failed"  # can never be stored: terminated, counted in dropped_total


@dataclass(frozen=True, slots=True)
class Outcome:
    """An output's answer for one message; build it with the functions below."""

    action: Action
    reason: str = ""  # a dropped_total or naks_total reason
    detail: str = ""  # for the log and the status page's recent errors
    delay: float = 0.0  # RETRY only: seconds until redelivery


DELIVERED = Outcome(Action.DELIVERED)


def skipped(reason: str) -> Outcome:
    """The message is not needed: ack it, counted under `reason`."""
    return Outcome(Action.SKIPPED, reason)


def retry(reason: str, delay: float, detail: str = "") -> Outcome:
    """Try again after `delay`; a `detail` is logged and shown as a recent error."""
    return Outcome(Action.RETRY, reason, detail, delay)


def failed(reason: str, detail: str) -> Outcome:
    """The message can never be stored: terminate it, counted under `reason`, and log why."""
    return Outcome(Action.FAILED, reason, detail)


def backoff(msg: Msg) -> float:
    """The redelivery delay for a message that failed: doubling per delivery, at most 30 s."""
    try:
        delivered = msg.metadata.num_delivered
    except (NATSError, ValueError):
        delivered = 1
    return float(min(MAX_NAK_DELAY, 0.5 * 2 ** max(0, delivered - 1)))


@dataclass(slots=True)
class Delivery:
    """One decoded message on its way to the output."""

    msg: Msg
    scrape: wire.Scrape  # the body is in `body`, or not inflated yet (see decode.take_body)
    encoding: str
    body: bytes | None
    fetched: float = field(default_factory=time.monotonic)


@dataclass
class Context:
    """What the receiver's core lends an output (given to its constructor)."""

    conn: Connection
    stream: StreamConfig
    # The body checks, shared by every output (see `Output.deliver`).
    checker: BodyChecker
    # max_msgs_per_subject of the stream, once bound (-1: no limit or not known).
    per_subject: Callable[[], int]
    # Publisher -> scrape time of its newest delivered scrape (seconds); the
    # core keeps it. Read-only for outputs.
    publishers_seen: dict[str, float]
    paused: Callable[[], bool]
    # Whether the consumer could be asked; then the stream sequence through which
    # every message is finished (None when nothing waits). Updates consumer_pending.
    ack_floor: Callable[[], Awaitable[tuple[bool, int | None]]]
    # Restart a message's ack timer while it waits for its turn.
    in_progress: Callable[[Msg], Awaitable[None]]
    note_error: Callable[[str], None]
    # Start a supervised task: one that crashes stops the receiver.
    spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]
    # Whether this receiver may deliver now (false while another one holds the
    # output's lease); checked right before each write.
    fence: Callable[[], bool] = lambda: True
    # Messages in the stream not yet fetched by the output's consumer (-1: not known).
    pending: Callable[[], int] = lambda: -1
    # The lane's series per target: the series budget and the top offenders.
    series: SeriesTracker = field(default_factory=lambda: SeriesTracker(SeriesBudgetConfig(), None))


class Output(Protocol):
    """Where the receiver stores scrapes; one instance per configured destination.

    Built as `OutputClass(config, registry, context)` by
    `receiver/outputs/__init__.py`. Life cycle: `start` once before the
    first `deliver`, then `deliver` for
    many messages at once (at most one per group at a time: the core waits
    for a group's previous message to be answered), `run` as a supervised
    background task beside them, `reload` between deliveries, `close` last.
    """

    # Which messages of a batch the output is given.
    wants: Wants

    @property
    def name(self) -> str:
        """Where scrapes go, for the logs (e.g. a URL)."""

    async def start(self) -> None:
        """Open connections."""

    async def deliver(self, item: Delivery) -> Outcome:
        """Store one scrape; never raises for what the destination said.

        Check the body here (see `receiver/checks.py`), where a slot of the
        destination is free, not before: the checks of a whole batch then
        run between answers. Set `item.body` to None once read.
        """

    def hold_back(self) -> float:
        """Seconds during which nothing should be fetched (a breaker is open); 0 to fetch."""

    def fetch_size(self, batch: int) -> int:
        """How many messages to fetch at most, out of the configured `batch` (1 when probing)."""

    def fetch_linger(self) -> float:
        """Seconds to let a trickle gather in the stream before fetching it; 0 for none."""

    async def run(self, stop: asyncio.Event) -> None:
        """Background work (e.g. deleting stale groups) until `stop` is set."""

    def reload(self, config: Config) -> None:
        """Take a new configuration; connections may be replaced under way."""

    def status(self) -> dict[str, Any]:
        """Entries for the receiver's status page (merged into its top level)."""

    async def close(self) -> None:
        """Close connections; deliveries still under way end first."""
