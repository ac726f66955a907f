"""Converters for single YAML values: each returns the value or raises ValueError saying why."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from prometheus_streams.secret import redact_url
from prometheus_streams.units import parse_duration, parse_size

NAME_RE = re.compile(r"[^\x00-\x1f\x7f]+")
TOPIC_RE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


def as_bool(value: object) -> bool:
    """`true` or `false`, nothing YAML would merely coerce."""
    if isinstance(value, bool):
        return value
    raise ValueError(f"must be true or false, got {value!r}")


def as_str(value: object) -> str:
    """A non-empty string without control characters; numbers are taken as their text."""
    if isinstance(value, str) and value.strip():
        if not NAME_RE.fullmatch(value):
            raise ValueError(f"must not contain control characters: {value!r}")
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"must be a non-empty string, got {value!r}")


def as_name(value: object) -> str:
    """A name that travels in subjects and headers: no blanks around it (NATS strips them)."""
    text = as_str(value)
    if text != text.strip():
        raise ValueError(f"must not start or end with blanks: {text!r}")
    return text


def name_list(value: object) -> tuple[str, ...]:
    """A list of names (see `as_name`)."""
    if not isinstance(value, list):
        raise ValueError(f"must be a list of names, got {value!r}")
    names = []
    for i, item in enumerate(value):
        try:
            names.append(as_name(item))
        except ValueError as exc:
            raise ValueError(f"item {i}: {exc}") from None
    return tuple(names)


def secret_text(value: object) -> str:
    """A password or token given inline."""
    # Unlike as_str, never echo the value: it is a password or a token.
    if isinstance(value, str) and value.strip():
        if not NAME_RE.fullmatch(value):
            raise ValueError("must not contain control characters (value not shown)")
        return value
    raise ValueError(f"must be a non-empty string, got {type(value).__name__}")


def size_in(low: int, high: int) -> Callable[[object], int]:
    """A size (`64KiB`, `1048576`) between `low` and `high` bytes."""

    def convert(value: object) -> int:
        size = parse_size(value)
        if not low <= size <= high:
            raise ValueError(f"must be between {low} and {high} bytes, got {size}")
        return size

    return convert


def int_in(low: int, high: int) -> Callable[[object], int]:
    """An integer between `low` and `high`."""

    def convert(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return convert


def one_of(*choices: str) -> Callable[[object], str]:
    """One of the given words."""

    def convert(value: object) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return convert


def positive_duration(value: object) -> float:
    """A duration (`30s`, `1m30s`, `90`) greater than zero, in seconds."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be greater than zero, got {value!r}")
    return seconds


def http_url(value: object) -> str:
    """An http(s) URL with a host and a valid port."""
    text = as_str(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {redact_url(text)!r}")
    try:
        parts.port  # noqa: B018 - property raises on a bad port
    except ValueError as exc:
        raise ValueError(f"bad port in URL {redact_url(text)!r}: {exc}") from None
    return text


def nats_urls(value: object) -> tuple[str, ...]:
    """NATS server URLs from one URL, a comma-separated list or a list; `nats://` by default."""
    items: list[object]
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list):
        items = list(value)
    else:
        raise ValueError(f"must be a URL, a comma-separated list or a list, got {value!r}")
    urls = []
    for item in items:
        text = as_str(item)
        if "://" not in text:
            text = f"nats://{text}"
        parts = urlsplit(text)
        if parts.scheme not in ("nats", "tls", "ws", "wss") or not parts.hostname:
            raise ValueError(f"not a NATS URL: {redact_url(text)!r}")
        urls.append(text)
    if not urls:
        raise ValueError("needs at least one URL")
    return tuple(urls)


def url_path(value: object) -> str:
    """The path part of a URL, starting with /."""
    text = as_str(value)
    if not text.startswith("/") or any(c in text for c in " ?#"):
        raise ValueError(f"must be a URL path starting with /: {text!r}")
    return text
