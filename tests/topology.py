"""Several datacenters on one bus: a central JetStream hub and a leaf node per datacenter.

The configs follow docs/topology.md: the hub (here one server; give `Topology`
a cluster's leafnode URLs instead) has the account CENTRAL with JetStream in
domain `central` and a `leafnodes` listener; each datacenter runs a leaf node
with its own JetStream domain (`dc1`, `dc2`) and its own account (`DC1`,
`DC2`), bound to CENTRAL over its leaf link. Each link runs through a TcpProxy,
so a test can cut the WAN and restore it. The config text is in
benchmarks/natsconf.py, which the benchmark's `topology` scenario starts too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from cluster import NatsCluster, quiet_port
from servers import HOST, NatsServer, free_port, http_request
from tcpproxy import TcpProxy

from benchmarks.natsconf import (
    CENTRAL_DOMAIN,
    STREAM,
    TOPIC,
    hub_config,
    jetstream_node,
    leaf_config,
)

__all__ = ["CENTRAL_DOMAIN", "STREAM", "TOPIC", "Topology", "hub_config"]


class NatsNode(NatsServer):
    """A nats-server of the topology: JetStream in a domain plus the given config body."""

    def __init__(
        self, tmp_dir: Path, server_name: str, domain: str, body: str, port: int | None = None
    ) -> None:
        self.server_name = server_name
        self.domain = domain
        self.body = body
        super().__init__(tmp_dir, port=port)

    def _write_config(self) -> None:
        self.config_path.write_text(
            jetstream_node(
                self.server_name, self.port, self.monitor_port, self.store_dir, self.domain
            )
            + self.body
        )


class CentralCluster(NatsCluster):
    """The central cluster of docs/topology.md: three nodes in domain `central`.

    Every node has the hub's accounts (CENTRAL with a leaf user per
    datacenter, SYS) and its own `leafnodes` listener; only the server name,
    the ports and the routes differ between the nodes.
    """

    account = "CENTRAL"

    def __init__(self, tmp_dir: Path, datacenters: Sequence[str]) -> None:
        self.datacenters = tuple(datacenters)
        super().__init__(tmp_dir)

    def server_name(self, index: int) -> str:
        """central-1, central-2, central-3."""
        return f"central-{index + 1}"

    def _node(self, index: int) -> NatsServer:
        body = self._cluster_block(index) + hub_config(self.leafnode_ports[index], self.datacenters)
        node = NatsNode(
            self.tmp_dir / self.server_name(index),
            self.server_name(index),
            CENTRAL_DOMAIN,
            body,
            port=quiet_port(),
        )
        node.monitor_port = quiet_port()
        node._write_config()
        return node

    def urls(self, user: str = "central") -> list[str]:
        """Every node's client URL, logged in as `user` of CENTRAL."""
        return [f"nats://{user}:{user}-pw@{HOST}:{node.port}" for node in self.nodes]


class Topology:
    """A hub plus one leaf node per datacenter, each leaf link through a TcpProxy.

    With `cluster`, the hub is a CentralCluster (3 nodes, every leaf linked to
    all three through a proxy each); `hub_leaf_urls` ("host:port" of central
    leafnode listeners started elsewhere) replaces the hub altogether.
    """

    def __init__(
        self,
        tmp_dir: Path,
        datacenters: Sequence[str] = ("dc1", "dc2"),
        hub_leaf_urls: Sequence[str] | None = None,
        cluster: bool = False,
    ) -> None:
        self.tmp_dir = tmp_dir
        self.datacenters = tuple(datacenters)
        self.hub: NatsNode | None = None
        self.cluster: CentralCluster | None = None
        if cluster:
            self.cluster = CentralCluster(tmp_dir / "central", datacenters)
            hub_leaf_urls = [f"{HOST}:{port}" for port in self.cluster.leafnode_ports]
        elif hub_leaf_urls is None:
            leaf_port = free_port()
            self.hub = NatsNode(
                tmp_dir / "hub", "hub", CENTRAL_DOMAIN, hub_config(leaf_port, datacenters)
            )
            hub_leaf_urls = [f"{HOST}:{leaf_port}"]
        self.hub_leaf_urls = tuple(hub_leaf_urls)
        self.proxies: dict[str, list[TcpProxy]] = {}
        self.leaves: dict[str, NatsNode] = {}

    async def start(self) -> None:
        """Start the hub, the proxies and the leaf nodes; wait until every leaf is linked."""
        if self.hub is not None:
            self.hub.start()
        if self.cluster is not None:
            await asyncio.to_thread(self.cluster.start)
        for dc in self.datacenters:
            proxies = []
            for url in self.hub_leaf_urls:
                host, port = url.rsplit(":", 1)
                proxy = TcpProxy(host, int(port))
                await proxy.start()
                proxies.append(proxy)
            self.proxies[dc] = proxies
            leaf = NatsNode(
                self.tmp_dir / dc,
                f"leaf-{dc}",
                dc,
                leaf_config(dc, [f"{HOST}:{p.port}" for p in proxies]),
            )
            leaf.start()
            self.leaves[dc] = leaf

    async def stop(self) -> None:
        """Stop every server and proxy."""
        for leaf in self.leaves.values():
            leaf.stop()
        for proxies in self.proxies.values():
            for proxy in proxies:
                await proxy.stop()
        if self.hub is not None:
            self.hub.stop()
        if self.cluster is not None:
            self.cluster.stop()

    async def cut(self, dc: str) -> None:
        """Cut the WAN between `dc` and the centre."""
        for proxy in self.proxies[dc]:
            await proxy.cut()

    async def restore(self, dc: str) -> None:
        """Restore the WAN of `dc`."""
        for proxy in self.proxies[dc]:
            await proxy.restore()

    def central_url(self, user: str = "central") -> str:
        """The hub's client URL (every node's, comma-separated), logged in as `user` of CENTRAL."""
        if self.cluster is not None:
            return ",".join(self.cluster.urls(user))
        assert self.hub is not None, "no hub of our own: use the cluster's URLs"
        return f"nats://{user}:{user}-pw@{HOST}:{self.hub.port}"

    def leaf_url(self, dc: str, user: str = "poller") -> str:
        """A leaf node's client URL, logged in as `<user>-<dc>`."""
        return f"nats://{user}-{dc}:{user}-{dc}-pw@{HOST}:{self.leaves[dc].port}"

    def linked(self, dc: str) -> bool:
        """Whether the leaf node of `dc` has its leaf link up (asked from the leaf's side)."""
        status, body = http_request("GET", f"{self.leaves[dc].monitor_url}/leafz")
        return status == 200 and bool(json.loads(body).get("leafnodes"))
