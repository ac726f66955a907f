"""The HA backstop's elections, shared by every receiver through a JetStream key-value bucket.

One key per publisher holds its periods (docs/design.md, "HA backstop"):
which replica was accepted from which scrape time, and the newest scrape
time of the current one that a receiver wrote back. Receivers change it
only with a create (the first election) or an update conditioned on the
revision they read, so two receivers can never write different decisions
from the same state; each watches the bucket to follow the others.

The bucket is its own, not the lease bucket: a lease must vanish seconds
after its holder dies (that bucket's max_age), an election must outlive a
restart of every receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nats.errors import Error as NATSError
from nats.errors import TimeoutError as NATSTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from prometheus_streams import wire
from prometheus_streams.transport.bucket import open_bucket
from prometheus_streams.transport.retry import ThrottledLog

log = logging.getLogger(__name__)

BUCKET = "prometheus-streams-ha"
# A publisher silent this long is elected anew when it comes back; longer than
# any backlog a lane catches up on (max_age), short enough to forget old ones.
TTL = 24 * 3600.0
# A write or read slower than this holds the message back instead (HOLD).
TIMEOUT = 2.0
FORMAT = 1

# (start scrape time ms, replica, newest scrape time ms written back[, term token]):
# the token, the replica's lease term (docs/design.md), only where it has one,
# so a value without tokens stays the one receivers wrote before them.
Period = tuple[int, str, int] | tuple[int, str, int, int]


class Conflict(Exception):
    """Somebody wrote the key since we read it (or created it first)."""


class StoreError(Exception):
    """The bucket could not be read or written (NATS away, no permission, timeout)."""


@dataclass(frozen=True)
class Stored:
    """A key's value: the periods (empty when it could not be read) and its revision."""

    periods: tuple[Period, ...]
    revision: int


def key_of(publisher: str) -> str:
    """The publisher's key: its subject token, with `=` for `%` (a key may not hold `%`)."""
    return wire.escape_token(publisher).replace("%", "=")


def publisher_of(key: str) -> str:
    """Reverse key_of; raises ValueError."""
    return wire.unescape_token(key.replace("=", "%"))


def encode(periods: tuple[Period, ...]) -> bytes:
    """A key's value as JSON."""
    return json.dumps({"format": FORMAT, "periods": [list(p) for p in periods]}).encode()


def decode(value: bytes | None) -> tuple[Period, ...]:
    """A key's periods; raises ValueError for anything encode cannot produce."""
    try:
        data = json.loads(value or b"")
        periods = tuple(_period(p) for p in data["periods"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not an election: {exc}") from None
    if not periods or data.get("format") != FORMAT:
        raise ValueError("not an election: no periods or an unknown format")
    if any(b[0] <= a[0] for a, b in itertools.pairwise(periods)):
        raise ValueError("not an election: periods out of order")
    return periods


def _period(raw: Any) -> Period:
    """One stored period from JSON; raises ValueError, TypeError."""
    if len(raw) == 3:
        start, replica, last = raw
        return (int(start), str(replica), int(last))
    start, replica, last, token = raw
    if int(token) <= 0:
        raise ValueError("a term token below 1")
    return (int(start), str(replica), int(last), int(token))


class ElectionStore:
    """The bucket of elections: read, create, update by revision, and watch."""

    def __init__(
        self,
        js: Callable[[], JetStreamContext],
        replicas: int = 1,
        on_error: Callable[[], None] = lambda: None,
    ) -> None:
        self._js = js
        self.replicas = replicas
        self._on_error = on_error
        self._kv: KeyValue | None = None
        # Set by the first message that names a replica: a receiver without HA
        # publishers never touches the bucket (nor needs the permissions).
        self.wanted = asyncio.Event()
        self.synced = asyncio.Event()  # the watch delivered every stored key once
        self._failures = ThrottledLog(log, f"HA backstop: key-value bucket {BUCKET}")

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await open_bucket(self._js(), BUCKET, TTL, self.replicas)
        return self._kv

    def _failed(self, exc: BaseException) -> StoreError:
        self._on_error()
        self._failures.failure(logging.WARNING, str(exc) or type(exc).__name__)
        return StoreError(str(exc) or type(exc).__name__)

    async def get(self, publisher: str) -> Stored | None:
        """The publisher's stored election, or None when there is none; raises StoreError."""
        try:
            kv = await asyncio.wait_for(self._bucket(), TIMEOUT)
            entry = await asyncio.wait_for(kv.get(key_of(publisher)), TIMEOUT)
        except (KeyNotFoundError, NotFoundError):
            return None
        except (NATSError, TimeoutError) as exc:
            raise self._failed(exc) from None
        self._failures.recovered()
        return Stored(self._periods(publisher, entry.value), entry.revision or 0)

    def _periods(self, publisher: str, value: bytes | None) -> tuple[Period, ...]:
        try:
            return decode(value)
        except ValueError as exc:
            # Overwritten by the next election (a revision-checked update).
            self._on_error()
            log.error("HA backstop: bucket %s, key %s: %s", BUCKET, key_of(publisher), exc)
            return ()

    async def write(self, publisher: str, periods: tuple[Period, ...], revision: int) -> int:
        """Create the key (revision 0) or update it from `revision`; the new revision.

        Raises Conflict when somebody wrote first, StoreError when the bucket
        cannot be reached (the write may or may not have landed).
        """
        try:
            kv = await asyncio.wait_for(self._bucket(), TIMEOUT)
            value = encode(periods)
            key = key_of(publisher)
            call = kv.update(key, value, last=revision) if revision else kv.create(key, value)
            new = await asyncio.wait_for(call, TIMEOUT)
        except KeyWrongLastSequenceError:
            raise Conflict() from None
        except (NATSError, TimeoutError) as exc:
            raise self._failed(exc) from None
        self._failures.recovered()
        return int(new)

    async def run(self, stop: asyncio.Event, follow: Callable[[str, Stored | None], None]) -> None:
        """Once wanted, watch the bucket until `stop`: `follow` gets each key written or gone."""
        waiter = asyncio.ensure_future(self.wanted.wait())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((waiter, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            stopper.cancel()
        while not stop.is_set():
            try:
                await self._watch(stop, follow)
            except (NATSError, TimeoutError) as exc:
                self._failed(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)

    async def _watch(
        self, stop: asyncio.Event, follow: Callable[[str, Stored | None], None]
    ) -> None:
        watcher = await (await self._bucket()).watchall()
        try:
            while not stop.is_set():
                try:
                    entry = await watcher.updates(timeout=1.0)  # type: ignore[no-untyped-call]
                except NATSTimeoutError:
                    continue
                if entry is None:
                    self.synced.set()
                    continue
                if not isinstance(entry, KeyValue.Entry):
                    return  # the watcher was stopped
                try:
                    publisher = publisher_of(entry.key)
                except ValueError:
                    log.error(
                        "HA backstop: bucket %s: key %r names no publisher", BUCKET, entry.key
                    )
                    continue
                if entry.operation in (KV_DEL, KV_PURGE):
                    follow(publisher, None)
                else:
                    follow(
                        publisher,
                        Stored(self._periods(publisher, entry.value), entry.revision or 0),
                    )
        finally:
            with contextlib.suppress(NATSError, TimeoutError):
                await watcher.stop()  # type: ignore[no-untyped-call]
