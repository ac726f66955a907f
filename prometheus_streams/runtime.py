"""What both roles share: the pause gate, the recent errors, readiness, and the run phases.

The process side (signals, sd_notify, supervised tasks, the forced exit) is
in service.py; this module is the role side of the same lifecycle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Gauge

    from prometheus_streams.config import Config, StreamConfig
    from prometheus_streams.service import Supervisor
    from prometheus_streams.transport import Connection

RECENT_ERRORS = 20


def warn_without_speedups(native: object, cost: str, log: logging.Logger) -> bool:
    """Log a warning when the package was built without _speedups; whether it did."""
    if native is not None:
        return False
    log.warning(
        "built without its C pass (prometheus_streams._speedups): %s; reinstall with"
        " a C compiler and Python's headers (Debian: gcc python3-dev) to build it",
        cost,
    )
    return True


class PauseGate:
    """An operator's pause switch: a flag, its gauge, a log line, and an event to wait on."""

    def __init__(self, role: str, gauge: Gauge, effect: str, log: logging.Logger) -> None:
        self._role = role
        self._gauge = gauge
        self._effect = effect  # what pausing stops, for the log
        self._log = log  # the role's logger: operators filter on its name
        self._resumed = asyncio.Event()
        self._resumed.set()

    @property
    def paused(self) -> bool:
        """True while paused by an operator."""
        return not self._resumed.is_set()

    def pause(self, why: str) -> bool:
        """Pause; return whether the state changed."""
        if self.paused:
            return False
        self._resumed.clear()
        self._gauge.set(1)
        self._log.warning("%s paused (%s): %s", self._role, why, self._effect)
        return True

    def resume(self, why: str) -> bool:
        """Resume; return whether the state changed."""
        if not self.paused:
            return False
        self._resumed.set()
        self._gauge.set(0)
        self._log.warning("%s resumed (%s)", self._role, why)
        return True

    async def wait_resumed(self) -> None:
        """Return once not paused."""
        await self._resumed.wait()


class RecentErrors:
    """The last few errors, newest last, for the status page."""

    def __init__(self, size: int = RECENT_ERRORS) -> None:
        self._ring: deque[tuple[float, str]] = deque(maxlen=size)
        self.last = ""

    def note(self, text: str) -> None:
        """Remember an error with the time it happened."""
        self.last = text
        self._ring.append((time.time(), text))

    def for_status(self) -> list[dict[str, Any]]:
        """The errors as the status page shows them, newest first."""
        return [{"time": t, "error": e} for t, e in reversed(self._ring)]


class Readiness:
    """Ready once connected to NATS with the stream checked (and the consumer bound)."""

    def __init__(self, conn: Connection, checked: Callable[[], bool] | None = None) -> None:
        self._conn = conn
        # The receiver's consumer knows whether it is bound; the poller sets the flag.
        self._checked = checked
        self._flag = False

    @property
    def stream_checked(self) -> bool:
        """Whether the stream was checked (and the consumer bound) since the last connect."""
        return self._checked() if self._checked is not None else self._flag

    @stream_checked.setter
    def stream_checked(self, value: bool) -> None:
        self._flag = value

    def check(self) -> tuple[bool, str]:
        """Whether ready, and why not."""
        if not self._conn.connected.is_set():
            return False, self._conn.why_not_connected()
        if not self.stream_checked:
            return False, "stream not checked yet"
        return True, "ready"

    @property
    def ok(self) -> bool:
        """Connected with the stream checked: work can flow."""
        return self.stream_checked and self._conn.connected.is_set()


class SharedRole:
    """The operator-facing parts of a role that both roles answer the same way.

    A role sets these attributes in its constructor.
    """

    config: Config
    stream: StreamConfig
    conn: Connection
    gate: PauseGate
    errors: RecentErrors
    readiness: Readiness
    # Set by the CLI: read the config file again and apply it (what SIGHUP does).
    reloader: Callable[[str], dict[str, Any]] | None = None

    def reload_from_file(self, who: str) -> dict[str, Any]:
        """Read the config file again and apply it, as SIGHUP does; the result and errors."""
        if self.reloader is None:
            return {"reloaded": False, "errors": ["no config file to reload from"]}
        return self.reloader(who)

    @property
    def paused(self) -> bool:
        """True while paused by an operator."""
        return self.gate.paused

    def pause(self, why: str = "operator") -> bool:
        """Pause; return whether the state changed."""
        return self.gate.pause(why)

    def resume(self, why: str = "operator") -> bool:
        """Resume; return whether the state changed."""
        return self.gate.resume(why)

    def ready(self) -> tuple[bool, str]:
        """Ready once connected to NATS with the stream checked."""
        return self.readiness.check()

    @property
    def last_error(self) -> str:
        """The newest error noted, or empty."""
        return self.errors.last

    def _note_error(self, text: str) -> None:
        self.errors.note(text)

    def _shared_status(self, role: str) -> dict[str, Any]:
        """The part of the status page both roles show."""
        return {
            "role": role,
            "identity": self.config.identity,
            "nats_connected": self.conn.connected.is_set(),
            "stream": self.stream.stream,
            "paused": self.paused,
            "recent_errors": self.errors.for_status(),
        }


class Phases(ABC):
    """A role's life in three phases, as uvicorn's Server has them.

    `start()` brings the role up, `serve(stop)` runs until `stop` (or a
    crashed task), `shutdown(grace)` finishes in-flight work within `grace`
    and then releases everything. A second signal forces the exit in
    service.py: that skips these waits, not the pid file and the log flush.
    """

    @abstractmethod
    async def start(self) -> None:
        """Bring the role up: connect, start its tasks."""

    _supervisor: Supervisor

    async def serve(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set or a supervised task crashed."""
        await self._supervisor.wait(stop)

    @abstractmethod
    async def shutdown(self, grace: float) -> None:
        """Finish in-flight work within `grace`, then close; raise if a task crashed."""

    async def _release(self, *closers: Callable[[], Awaitable[None]]) -> None:
        """The end of every shutdown: cancel what still runs, close in order, report a crash."""
        await self._supervisor.cancel_all()
        for close in closers:
            await close()
        self._supervisor.raise_if_failed()

    async def run_phases(self, stop: asyncio.Event, grace: float) -> None:
        """Start, serve until `stop`, shut down within `grace`."""
        await self.start()
        await self.serve(stop)
        await self.shutdown(grace)
