"""JetStream stream provisioning, and binding to the stream until the server lets us."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.errors import Error as NATSError
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BadRequestError, NotFoundError

from prometheus_streams.config import StreamConfig
from prometheus_streams.errors import StreamMismatchError
from prometheus_streams.transport.connection import Connection
from prometheus_streams.wire import escape_token

log = logging.getLogger(__name__)

# Between tries to check the stream (and bind to it) while the server refuses or
# has no JetStream yet: the connection itself is up, so there is no outage to back off from.
BIND_RETRY = 2.0
# JetStream's answer to creating a stream that exists with another configuration.
STREAM_NAME_IN_USE = 10058
# Stream limits the config owns: brought in line on an existing stream.
MANAGED_LIMITS = ("max_age", "max_bytes", "max_msgs_per_subject", "num_replicas")


async def bind_stream(
    conn: Connection,
    config: StreamConfig,
    what: str,
    then: Callable[[js_api.StreamInfo], Awaitable[None]] | None = None,
    *,
    retry: float = BIND_RETRY,
) -> js_api.StreamInfo:
    """Ensure the stream, then run `then` on it; retry both until they succeed.

    `what` names the step in the warning of a failed try ("check stream s").
    A stream that cannot serve the config (StreamMismatchError) is not retried.
    """
    while True:
        try:
            info = await ensure_stream(conn.js, config)
            if then is not None:
                await then(info)
            return info
        except (NATSError, TimeoutError) as exc:
            log.warning("cannot %s yet: %s", what, exc)
            await asyncio.sleep(retry)


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> js_api.StreamInfo:
    """Create the stream if missing; check it, and bring its limits in line, if present."""
    wanted = _wanted(config)
    try:
        info = await js.stream_info(config.stream)
    except NotFoundError:
        try:
            info = await js.add_stream(wanted)
        except BadRequestError as exc:
            if exc.err_code != STREAM_NAME_IN_USE:
                raise
            # Another role created it a moment ago, with its own limits: check
            # and align it like any existing stream.
            info = await js.stream_info(config.stream)
            return await _align(js, config, info, wanted)
        log.info(
            "created JetStream stream %s%s for %s (max_age %gs, max_bytes %d, %d per subject)",
            config.stream,
            f" in domain {config.domain}" if config.domain else "",
            describe_sources(config) if config.sources else config.subjects,
            config.stream_max_age,
            config.stream_max_bytes,
            config.max_msgs_per_subject,
        )
        return info
    return await _align(js, config, info, wanted)


async def _align(
    js: JetStreamContext,
    config: StreamConfig,
    info: js_api.StreamInfo,
    wanted: js_api.StreamConfig,
) -> js_api.StreamInfo:
    """Check an existing stream and bring the limits the config owns in line."""
    have = info.config
    _check_fits(config, have, wanted)
    changes = _changes(have, wanted)
    if config.sources and _source_keys(have.sources) != _source_keys(wanted.sources):
        changes["sources"] = (have.sources, wanted.sources)
    if "max_msgs_per_subject" in changes and _keeps_history(have) and not config.history:
        # A remote-write output needs the history; the larger limit wins,
        # whichever role starts last.
        old, new = changes.pop("max_msgs_per_subject")
        log.info(
            "stream %s keeps %s messages per subject (the config says %s): a receiver with"
            " remote write needs every scrape (metadata %s)",
            config.stream,
            "unlimited" if old == -1 else old,
            new,
            HISTORY_KEY,
        )
    if config.history and not _keeps_history(have):
        changes["metadata"] = (
            have.metadata,
            {**(have.metadata or {}), HISTORY_KEY: "remote_write"},
        )
    if changes:
        updated = js_api.StreamConfig.from_response(have.as_dict())
        for key, (_, desired) in changes.items():
            setattr(updated, key, desired)
        info = await js.update_stream(updated)
        log.warning(
            "updated stream %s to match the config: %s",
            config.stream,
            ", ".join(_describe_change(k, old, new) for k, (old, new) in changes.items()),
        )
    return info


# Stream metadata a receiver with remote write sets: the stream must keep every
# scrape of its max_age, not only the newest per target.
HISTORY_KEY = "prometheus_streams_history"


def _keeps_history(have: js_api.StreamConfig) -> bool:
    return bool(have.metadata and have.metadata.get(HISTORY_KEY))


def _describe_change(key: str, old: object, new: object) -> str:
    if key == "sources" and isinstance(old, list | None) and isinstance(new, list):
        before = ", ".join(sorted(_source_keys(old))) or "none"
        return f"sources {before} -> {', '.join(sorted(_source_keys(new)))}"
    return f"{key} {old} -> {new}"


def describe_sources(config: StreamConfig) -> str:
    """The sources of a central stream in one line: `NAME@domain (filter)`."""
    return ", ".join(sorted(_source_keys(_sources(config))))


def _source_keys(sources: list[js_api.StreamSource] | None) -> set[str]:
    """What makes two source lists the same: name, API, deliver prefix, filter."""
    keys = set()
    for source in sources or []:
        external = source.external
        where = f"@{external.api}" if external is not None else ""
        if external is not None and external.deliver:
            where += f" deliver {external.deliver}"
        keys.add(f"{source.name}{where} ({source.filter_subject or 'all'})")
    return keys


def _sources(config: StreamConfig) -> list[js_api.StreamSource]:
    """The sources as the config lists them, each filtered to its publisher's subjects."""
    found = []
    for source in config.sources:
        api = source.api
        publisher = f"{escape_token(source.publisher)}." if source.publisher else ""
        found.append(
            js_api.StreamSource(
                name=source.name,
                filter_subject=f"{config.topic}.{publisher}>",
                external=None
                if api is None
                else js_api.ExternalStream(api=api, deliver=source.deliver_prefix),
            )
        )
    return found


