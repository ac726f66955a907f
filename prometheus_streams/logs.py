"""Logging: text on stderr, JSON lines to the configured logfile."""

from __future__ import annotations

import json
import logging
import sys
import time

from prometheus_streams.secret import redact_text


class JSONFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        """Render a record as a JSON line."""
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry)


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


def setup(level: int, logfile: str | None = None) -> None:
    """Configure the root logger; safe to call again after the config is known."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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
