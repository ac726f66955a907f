"""Logging: text or JSON lines on stderr (journald priorities when under it), JSON to a logfile."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, TextIO

from prometheus_streams.secret import redact_text

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Structured fields a log call may pass with `extra=`; the JSON lines carry them when present.
FIELDS = ("job", "target", "publisher", "error", "connection", "subject", "reason")
# syslog priorities, as journald reads them from a `<N>` line prefix.
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


class JSONFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        """Render a record as a JSON line."""
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry)


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level: 2 critical ... 7 debug."""
    for level, priority in _PRIORITIES:
        if levelno >= level:
            return priority
    return 7


class JournalFormatter(logging.Formatter):
    """Prefix every line with `<priority>` so journald files it at the right level."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's text, each line prefixed (tracebacks included)."""
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in self._inner.format(record).split("\n"))


def under_journald(stream: TextIO) -> bool:
    """Whether `stream` is the journal stream systemd named in JOURNAL_STREAM."""
    # systemd sets JOURNAL_STREAM to the device:inode of the stream it gave us;
    # a child whose stderr was redirected elsewhere inherits the variable, not the stream.
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


class RedactFilter(logging.Filter):
    """Redacts the user info of any URL in a record, whichever library logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the message (and traceback) with URL user info redacted; keep the record."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a broken format: the handler reports it as logging always does
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        # Fields given with `extra=` reach JSON lines as they are.
        for name, value in list(vars(record).items()):
            if isinstance(value, str) and "@" in value:
                setattr(record, name, redact_text(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        return True


def level_for(debug: bool) -> int:
    """Progress (info) by default, as the original did; `debug` shows everything."""
    return logging.DEBUG if debug else logging.INFO


def setup(level: int, logfile: str | None = None, fmt: str = "text") -> None:
    """Configure the root logger; safe to call again after the config is known."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    stderr = logging.StreamHandler(sys.stderr)
    formatter = JSONFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    if under_journald(sys.stderr):
        formatter = JournalFormatter(formatter)
    stderr.setFormatter(formatter)
    stderr.addFilter(RedactFilter())
    root.addHandler(stderr)
    if logfile:
        handler = logging.FileHandler(logfile, encoding="utf-8")
        handler.setFormatter(JSONFormatter())
        handler.addFilter(RedactFilter())
        root.addHandler(handler)
    root.setLevel(level)
    # The NATS client logs every reconnect attempt; our callbacks already report them.
    logging.getLogger("nats").setLevel(max(level, logging.WARNING))
