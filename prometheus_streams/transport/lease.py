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
whatever happened in between (a pause, a cut link, a clock jump).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from nats.errors import Error as NATSError
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from prometheus_streams.transport.retry import ThrottledLog

log = logging.getLogger(__name__)

BUCKET = "prometheus-streams-leases"
# The value a holder leaves when it gives the lease up after settling its work.
RELEASED = b"released"


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
    ) -> None:
        self._js = js
        self.key = key
        self.holder = holder
        self.ttl = ttl
        self.bucket = bucket
        self.replicas = replicas
        # Stop believing we lead this long before the server could expire our write.
        self.margin = max(1.0, ttl / 5)
        self._kv: KeyValue | None = None
        self._revision = 0  # of our last confirmed write; 0 when we hold nothing
        self._valid_until = 0.0  # monotonic
        self.changed = asyncio.Event()  # set on every gain or loss, cleared by the waiter
        self.terms = 0  # how many times we took the lease
        # Whether the last holder gave the lease up after settling its work
        # (else it expired: the holder died, was paused or cut off).
        self.clean_handover = False
        self.taken_at = 0.0  # monotonic, when we last took it
        self._failures = ThrottledLog(log, f"lease {key}: cannot take or renew it")

    def leading(self) -> bool:
        """Whether we hold the lease now (fenced: false as soon as it might have expired)."""
        return self._revision > 0 and time.monotonic() < self._valid_until

    async def wait_leading(self, stop: asyncio.Event) -> bool:
        """Until we lead (True) or `stop` is set (False)."""
        while not stop.is_set():
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
        return min(1.0, self.ttl / 5)  # a free key is taken soon after it expires

    async def _step(self) -> None:
        was = self.leading()
        sent = time.monotonic()
        try:
            kv = await self._bucket()
            value = self.holder.encode()
            if self._revision and was:
                self._revision = await kv.update(self.key, value, last=self._revision)
            else:
                await self._take(kv, value)
                self.taken_at = sent
            self._valid_until = sent + self.ttl - self.margin
        except KeyWrongLastSequenceError:
            self._revision = 0  # somebody else holds it
            self._failures.recovered()
        except (NATSError, TimeoutError) as exc:
            # Unknown whether the write landed: we keep leading only until the
            # last confirmed write's fence runs out.
            self._failures.failure(logging.WARNING, str(exc) or type(exc).__name__)
            if not self.leading():
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

    async def _take(self, kv: KeyValue, value: bytes) -> None:
        """Take the key if nobody holds it; raises KeyWrongLastSequenceError if somebody does."""
        try:
            entry = await kv.get(self.key)
        except (KeyNotFoundError, NotFoundError):
            entry = None
        if entry is not None and entry.value == RELEASED and entry.revision:
            self._revision = await kv.update(self.key, value, last=entry.revision)
            self.clean_handover = True
        elif entry is None:
            self._revision = await kv.create(self.key, value)
            self.clean_handover = False
        else:
            raise KeyWrongLastSequenceError()
        self.terms += 1

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
        if not revision or self._kv is None:
            return
        if time.monotonic() < self._valid_until:
            with contextlib.suppress(NATSError, TimeoutError):
                await asyncio.wait_for(self._kv.update(self.key, RELEASED, last=revision), 2.0)
                log.info("lease %s released by %s", self.key, self.holder)
        self._valid_until = 0.0
        self.changed.set()

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            js = self._js()
            try:
                self._kv = await js.key_value(self.bucket)
            except (NotFoundError, NATSError):
                self._kv = await js.create_key_value(
                    js_api.KeyValueConfig(
                        bucket=self.bucket, ttl=self.ttl, history=1, replicas=self.replicas
                    )
                )
        return self._kv
