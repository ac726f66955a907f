"""Run until signalled, stop gracefully, and never lose a crashed background task."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from prometheus_streams.errors import ConfigError, StreamMismatchError

log = logging.getLogger(__name__)

# Failures we can explain in one line; anything else gets a traceback in the log.
EXPECTED_FAILURES = (ConfigError, StreamMismatchError)


class TaskFailedError(Exception):
    """A supervised background task ended with an exception."""


class Supervisor:
    """Owns background tasks; a task that crashes stops the service instead of vanishing."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._failed = asyncio.Event()
        self.failure: BaseException | None = None

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start a supervised task."""
        task = asyncio.create_task(coro, name=f"{self._name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if isinstance(exc, EXPECTED_FAILURES):
            log.error("%s", exc)
        else:
            log.error("task %s crashed", task.get_name(), exc_info=exc)
        if self.failure is None:
            self.failure = exc
        self._failed.set()

    async def wait(self, stop: asyncio.Event) -> None:
        """Return when `stop` is set or a task has crashed."""
        waiters = [
            asyncio.create_task(stop.wait()),
            asyncio.create_task(self._failed.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def cancel_all(self) -> None:
        """Cancel every task still running and wait for them."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def raise_if_failed(self) -> None:
        """Turn a crashed task into a runtime failure of the whole service."""
        if self.failure is not None:
            raise TaskFailedError(str(self.failure) or type(self.failure).__name__)


def install_signal_handlers(
    stop: asyncio.Event,
    on_reload: Callable[[], object],
    ready: Callable[[], tuple[bool, str]] | None = None,
    on_force_exit: Callable[[], None] | None = None,
) -> None:
    """SIGTERM/SIGINT stop gracefully; a second one forces exit; SIGHUP reloads.

    `on_force_exit` runs before a forced exit (the pid file must not outlive
    us); after a reload READY=1 waits until `ready` says so again.
    """
    loop = asyncio.get_running_loop()
    renotify: list[asyncio.Task[None]] = []

    def on_stop(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s again: exiting without waiting", name)
            if on_force_exit is not None:
                try:
                    on_force_exit()
                except Exception:  # exiting regardless: say why the cleanup failed
                    log.exception("cleanup before the forced exit failed")
            logging.shutdown()
            os._exit(1)
        log.info("%s received: finishing in-flight work, then exiting", name)
        sd_notify("STOPPING=1")
        stop.set()

    def on_hup() -> None:
        log.info("SIGHUP received: reloading the configuration")
        sd_notify("RELOADING=1")
        try:
            on_reload()
        finally:
            for task in renotify:
                task.cancel()
            renotify.clear()
            if ready is None:
                sd_notify("READY=1")
            else:
                # Ready again only when the role says so (connected, stream checked).
                renotify.append(asyncio.create_task(notify_when_ready(ready, stop)))

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_stop, signum)
    loop.add_signal_handler(signal.SIGHUP, on_hup)


def sd_notify(state: str) -> bool:
    """Tell systemd about our state (READY=1, RELOADING=1, STOPPING=1) when it asked to know."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", os.environ["NOTIFY_SOCKET"], exc)
        return False
    return True


async def notify_when_ready(ready: Callable[[], tuple[bool, str]], stop: asyncio.Event) -> None:
    """Send READY=1 once the role reports ready (connected, stream checked)."""
    while not stop.is_set():
        ok, _ = ready()
        if ok:
            sd_notify("READY=1")
            return
        await asyncio.sleep(0.2)


async def first_of(*aws: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of several awaitables finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
