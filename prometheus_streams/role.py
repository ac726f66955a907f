"""What the rest of the program needs of a poller or a receiver."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from prometheus_streams.config import Config


class Role(Protocol):
    """A poller or receiver, as the CLI, the monitor and management see it."""

    # Set by the CLI: read the config file again and apply it (what SIGHUP does).
    reloader: Callable[[str], dict[str, Any]] | None

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set."""

    def ready(self) -> tuple[bool, str]:
        """Whether it is ready, and why not."""

    def status(self) -> dict[str, Any]:
        """What the status page and management report."""

    @property
    def paused(self) -> bool:
        """True while paused by an operator."""

    def pause(self, why: str = ...) -> bool:
        """Pause; return whether the state changed."""

    def resume(self, why: str = ...) -> bool:
        """Resume; return whether the state changed."""

    def reload(self, config: Config) -> None:
        """Apply a new configuration."""

    def reload_from_file(self, who: str) -> dict[str, Any]:
        """Read the config file again and apply it, as SIGHUP does; the result and errors."""

    def top(self, n: int) -> dict[str, Any]:
        """The top `n` offenders in series (by metric name, target, job, publisher, churn)."""
