"""Spreading a set of leases over the processes that want them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable

from nats.errors import Error as NATSError
from nats.js import JetStreamContext

from prometheus_streams.transport.bucket import BUCKET
from prometheus_streams.transport.lease import Lease

log = logging.getLogger(__name__)


class Share:
    """Spreads a set of leases over the processes that want them: each takes its fair share.

    Every process announces itself with a key `<prefix>.members.<id>` in the
    bucket, rewritten every `ttl / 3` and gone `ttl` after its last write;
    the members are counted from the bucket stream's subjects. A process
    takes a free lease only while it holds fewer than ceil(leases / members),
    and gives one up (cleanly, see `Lease.resign`) while it holds more.
    """

    def __init__(
        self,
        js: Callable[[], JetStreamContext],
        prefix: str,
        holder: str,
        ttl: float = 10.0,
        bucket: str = BUCKET,
        replicas: int = 1,
    ) -> None:
        self._js = js
        self.prefix = prefix
        self.ttl = ttl
        self.bucket = bucket
        self.member_key = f"{prefix}.members.{hashlib.sha256(holder.encode()).hexdigest()[:16]}"
        self.holder = holder
        self.leases: list[Lease] = []
        self.members = 1
        self._bucket_lease = Lease(js, self.member_key, holder, ttl, bucket, replicas)

    def add(self, lease: Lease) -> None:
        """Share this lease; it then asks us before it is taken."""
        lease.may_take = self.may_take
        self.leases.append(lease)

    def held(self) -> int:
        """How many of the leases we lead."""
        return sum(1 for lease in self.leases if lease.leading())

    def fair_share(self) -> int:
        """ceil(leases / members)."""
        return -(-len(self.leases) // max(1, self.members))

    def may_take(self) -> bool:
        """Whether we may take one more lease."""
        return self.held() < self.fair_share()

    async def run(self, stop: asyncio.Event) -> None:
        """Announce ourselves, count the members, and give up what is beyond our share."""
        while not stop.is_set():
            try:
                kv = await self._bucket_lease._bucket()
                await kv.put(self.member_key, self.holder.encode())
                info = await self._js().stream_info(
                    f"KV_{self.bucket}",
                    subjects_filter=f"$KV.{self.bucket}.{self.prefix}.members.*",
                )
                self.members = max(1, len(info.state.subjects or {}))
            except (NATSError, TimeoutError) as exc:
                log.debug("lease share %s: %s", self.prefix, exc)
            if len(self.leases) > 1 and self.held() > self.fair_share():
                next(lease for lease in self.leases if lease.leading()).resign()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.ttl / 3)