def _wanted(config: StreamConfig) -> js_api.StreamConfig:
    """The stream as the config describes it."""
    return js_api.StreamConfig(
        name=config.stream,
        # A central stream built from sources takes no subjects of its own:
        # whatever it holds came through a datacenter's stream.
        subjects=None if config.sources else [config.subjects],
        sources=_sources(config) or None,
        storage=_storage(config),
        retention=js_api.RetentionPolicy.LIMITS,
        discard=js_api.DiscardPolicy.OLD,
        max_age=config.stream_max_age,
        max_bytes=config.stream_max_bytes,
        max_msgs_per_subject=config.max_msgs_per_subject,
        num_replicas=config.replicas,
        duplicate_window=min(120.0, config.stream_max_age),
        allow_direct=True,
        metadata={HISTORY_KEY: "remote_write"} if config.history else None,
    )


def _storage(config: StreamConfig) -> js_api.StorageType:
    return js_api.StorageType.FILE if config.storage == "file" else js_api.StorageType.MEMORY


def _check_fits(
    config: StreamConfig, have: js_api.StreamConfig, wanted: js_api.StreamConfig
) -> None:
    """Raise StreamMismatchError for what an update cannot fix: subjects, storage."""
    subjects = have.subjects or []
    # A stream built from other streams (sources, a mirror) holds their subjects
    # without taking any itself: the consumer's filter picks the topic.
    gathers = bool(have.sources or have.mirror) and not subjects
    if config.sources and subjects:
        raise StreamMismatchError(
            f"stream {config.stream} exists with subjects of its own ({', '.join(subjects)}),"
            " the config builds it from sources; set `stream` to another name"
        )
    if not gathers and not any(_covers(subject, config.subjects) for subject in subjects):
        raise StreamMismatchError(
            f"stream {config.stream} exists but does not take {config.subjects} "
            f"(its subjects: {', '.join(subjects) or 'none'}); set `stream` to another name "
            "or add the subject to the stream"
        )
    if have.storage != wanted.storage:
        raise StreamMismatchError(
            f"stream {config.stream} uses {have.storage} storage, the config asks for "
            f"{config.storage}; storage cannot be changed on an existing stream"
        )


def _covers(pattern: str, subjects: str) -> bool:
    """Whether the stream subject `pattern` takes every subject the filter `subjects` does."""
    have, want = pattern.split("."), subjects.split(".")
    for index, part in enumerate(have):
        if part == ">":
            return index < len(want)
        if index >= len(want) or (part != want[index] and part != "*") or want[index] == ">":
            return False
    return len(have) == len(want)


def _changes(
    have: js_api.StreamConfig, wanted: js_api.StreamConfig
) -> dict[str, tuple[object, object]]:
    """The managed limits that differ: key -> (current, desired)."""
    changes: dict[str, tuple[object, object]] = {}
    for key in MANAGED_LIMITS:
        current, desired = getattr(have, key), getattr(wanted, key)
        if key == "max_age" and current is not None and desired is not None:
            if abs(current - desired) < 0.001:
                continue
        elif current == desired:
            continue
        changes[key] = (current, desired)
    return changes
