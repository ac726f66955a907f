"""The HA backstop's rule: which replica's message is accepted at a scrape time.

Pure: it reads a publisher's periods and says what must be stored before
the answer holds; the Backstop (receiver/backstop.py) keeps the state,
shares it through the store and counts. `timeout` is failover_timeout in
milliseconds; `shared`, whether the periods are shared through a store.
"""

from __future__ import annotations

from prometheus_streams.receiver.backstop_state import (
    PeriodState,
    PublisherState,
    Write,
    stored_period,
    stored_periods,
)

# Reasons a message is refused (ha_refused_total).
OTHER_REPLICA = "other_replica"  # another replica is accepted and not silent long enough
PAST_PERIOD = "past_period"  # the scrape time falls where another replica or term was accepted
OLD_TERM = "old_term"  # a lease term older than the accepted replica's: a fenced leader's
REASONS = (OTHER_REPLICA, PAST_PERIOD, OLD_TERM)


def rule(
    state: PublisherState, replica: str, t: int, token: int, timeout: int, shared: bool
) -> tuple[str | None, Write | None]:
    """The answer for a message of `replica` at scrape time `t`, and what must be stored first.

    A period accepts one replica in one lease term (`token`, 0: none):
    the messages of that replica and term. An answer holds for good only
    against what is stored: a scrape of the accepted replica and term is
    accepted without a write while no receiver can have switched before
    it by silence (it is within failover_timeout of the stored newest
    scrape), and a switch or a refusal past that needs a write.
    """
    if not state.periods:
        return None, (stored_period(t, replica, t, token),)
    at = state.period_at(t)
    if at < 0:
        # Older than everything kept: the first kept period's, as it was
        # decided when that period opened.
        return (None if state.periods[0].holds(replica, token) else PAST_PERIOD), None
    period = state.periods[at]
    if period.holds(replica, token):
        if at < len(state.periods) - 1 or t <= period.last_ms + timeout:
            return None, None
        return None, stored_periods(state, last=t)
    if shared and _in_tail(state, at, replica, token, t, timeout):
        return None, None
    if at < len(state.periods) - 1:
        return _past(period, token, t, timeout), None
    newest = max(period.last_ms, state.local_last)
    if token > period.token:
        # A newer lease term (of another replica, or of the accepted one
        # anew): the lease moved, so no silence is needed. The new period
        # starts right after the newest scrape of the accepted term known
        # here; one accepted elsewhere and not stored yet (at most
        # failover_timeout past the stored one) stays accepted as the old
        # period's tail (_in_tail).
        if t > newest:
            return None, (
                *stored_periods(state, last=newest),
                stored_period(newest + 1, replica, t, token),
            )
        if t > period.last_ms:
            # Before what we saw of the accepted term: store that first,
            # so no receiver can start the new term before this scrape.
            return OTHER_REPLICA, stored_periods(state, last=state.local_last)
        return OTHER_REPLICA, None
    # No token, an equal one, or an older term: the silence rule. An older
    # term is a fenced leader's late message; it takes over only after the
    # accepted term's silence, as a message without a token would (a
    # lease bucket made anew starts its revisions again at 1).
    reason = OLD_TERM if 0 < token < period.token else OTHER_REPLICA
    # Strictly later than silence plus the timeout: a message refused here
    # stays refused, since any later switch by silence starts after it,
    # and a switch to a newer term accepts only that term.
    if t > newest + timeout:
        return None, (*stored_periods(state), stored_period(t, replica, t, token))
    if t > period.last_ms + timeout:
        # We saw the accepted term speak more recently than stored:
        # store that first, so no receiver can switch before this scrape.
        return reason, stored_periods(state, last=state.local_last)
    return reason, None


def _past(period: PeriodState, token: int, t: int, timeout: int) -> str:
    """Why a message is refused in a period that another has followed since.

    Within failover_timeout of the period's newest scrape it is the reason
    the head gave (or would have given) while the period was current, so a
    lane behind another counts what the lane ahead counted; only a scrape
    later than that, which no rule refused at the head, is `past_period`.
    """
    if t > period.last_ms + timeout:
        return PAST_PERIOD
    return OLD_TERM if 0 < token < period.token else OTHER_REPLICA


def _in_tail(
    state: PublisherState, at: int, replica: str, token: int, t: int, timeout: int
) -> bool:
    """Whether `t` lies in the tail of an earlier period of this replica and term.

    Shared elections only: a switch to a newer term starts right after
    the newest scrape of the old term known to the receiver that stored
    it; other receivers may have accepted that term's scrapes up to
    failover_timeout past the newest stored one without a write. Those
    stay accepted: a period accepts its term up to failover_timeout past
    its stored newest scrape (empty after a switch by silence, which
    starts later). In one process every accepted scrape is known, so
    there is no tail.
    """
    for earlier in reversed(state.periods[:at]):
        if t > earlier.last_ms + timeout:
            return False  # every period before it ended earlier still
        if earlier.holds(replica, token):
            return True
    return False
