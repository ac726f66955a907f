"""What the stale-group sweep needs to know: push times of groups, and whose groups are ours.

Push times come from the Pushgateway's own `/metrics`, read as a stream:
only its `push_time_seconds` and `push_failure_time_seconds` lines are kept,
one small record per group, and the reading stops once both families have
passed. `/api/v1/metrics` would hand over every pushed series as JSON, and
parsing all of it on every sweep made the receiver's memory climb.

Our publishers are those the stream holds subjects of
(`<topic>.<publisher>.<job>.<instance>`): the stream outlives a receiver
restart, so a publisher seen before the restart is still recognised after it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import api as js_api
from prometheus_client import CollectorRegistry, Gauge

from prometheus_streams import wire
from prometheus_streams.receiver.metrics import counter, own

log = logging.getLogger(__name__)

# The stream's subjects are read again at most this often, when a stale group
# of a publisher not known yet turns up (another receiver may have seen it).
PUBLISHER_REFRESH = 300.0
STREAM_INFO_TIMEOUT = 10.0
# Why a stale group of ours was kept: a newer scrape of it waits in the stream
# (or is being pushed), the stream could not be asked, or the sweep had asked enough.
SKIP_REASONS = ("waiting_in_stream", "lookup_failed", "lookup_limit")
# A line longer than this cannot be one of the two families read here, and is skipped.
MAX_LINE = 64 * 1024
_FAMILIES = {b"push_time_seconds": "pushed", b"push_failure_time_seconds": "failed"}
_SAMPLE = re.compile(
    rb'(push_time_seconds|push_failure_time_seconds)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\}'
    rb" ([^ \n]+)(?: [^ \n]+)?"
)
_LABEL = re.compile(rb'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')
_UNESCAPE = re.compile(rb"\\(.)")
_ESCAPES = {b"n": b"\n", b"\\": b"\\", b'"': b'"'}


@dataclass
class GroupTimes:
    """One Pushgateway group: its grouping labels and its push times (0 when none)."""

    labels: dict[str, str]
    pushed: float = 0.0
    failed: float = 0.0


class PushTimeParser:
    """Collects the push times of every group from /metrics text, fed in chunks."""

    def __init__(self) -> None:
        self.groups: dict[tuple[tuple[str, str], ...], GroupTimes] = {}
        self.unparsed = 0  # lines of the two families that could not be read
        self._tail = b""
        self._skipping = False  # inside a line too long to keep
        self._family: bytes | None = None  # the family of the last sample line
        self._done: set[bytes] = set()

    @property
    def complete(self) -> bool:
        """Both families were read to their end: the rest of the page is not needed."""
        return len(self._done) == len(_FAMILIES)

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the page."""
        data = self._tail + chunk if self._tail else chunk
        start = 0
        if self._skipping:
            newline = data.find(b"\n")
            if newline < 0:
                self._tail = b""
                return
            self._skipping = False
            start = newline + 1
        end = data.rfind(b"\n", start) + 1
        if end:
            self._lines(data, start, end)
        else:
            end = start
        self._tail = data[end:]
        if len(self._tail) > MAX_LINE:
            self._tail = b""
            self._skipping = True
            self._line(b"#")  # whatever it is, it ends a family that was running

    def close(self) -> list[GroupTimes]:
        """The groups found; call after the last chunk."""
        if self._tail and not self._skipping:
            self._line(self._tail)
        self._tail = b""
        return list(self.groups.values())

    def _lines(self, data: bytes, start: int, end: int) -> None:
        """The complete lines in data[start:end]; only those of our families reach Python."""
        i = start
        while i < end:
            if self._family is None and not data.startswith(b"push_", i):
                # Every other series of the page is skipped by a search in C.
                found = data.find(b"\npush_", i, end)
                if found < 0:
                    return
                i = found + 1
            newline = data.find(b"\n", i, end)
            self._line(data[i:newline])
            i = newline + 1

    def _line(self, line: bytes) -> None:
        if not line:
            return
        family = None
        if line.startswith(b"push_"):
            family = line.split(b"{", 1)[0].split(b" ", 1)[0]
            if family not in _FAMILIES:
                family = None
        if self._family is not None and family != self._family:
            self._done.add(self._family)
        self._family = family
        if family is None:
            return
        match = _SAMPLE.fullmatch(line)
        try:
            if match is None:
                raise ValueError("not a sample line")
            labels = {
                name.decode("ascii"): _UNESCAPE.sub(
                    lambda m: _ESCAPES.get(m.group(1), m.group(0)), value
                ).decode("utf-8")
                for name, value in _LABEL.findall(match.group(2))
            }
            value = float(match.group(3))
        except (ValueError, UnicodeDecodeError):
            # Names or values this reader does not understand: such a group
            # is never touched, as it could not be named exactly in a DELETE.
            self.unparsed += 1
            return
        key = tuple(sorted(labels.items()))
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = GroupTimes(labels)
        setattr(group, _FAMILIES[family], value)


async def stream_publishers(nc: NATS, stream: str, topic: str) -> set[str]:
    """Every publisher the stream holds a subject of, read page by page.

    The server answers with at most a page of subjects at a time; each page
    is reduced to its publishers at once, so a stream of many targets costs
    one page of memory, not all of them.
    """
    publishers: set[str] = set()
    prefix = topic + "."
    offset = 0
    while True:
        request = json.dumps({"subjects_filter": f"{topic}.>", "offset": offset}).encode()
        msg = await nc.request(
            f"{js_api.DEFAULT_PREFIX}.STREAM.INFO.{stream}", request, STREAM_INFO_TIMEOUT
        )
        answer = json.loads(msg.data)
        if "error" in answer:
            error = answer["error"]
            raise ValueError(f"STREAM.INFO {stream}: {error.get('description', error)}")
        subjects = (answer.get("state") or {}).get("subjects") or {}
        for subject in subjects:
            token = subject[len(prefix) :].split(".", 1)[0] if subject.startswith(prefix) else ""
            try:
                publishers.add(wire.unescape_token(token))
            except ValueError:
                log.debug("subject %s does not follow the wire format; ignored", subject)
        offset += len(subjects)
        if not subjects or offset >= int(answer.get("total") or 0):
            return publishers


class SweepState:
    """What the sweep remembers between runs, and its metrics on the receiver's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.foreign = Gauge(
            "stale_foreign_groups",
            "Stale Pushgateway groups the last sweep left alone: not of a publisher seen"
            " on the stream or listed in stale_publishers",
            **own(registry),
        )
        self.without_push_time = Gauge(
            "stale_groups_without_push_time",
            "Pushgateway groups that never had a successful push (push_time_seconds 0),"
            " at the last sweep",
            **own(registry),
        )
        self.skipped = counter(
            registry,
            "stale_groups_skipped",
            "Stale groups not deleted by a sweep, by reason",
            ("reason",),
            SKIP_REASONS,
        )
        self.sweeps = counter(
            registry, "stale_sweeps", "Stale-group sweeps that listed the Pushgateway"
        )
        self.stream_publishers: set[str] = set()
        self.publishers_read_at = -PUBLISHER_REFRESH
        # Groups of ours without a push time: when this process first saw them.
        self.no_push_time: dict[str, float] = {}
        self.reported_foreign: set[str] = set()
        self.last: dict[str, Any] = {}

    def status(self) -> dict[str, Any]:
        """The last sweep's outcome, for the status page."""
        return {**self.last, "stream_publishers": sorted(self.stream_publishers)}
