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

import json
from collections.abc import Sequence
from pathlib import Path

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

    def __init__(self, tmp_dir: Path, server_name: str, domain: str, body: str) -> None:
        self.server_name = server_name
        self.domain = domain
        self.body = body
        super().__init__(tmp_dir)

    def _write_config(self) -> None:
        self.config_path.write_text(
            jetstream_node(
                self.server_name, self.port, self.monitor_port, self.store_dir, self.domain
            )
            + self.body
        )


class Topology:
    """A hub plus one leaf node per datacenter, each leaf link through a TcpProxy.

    `hub_leaf_urls` ("host:port" of the central leafnode listeners) lets a
    3-node cluster stand in for the single hub started here.
    """

    def __init__(
        self,
        tmp_dir: Path,
        datacenters: Sequence[str] = ("dc1", "dc2"),
        hub_leaf_urls: Sequence[str] | None = None,
    ) -> None:
        self.tmp_dir = tmp_dir
        self.datacenters = tuple(datacenters)
        self.hub: NatsNode | None = None
        if hub_leaf_urls is None:
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

    async def cut(self, dc: str) -> None:
        """Cut the WAN between `dc` and the centre."""
        for proxy in self.proxies[dc]:
            await proxy.cut()

    async def restore(self, dc: str) -> None:
        """Restore the WAN of `dc`."""
        for proxy in self.proxies[dc]:
            await proxy.restore()

    def central_url(self, user: str = "central") -> str:
        """The hub's client URL, logged in as `user` of CENTRAL."""
        assert self.hub is not None, "no hub of our own: use the cluster's URLs"
        return f"nats://{user}:{user}-pw@{HOST}:{self.hub.port}"

    def leaf_url(self, dc: str, user: str = "poller") -> str:
        """A leaf node's client URL, logged in as `<user>-<dc>`."""
        return f"nats://{user}-{dc}:{user}-{dc}-pw@{HOST}:{self.leaves[dc].port}"

    def linked(self, dc: str) -> bool:
        """Whether the leaf node of `dc` has its leaf link up (asked from the leaf's side)."""
        status, body = http_request("GET", f"{self.leaves[dc].monitor_url}/leafz")
        return status == 200 and bool(json.loads(body).get("leafnodes"))
