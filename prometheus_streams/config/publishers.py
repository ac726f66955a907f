"""The receiver's view of its publishers: ha_backstop, expected_publishers, stale_after."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_streams.config.reader import Section
from prometheus_streams.config.values import as_bool, as_name, positive_duration

BACKSTOP_KEYS = {"enabled", "failover_timeout", "shared"}
EXPECTED_KEYS = {"name", "optional"}
# As the poller's `ha.failover_timeout` and Mimir's HA tracker: see docs/configuration.md.
DEFAULT_FAILOVER_TIMEOUT = 30.0
# As the PollerSilent alert in docs/alerts.yaml.
DEFAULT_PUBLISHER_STALE_AFTER = 300.0


@dataclass(frozen=True)
class HABackstopConfig:
    """Accept one HA replica per publisher; switch after it was silent for `failover_timeout`."""

    enabled: bool = True
    failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT
    # Elections shared by every receiver through a key-value bucket (receiver/election.py).
    shared: bool = True


@dataclass(frozen=True)
class ExpectedPublisher:
    """A publisher the receiver should hear from; an optional one is shown, never alerted on."""

    name: str
    optional: bool = False


def read_ha_backstop(top: Section) -> HABackstopConfig:
    """The `ha_backstop` section (absent: on, with the default failover_timeout)."""
    s = top.mapping("ha_backstop")
    if s is None or not s.data:
        return HABackstopConfig()
    s.check_keys(BACKSTOP_KEYS)
    return HABackstopConfig(
        enabled=s.get("enabled", as_bool, True),
        failover_timeout=s.get("failover_timeout", positive_duration, DEFAULT_FAILOVER_TIMEOUT),
        shared=s.get("shared", as_bool, True),
    )


def read_expected_publishers(top: Section) -> tuple[ExpectedPublisher, ...]:
    """The `expected_publishers` list: names, or mappings of `name` and `optional`."""
    raw = top.raw("expected_publishers")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        top.problem("expected_publishers", f"must be a list of publisher names, got {raw!r}")
        return ()
    found: dict[str, ExpectedPublisher] = {}
    for index, item in enumerate(raw):
        where = f"expected_publishers[{index}]"
        entry: ExpectedPublisher | None
        if isinstance(item, dict):
            entry = _read_entry(top, item, where)
        else:
            try:
                entry = ExpectedPublisher(as_name(item))
            except ValueError as exc:
                top.problem(where, str(exc))
                entry = None
        if entry is None:
            continue
        if entry.name in found:
            top.problem(where, f"publisher {entry.name!r} is listed twice")
            continue
        found[entry.name] = entry
    return tuple(found.values())


def _read_entry(top: Section, item: object, where: str) -> ExpectedPublisher | None:
    data = top.reader.mapping(item, where)
    if data is None:
        return None
    entry = Section(top.reader, data, where)
    entry.check_keys(EXPECTED_KEYS)
    if not entry.given("name"):
        entry.problem("name", "required: the publisher's identity")
        return None
    name = entry.get("name", as_name, "")
    if not name:
        return None
    return ExpectedPublisher(name, entry.get("optional", as_bool, False))


def read_publisher_stale_after(top: Section) -> float:
    """How recent a publisher's newest scrape must be for it to count as reporting."""
    return top.get("publisher_stale_after", positive_duration, DEFAULT_PUBLISHER_STALE_AFTER)


def describe_publishers(
    backstop: HABackstopConfig, expected: tuple[ExpectedPublisher, ...], stale_after: float
) -> dict[str, object]:
    """The section as check-config prints it."""
    return {
        "ha_backstop": {
            "enabled": backstop.enabled,
            "failover_timeout_seconds": backstop.failover_timeout,
            "shared": backstop.shared,
        },
        "expected_publishers": [{"name": p.name, "optional": p.optional} for p in expected],
        "publisher_stale_after_seconds": stale_after,
    }
