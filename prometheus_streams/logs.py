"""Logging: text on stderr, JSON lines to the configured logfile."""

from __future__ import annotations

import json
import logging
import sys
import time


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
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


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
    root.addHandler(stderr)
    if logfile:
        handler = logging.FileHandler(logfile, encoding="utf-8")
        handler.setFormatter(JSONFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    # The NATS client logs every reconnect attempt; our callbacks already report them.
    logging.getLogger("nats").setLevel(max(level, logging.WARNING))
