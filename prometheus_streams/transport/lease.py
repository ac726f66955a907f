"""A lease in a JetStream key-value bucket: at most one holder at a time, fenced by time.

The bucket keeps each key for `ttl` after its last write (the bucket's
max_age, counted by the server). A holder takes the key with a create that
succeeds only while nobody holds it, and renews it every `ttl / 3` with an
update conditioned on its own last revision, so a renewal after somebody
else took the key fails. Fencing: the holder counts itself leader only
until `ttl - margin` after the last write the server confirmed, measured on
its own monotonic clock from *before* it sent that write. The server
expires the key no earlier than `ttl` after it stored the write, so a
holder stops believing it leads before anybody else can take the key,
whatever happened in between (a pause, a cut link, a clock jump). The clock
is CLOCK_BOOTTIME where there is one: unlike CLOCK_MONOTONIC it keeps
counting while the host is suspended, and the server's clock does too.

The bucket's own max_age is what the server expires by, so the holder
fences by the bucket's TTL when it differs from the one asked for (another
process created the bucket first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

from nats.errors import Error as NATSError
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from prometheus_streams.transport.bucket import BUCKET, RELEASED, fence_clock, open_bucket
from prometheus_streams.transport.retry import ThrottledLog

log = logging.getLogger(__name__)


class Lease:
    """One key of the lease bucket, taken and renewed by `run`; `leading()` says if we hold it."""

    def __init__(
        self,
        js: Callable[[], JetStreamContext],
        key: str,
        holder: str,
        ttl: float = 10.0,
        bucket: str = BUCKET,
        replicas: int = 1,
        may_take: Callable[[], bool] = lambda: True,
        take_delay: float = 0.0,
        look_every: float | None = None,
    ) -> None:
        self._js = js
        self.key = key
        self.holder = holder
        self.ttl = ttl
        self.bucket = bucket
        self.replicas = replicas
        # Asked before taking a free lease (a receiver past its fair share does not).
        self.may_take = may_take
        # How long a free lease lies before we take it (a less preferred replica waits).
        self.take_delay = take_delay
        # How often a non-holder reads a held key at most (default: soon after it is
        # released); it also reads it when the write it saw is due to expire.
        self._look_every = look_every
        self.resigning = False  # giving the lease up: not leading, released once settled
        self._set_ttl(ttl)
        self._kv: KeyValue | None = None
        self._revision = 0  # of our last confirmed write; 0 when we hold nothing
        self._valid_until = 0.0  # fence_clock
        self.changed = asyncio.Event()  # set on every gain or loss, cleared by the waiter
        self.terms = 0  # how many times we took the lease
        # The revision of the write that began our current term: the term's
        # fencing token (revisions are the bucket stream's sequence numbers,
        # so a later term of any holder of this key has a higher one).
        self.term_revision = 0
        # Whether the last holder gave the lease up after settling its work
        # (else it expired: the holder died, was paused or cut off).
        self.clean_handover = False
        self.taken_at = 0.0  # monotonic, when we last took it
        # What the bucket showed at our last look: who holds the key, since when
        # (wall clock), and how often the holder changed to another.
        self.holder_seen: str | None = None
        self._last_holder: str | None = None
        self.written_at = 0.0
        self.changes = 0
        self._seen_revision = 0
        self._free_since: float | None = None
        self._next_look: float | None = None  # seconds until our next step, when known
        self._failures = ThrottledLog(log, f"lease {key}: cannot take or renew it")

    def _set_ttl(self, ttl: float) -> None:
        self.ttl = ttl
        # Stop believing we lead this long before the server could expire our write.
        self.margin = max(1.0, ttl / 5) if ttl >= 3.0 else ttl / 3

    def leading(self) -> bool:
        """Whether we hold the lease now (fenced: false as soon as it might have expired)."""
        return self._revision > 0 and not self.resigning and fence_clock() < self._valid_until

    def fence(self) -> int:
        """The term we lead in (1, 2, ...), or 0 when we do not lead now."""
        return self.terms if self.leading() else 0

    def token(self) -> int:
        """The fencing token of the term we lead in (its first write's revision), 0 when not."""
        return self.term_revision if self.leading() else 0

    def valid_for(self) -> float:
        """Seconds our fence still holds (0 when not leading)."""
        return max(0.0, self._valid_until - fence_clock()) if self.leading() else 0.0

    def resign(self) -> None:
        """Stop leading; whoever works under the lease settles, then calls `release`."""
        if self.leading():
            log.info("lease %s: %s gives it up (more than its share)", self.key, self.holder)
            self.resigning = True
            self.changed.set()

    async def wait_leading(self, stop: asyncio.Event) -> bool:
        """Until we lead (True) or `stop` is set (False).

        The caller works under the lease only after this returns: a lease
        resigned meanwhile has nothing to settle and is released here, or
        it would be renewed (resigning) forever and nobody could take it.
        """
        while not stop.is_set():
            if self.resigning:
                await self.release()
            if self.leading():
                return True
            self.changed.clear()
            waiter = asyncio.ensure_future(self.changed.wait())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait(
                    (waiter, stopper), timeout=self.ttl / 3, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waiter.cancel()
                stopper.cancel()
        return False

    async def run(self, stop: asyncio.Event) -> None:
        """Take the lease when free and keep renewing it until `stop`.

        It is not given up here: whoever works under it calls `release` once
        that work is settled.
        """
        while not stop.is_set():
            await self._step()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._pause())

    def _pause(self) -> float:
        if self._revision:
            return self.ttl / 3
        if self._next_look is not None:
            return self._next_look
        return min(1.0, self.ttl / 5)  # a free key is taken soon after it expires

    async def _step(self) -> None:
        was = self.leading()
        sent = fence_clock()
        self._next_look = None
        try:
            kv = await self._bucket()
            value = self.holder.encode()
            if self._revision and (was or self.resigning):
                # Renewed while resigning too: nobody else may take it before we settled.
                self._revision = await kv.update(self.key, value, last=self._revision)
            elif self.may_take():
                if not await self._take(kv, value):
                    return
                self.taken_at = time.monotonic()
            else:
                return
            self._valid_until = sent + self.ttl - self.margin
            self._observe(self.holder, self._revision, time.time())
        except KeyWrongLastSequenceError:
            self._revision = 0  # somebody else holds it
            self._failures.recovered()
        except (NATSError, TimeoutError) as exc:
            # Unknown whether the write landed: we keep leading only until the
            # last confirmed write's fence runs out.
            self._failures.failure(logging.WARNING, str(exc) or type(exc).__name__)
            if fence_clock() >= self._valid_until:
                self._revision = 0
        else:
            self._failures.recovered()
        now = self.leading()
        if now != was:
            log.info(
                "lease %s %s by %s",
                self.key,
                "taken" if now else "lost",
                self.holder,
            )
            self.changed.set()

    async def _take(self, kv: KeyValue, value: bytes) -> bool:
        """Take the key if nobody holds it (whether we did); KeyWrongLastSequenceError if held."""
        entry = await self._entry(kv)
        if entry is not None and entry[0] == self._revision:
            # Our own write is still the key's last: our fence ran out (a pause, a
            # slow renewal) but nobody took the key since. Conditioned on that
            # revision, so it fails if somebody did meanwhile; a new term.
            self._revision = await kv.update(self.key, value, last=entry[0])
            self.clean_handover = False
        elif entry is not None and entry[1] == RELEASED:
            self._revision = await kv.update(self.key, value, last=entry[0])
            self.clean_handover = True
        elif entry is None:
            now = fence_clock()
            if self._free_since is None:
                self._free_since = now
            waited = now - self._free_since
            if waited < self.take_delay:
                self._next_look = self.take_delay - waited
                return False
            self._revision = await kv.create(self.key, value)
            self.clean_handover = False
        else:
            raise KeyWrongLastSequenceError()
        self._free_since = None
        self.terms += 1
        self.term_revision = self._revision
        return True

    async def _entry(self, kv: KeyValue) -> tuple[int, bytes] | None:
        """The key's revision and value (None: nobody holds it); notes who holds it."""
        js = self._js()
        try:
            msg = await js.get_msg(f"KV_{self.bucket}", subject=f"$KV.{self.bucket}.{self.key}")
        except (KeyNotFoundError, NotFoundError):
            self._observe(None, 0, 0.0)
            return None
        value = msg.data or b""
        op = (msg.headers or {}).get("KV-Operation")
        if not msg.seq or op in ("DEL", "PURGE"):
            self._observe(None, 0, 0.0)
            return None
        written = msg.time.timestamp() if isinstance(msg.time, datetime) else time.time()
        holder = None if value == RELEASED else value.decode(errors="replace")
        self._observe(holder, msg.seq, written)
        return msg.seq, value

    def _observe(self, holder: str | None, revision: int, written: float) -> None:
        """Note what the bucket shows, and when to look again if somebody else holds it."""
        if holder is None:
            self.holder_seen = None
            self._seen_revision = 0
            return
        self._free_since = None
        if holder != self.holder:
            # The server drops the write `ttl` after it stored it: look again
            # then, by its clock as far as ours agrees; sooner when the
            # same write is still there (our clock is ahead of the server's).
            due = written + self.ttl - time.time()
            overdue = revision == self._seen_revision and due <= 0
            every = self._look_every or min(1.0, self.ttl / 5)
            self._next_look = (
                min(1.0, self.ttl / 10) if overdue else min(every, max(0.05, due + 0.05))
            )
        # Counted against the last holder seen, also across a spell without one.
        if self._last_holder is not None and holder != self._last_holder:
            self.changes += 1
            log.info("lease %s: %s leads now (was %s)", self.key, holder, self._last_holder)
        elif self._last_holder is None and holder != self.holder:
            log.info("lease %s: %s leads", self.key, holder)
        self.holder_seen = self._last_holder = holder
        self._seen_revision = revision
        self.written_at = written

    async def current_holder(self) -> str | None:
        """Who holds the lease by the bucket, or None."""
        try:
            entry = await (await self._bucket()).get(self.key)
        except (KeyNotFoundError, NotFoundError):
            return None
        return entry.value.decode() if entry.value else None

    async def release(self) -> None:
        """Give the lease up at once, so another holder need not wait for it to expire.

        Call it once the work done under the lease is settled: the next
        holder then starts at once, without waiting for that work to time out.
        """
        revision, self._revision = self._revision, 0
        self.resigning = False
        if not revision or self._kv is None:
            return
        if fence_clock() < self._valid_until:
            with contextlib.suppress(NATSError, TimeoutError):
                await asyncio.wait_for(self._kv.update(self.key, RELEASED, last=revision), 2.0)
                log.info("lease %s released by %s", self.key, self.holder)
        self._valid_until = 0.0
        self.changed.set()

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            kv = await open_bucket(self._js(), self.bucket, self.ttl, self.replicas)
            ttl = (await kv.status()).ttl
            if ttl and abs(ttl - self.ttl) > 0.001:
                # The server expires by the bucket's TTL: fencing by a longer one
                # would let two holders lead at once.
                log.warning(
                    "lease %s: bucket %s keeps keys %gs, not %gs: fencing by %gs",
                    self.key,
                    self.bucket,
                    ttl,
                    self.ttl,
                    ttl,
                )
                self._set_ttl(ttl)
            self._kv = kv
        return self._kv
