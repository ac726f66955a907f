"""Child processes of the benchmark: start, wait ready, measure from /proc, always stop.

Every child runs in its own session (process group) and gets SIGKILL when the
benchmark dies (PR_SET_PDEATHSIG), and `Processes.stop_all()` kills whatever is
still running from a `finally`, so Ctrl-C or an exception leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET a loopback URL; (status, body), also for 4xx/5xx; status 0 if unreachable."""
    return http_request("GET", url, timeout)


def http_request(method: str, url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """A body-less request to a loopback URL; (status, body); status 0 if unreachable."""
    if not url.startswith(f"http://{HOST}:"):
        raise ValueError(f"refusing non-loopback URL {url!r}")
    request = urllib.request.Request(url, method=method)  # noqa: S310 - loopback http only
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGKILL it if the benchmark dies.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _child_setup(cpus: frozenset[int] | None) -> Callable[[], None]:
    """What runs in the child before exec: die with us, and stay on `cpus` if given.

    Set before exec, the CPUs hold for every thread the program starts, and Go
    programs size GOMAXPROCS by them.
    """

    def setup() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        _die_with_parent()

    return setup


@contextlib.contextmanager
def on_cpus(cpus: frozenset[int] | None) -> Iterator[None]:
    """Run the benchmark's own thread (a direct-push client) on `cpus` for a while."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@dataclass
class Usage:
    """CPU seconds (user + system) and memory of a process at one moment."""

    cpu: float
    rss_kib: int
    peak_kib: int


def usage(pid: int) -> Usage:
    """Read /proc/<pid>/stat (utime, stime) and /proc/<pid>/status (VmRSS, VmHWM)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name (which may hold spaces) start at state (field 3).
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    rss = peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    return Usage(cpu, rss, peak)


@dataclass
class Proc:
    """One child process and its log file."""

    name: str
    argv: list[str]
    log_path: Path
    ready: Callable[[], bool] | None = None
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self.process is not None, f"{self.name} not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self.process is not None and self.process.poll() is None

    def usage(self) -> Usage:
        """CPU and memory now."""
        return usage(self.pid)

    def log_tail(self, limit: int = 3000) -> str:
        """The end of the process's output."""
        try:
            return self.log_path.read_bytes()[-limit:].decode("utf-8", "replace")
        except OSError:
            return "<no log>"


class Processes:
    """Starts children and guarantees they are gone by the end."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.children: list[Proc] = []

    def start(
        self,
        name: str,
        argv: list[str],
        ready: Callable[[], bool] | None = None,
        timeout: float = 60.0,
        env: dict[str, str] | None = None,
        cpus: frozenset[int] | None = None,
    ) -> Proc:
        """Start `argv` in its own process group; wait until `ready()` (bounded by timeout).

        `cpus`, when given, are the only CPUs the process (every thread of it) may
        run on; it is stopped with an error if it is not confined to them.
        """
        proc = Proc(name, argv, self.work_dir / f"{name}.log", ready, env)
        proc._log = proc.log_path.open("ab")
        proc.process = subprocess.Popen(  # noqa: S603 - fixed argv built by the benchmark
            argv,
            stdin=subprocess.DEVNULL,
            stdout=proc._log,
            stderr=subprocess.STDOUT,
            cwd=self.work_dir,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=_child_setup(cpus),
        )
        self.children.append(proc)
        if cpus is not None:
            allowed = os.sched_getaffinity(proc.process.pid)
            if allowed != cpus:
                self.stop(proc)
                raise RuntimeError(f"{name} runs on CPUs {sorted(allowed)}, not {sorted(cpus)}")
        if ready is not None:
            deadline = time.monotonic() + timeout
            while not ready():
                if not proc.running:
                    raise RuntimeError(f"{name} exited during start-up:\n{proc.log_tail()}")
                if time.monotonic() > deadline:
                    self.stop(proc)
                    raise RuntimeError(f"{name} not ready after {timeout:g}s:\n{proc.log_tail()}")
                time.sleep(0.05)
        return proc

    def stop(self, proc: Proc, grace: float = 15.0) -> None:
        """SIGTERM the process group, wait up to `grace` seconds, then SIGKILL it."""
        process = proc.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # The group may hold children the leader left behind.
        if process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if proc._log is not None:
            proc._log.close()
            proc._log = None
        if proc in self.children:
            self.children.remove(proc)

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Stop, on leaving, every child started inside (also on errors)."""
        before = set(map(id, self.children))
        try:
            yield
        finally:
            for proc in reversed([p for p in self.children if id(p) not in before]):
                self.stop(proc)

    def stop_all(self) -> None:
        """Stop every child still known, newest first (clients before servers)."""
        for proc in reversed(list(self.children)):
            try:
                self.stop(proc, grace=5.0)
            except Exception as exc:
                print(f"benchmark: could not stop {proc.name} ({proc.pid}): {exc}")
