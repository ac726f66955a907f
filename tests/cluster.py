"""A real 3-node nats-server cluster with JetStream on free loopback ports.

Each node is a NatsServer (tests/servers.py) with a `cluster` block routing to
the other two and a `leafnodes` listener, so leaf nodes can attach to the
central cluster. A node can be stopped, killed (-9) and started again on the
same ports with the same store. Stream leaders are read from the servers'
monitoring endpoint, election times from their logs.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import time
import urllib.error
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from servers import HOST, NatsServer, StartStop, http_request, wait_for

__all__ = ["CLUSTER_NAME", "NatsCluster", "election_times", "quiet_port"]

CLUSTER_NAME = "central"
# Below Linux's ephemeral range (32768-60999 by default).
QUIET_PORTS = (20000, 32000)
# Each pytest-xdist worker (gw0, gw1, ...) picks from its own slice of that range:
# two workers checking the same port free before either's server listens on it
# was a collision (a node's leafnode port taken by another worker's cluster).
WORKER_SLICES = 4
# Another test suite on the machine may pick from the same range: a node that finds
# its port taken tries again, once a second, this many times.
PORT_TRIES = 15
_rng = random.Random()  # noqa: S311 - port picking, not cryptography
# Ports this process handed out: one not yet listened on is still "free" to bind().
_handed_out: set[int] = set()
FORMED_TIMEOUT = 60.0
# nats-server writes `[pid] 2026/12/03 13:50:00.123456 [INF] ...`; UTC with logtime_utc.
_LOG_TIME = re.compile(r"^\[\d+\] (\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+) \[\w+\] (.*)$")


class NatsCluster(StartStop):
    """Three NatsServer nodes forming one JetStream cluster (`central`).

    `extra_config` is added to every node's config (accounts, a JetStream
    domain through `jetstream_extra`, say).
    """

    size = 3
    # The account the streams live in, as the servers' election log lines name it.
    account = "$G"

    def __init__(
        self,
        tmp_dir: Path,
        extra_config: str = "",
        jetstream_extra: str = "",
        name: str = CLUSTER_NAME,
    ) -> None:
        self.tmp_dir = Path(tmp_dir)
        self.name = name
        self.extra_config = extra_config
        self.jetstream_extra = jetstream_extra
        self.route_ports = [quiet_port() for _ in range(self.size)]
        self.leafnode_ports = [quiet_port() for _ in range(self.size)]
        self.nodes: list[NatsServer] = [self._node(i) for i in range(self.size)]

    def _cluster_block(self, index: int) -> str:
        """The `cluster` block of node `index`: its route listener and routes to all three."""
        routes = ", ".join(f'"nats-route://{HOST}:{port}"' for port in self.route_ports)
        return (
            "logtime_utc: true\n"
            f"cluster {{\n"
            f'  name: "{self.name}"\n'
            f'  listen: "{HOST}:{self.route_ports[index]}"\n'
            f"  routes: [{routes}]\n"
            f"}}\n"
        )

    def _node(self, index: int) -> NatsServer:
        """Node `index` with its config written (quiet ports: it comes back on them)."""
        block = (
            self._cluster_block(index)
            + f'leafnodes {{ listen: "{HOST}:{self.leafnode_ports[index]}" }}\n'
        )
        extra = block + self.extra_config
        node = NatsServer(self.tmp_dir / f"n{index + 1}", port=quiet_port(), extra_config=extra)
        node.monitor_port = quiet_port()
        node._write_config()
        if self.jetstream_extra:
            node.config_path.write_text(
                node.config_path.read_text().replace(
                    "jetstream {\n", "jetstream {\n  " + self.jetstream_extra.strip() + "\n", 1
                )
            )
        return node

    # -- addresses -----------------------------------------------------------

    @property
    def client_urls(self) -> list[str]:
        """nats:// URL of every node's client port."""
        return [node.url for node in self.nodes]

    @property
    def leafnode_urls(self) -> list[str]:
        """nats-leaf:// URL of every node's leaf node listener."""
        return [f"nats-leaf://{HOST}:{port}" for port in self.leafnode_ports]

    def server_name(self, index: int) -> str:
        """The server_name of node `index` (what stream leaders are reported as)."""
        return f"test-nats-{self.nodes[index].port}"

    def index_of(self, server_name: str) -> int:
        """The node index of a server name."""
        for i in range(self.size):
            if self.server_name(i) == server_name:
                return i
        raise KeyError(server_name)

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        """Start every node, then wait until the cluster has a JetStream meta leader."""
        try:
            for node in self.nodes:
                _start(node)
            self.wait_formed()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every node that runs."""
        for node in self.nodes:
            node.stop()

    def stop_node(self, index: int) -> None:
        """Stop one node gracefully (SIGTERM: it hands over its leaderships)."""
        self.nodes[index].stop()

    def kill_node(self, index: int) -> float:
        """kill -9 one node; the wall-clock time of the kill."""
        killed_at = time.time()
        self.nodes[index].kill()
        return killed_at

    def restart_node(self, index: int) -> None:
        """Start a stopped or killed node again (same ports, same store), wait for the cluster."""
        node = self.nodes[index]
        if node.running:
            node.stop()
        _start(node)
        self.wait_formed()

    def wait_formed(self, timeout: float = FORMED_TIMEOUT) -> None:
        """Wait until every running node is healthy and sees a JetStream meta leader."""

        def formed() -> bool:
            for node in self.nodes:
                if not node.running:
                    continue
                if _get_status(f"{node.monitor_url}/healthz") != 200:
                    return False
                meta = self._jsz(node).get("meta_cluster") or {}
                if not meta.get("leader"):
                    return False
            return True

        wait_for(formed, timeout=timeout, message=f"cluster {self.name} did not form")

    # -- leaders -------------------------------------------------------------

    def _jsz(self, node: NatsServer, query: str = "") -> dict[str, Any]:
        try:
            status, body = http_request("GET", f"{node.monitor_url}/jsz{query}", timeout=2.0)
        except (OSError, urllib.error.URLError):
            return {}
        if status != 200:
            return {}
        document: dict[str, Any] = json.loads(body)
        return document

    def stream_leader(self, stream: str) -> int | None:
        """The index of the node leading `stream` now, None while it has no leader."""
        for node in self.nodes:
            if not node.running:
                continue
            document = self._jsz(node, "?streams=true")
            for account in document.get("account_details") or []:
                for detail in account.get("stream_detail") or []:
                    if detail.get("name") != stream:
                        continue
                    leader = (detail.get("cluster") or {}).get("leader")
                    if leader:
                        return self.index_of(leader)
        return None

    def consumer_leader(self, stream: str, consumer: str) -> int | None:
        """The index of the node leading `consumer` on `stream`, None while it has no leader."""
        for node in self.nodes:
            if not node.running:
                continue
            document = self._jsz(node, "?consumers=true")
            for account in document.get("account_details") or []:
                for detail in account.get("stream_detail") or []:
                    if detail.get("name") != stream:
                        continue
                    for info in detail.get("consumer_detail") or []:
                        leader = (info.get("cluster") or {}).get("leader")
                        if info.get("name") == consumer and leader:
                            return self.index_of(leader)
        return None

    def stream_replicas(self, stream: str) -> dict[str, Any]:
        """The cluster info of `stream` (leader and replicas) as a running node reports it."""
        for node in self.nodes:
            if node.running:
                for account in self._jsz(node, "?streams=true").get("account_details") or []:
                    for detail in account.get("stream_detail") or []:
                        if detail.get("name") == stream:
                            cluster: dict[str, Any] = detail.get("cluster") or {}
                            return cluster
        return {}

    def wait_stream_leader(self, stream: str, timeout: float = FORMED_TIMEOUT) -> int:
        """Wait until `stream` has a leader; its index."""
        # A tuple, as node 0 is a leader too and wait_for waits for a true value.
        found: tuple[int] = wait_for(
            lambda: (i,) if (i := self.stream_leader(stream)) is not None else None,
            timeout=timeout,
            message=f"stream {stream} has no leader",
        )
        return found[0]

    def leader_elected_at(self, stream: str, after: float) -> float | None:
        """When (wall clock) a node logged a new leader of `stream` after `after`."""
        marker = f"stream leader for '{self.account} > {stream}'"
        times = [t for t, _ in election_times(self, marker)]
        later = [t for t in times if t > after]
        return min(later) if later else None

    def consumer_elected_at(self, stream: str, consumer: str, after: float) -> float | None:
        """When a node logged a new leader of `consumer` on `stream` after `after`."""
        marker = f"consumer leader for '{self.account} > {stream} > {consumer}'"
        later = [t for t, _ in election_times(self, marker) if t > after]
        return min(later) if later else None


def election_times(cluster: NatsCluster, marker: str) -> list[tuple[float, str]]:
    """(wall-clock time, line) of every log line of every node that contains `marker`."""
    found = []
    for node in cluster.nodes:
        try:
            text = node.log_path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if marker not in line:
                continue
            match = _LOG_TIME.match(line)
            if match is None:
                continue
            stamp = datetime.strptime(match.group(1), "%Y/%m/%d %H:%M:%S.%f").replace(tzinfo=UTC)
            found.append((stamp.timestamp(), match.group(2)))
    return sorted(found)


def _start(node: NatsServer) -> None:
    """Start a node; wait for a port another process holds for a moment (not for ever)."""
    for attempt in range(PORT_TRIES):
        try:
            node.start()
            return
        except RuntimeError as exc:
            if "address already in use" not in str(exc) or attempt == PORT_TRIES - 1:
                raise
        time.sleep(1.0)


def quiet_port() -> int:
    """A free port below the ephemeral range, so no outgoing connection takes it meanwhile.

    A node restarted after a kill must get its ports back; free_port()'s come
    from the range the kernel hands to outgoing connections (the routes
    between the nodes among them), and one was taken before a restart. The
    port comes from this xdist worker's slice and is never handed out twice
    by one process.
    """
    low, high = _worker_range()
    if len(_handed_out) > (high - low) // 2:
        _handed_out.clear()  # long since listened on, or given back
    while True:
        port = _rng.randrange(low, high)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


def _worker_range() -> tuple[int, int]:
    """This process's slice of QUIET_PORTS: by xdist worker number, all of it without."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not worker[2:].isdigit():
        return QUIET_PORTS
    width = (QUIET_PORTS[1] - QUIET_PORTS[0]) // WORKER_SLICES
    low = QUIET_PORTS[0] + (int(worker[2:]) % WORKER_SLICES) * width
    return low, low + width


def _get_status(url: str) -> int | None:
    try:
        return http_request("GET", url, timeout=2.0)[0]
    except (OSError, urllib.error.URLError):
        return None
