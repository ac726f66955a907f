"""Scrapes waiting for a request, and the gathering of them into batches."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from prometheus_streams.receiver.output import Delivery, Outcome

# A batch is sent once no scrape joined it for this long, or when full, or at
# batch_send_deadline. Scrapes of a steady poller arrive one by one (200 targets
# every 5 s: one per 25 ms): at 10 ms nearly every scrape was a request of its
# own, and a request costs the receiver about as much as encoding a scrape.
LINGER = 0.05


@dataclass
class Job:
    """One scrape's samples waiting for their request."""

    item: Delivery
    series: list[bytes]  # encoded TimeSeries fields: one sample each, or a page's in one
    samples: int  # how many samples `series` holds
    done: asyncio.Future[Outcome]


class Batcher:
    """Hands out batches of queued scrapes of up to `limit` samples."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.carry: Job | None = None  # taken from the queue, first of the next batch

    async def next(self, stop: asyncio.Event, limit: int, deadline: float) -> list[Job] | None:
        """The next batch: full, idle for LINGER, or `deadline` seconds old; None once stopped.

        A scrape that would take the batch past `limit` starts the next one:
        filled past it, a batch was a full request and a small one.
        """
        first, self.carry = self.carry or await _first(self.queue, stop), None
        if first is None:
            return None
        batch = [first]
        ends = time.monotonic() + deadline
        samples = first.samples
        while samples < limit:
            left = ends - time.monotonic()
            if left <= 0:
                break
            try:
                # Not wait_for: it would run the get in a task of its own, one a scrape.
                async with asyncio.timeout(min(LINGER, left)):
                    job = await self.queue.get()
            except TimeoutError:
                break
            if samples + job.samples > limit:
                self.carry = job
                break
            batch.append(job)
            samples += job.samples
        return batch

    def drain(self, outcome: Outcome) -> None:
        """Answer every scrape still waiting with `outcome`."""
        if self.carry is not None:
            answer(self.carry, outcome)
            self.carry = None
        while not self.queue.empty():
            answer(self.queue.get_nowait(), outcome)


def answer(job: Job, outcome: Outcome) -> None:
    if not job.done.done():
        job.done.set_result(outcome)


async def _first(queue: asyncio.Queue[Job], stop: asyncio.Event) -> Job | None:
    """The next queued scrape, or None once `stop` is set."""
    getter = asyncio.ensure_future(queue.get())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((getter, stopper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if getter.done():
        return getter.result()
    getter.cancel()
    return None
