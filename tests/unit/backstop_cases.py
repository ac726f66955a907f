"""Message sequences the backstop's unit tests replay (rules and shared store alike)."""

from __future__ import annotations

import random

S = 1000  # ms per second


def term_messages(rng: random.Random, until_ms: int) -> list[tuple[str, int, int]]:
    """(replica, scrape time, term) of failovers to newer terms until `until_ms`.

    The old leader's scrapes run into the new term (clocks apart); replica c
    is an older poller without a token.
    """
    messages = []
    t, token = 0, 0
    while t < until_ms:
        replica = rng.choice("abc")
        token = 0 if replica == "c" else token + rng.randint(1, 3)
        length = rng.choice((3, 10, 40)) * S
        for at in range(t - rng.choice((0, 0, 2, 5)) * S, t + length, rng.choice((1, 2)) * S):
            messages.append((replica, at, token))
        t += length + rng.choice((0, 1, 5, 35)) * S
    return messages
