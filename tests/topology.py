"""Several datacenters on one bus: a central JetStream hub and a leaf node per datacenter.

The configs follow docs/topology.md: the hub (here one server; give `Topology`
a cluster's leafnode URLs instead) has the account CENTRAL with JetStream in
domain `central` and a `leafnodes` listener; each datacenter runs a leaf node
with its own JetStream domain (`dc1`, `dc2`) and its own account (`DC1`,
`DC2`), bound to CENTRAL over its leaf link. Each link runs through a TcpProxy,
so a test can cut the WAN and restore it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from servers import HOST, NatsServer, free_port, http_request
from tcpproxy import TcpProxy

TOPIC = "prometheus"
STREAM = "PROMETHEUS"
CENTRAL_DOMAIN = "central"


def poller_permissions(dc: str, stream: str = STREAM) -> str:
    """What a datacenter's poller may do on its leaf node: its own subjects, its edge stream."""
    # The leaf maps $JS.<domain>.API to its own $JS.API before it checks permissions.
    api = ", ".join(
        f'"{prefix}.STREAM.{call}.{stream}"'
        for prefix in (f"$JS.{dc}.API", "$JS.API")
        for call in ("INFO", "CREATE", "UPDATE")
    )
    return (
        "{ publish: { allow: ["
        f'"{TOPIC}.{dc}.>", {api}'
        "] }, subscribe: { allow: "
        '["_INBOX.>", "prometheus_streams.management.>", "$SRV.>"] }, allow_responses: true }'
    )


# What a leaf link may send into CENTRAL: answers to the centre's API calls and the
# sourced messages, but no call on the central JetStream and no scrape subject.
LEAF_PERMISSIONS = (
    f'{{ publish: {{ deny: ["$JS.API.>", "$JS.{CENTRAL_DOMAIN}.API.>", "$KV.>", "{TOPIC}.>"] }} }}'
)


class NatsNode(NatsServer):
    """A nats-server of the topology: JetStream in a domain plus the given config body."""

    def __init__(self, tmp_dir: Path, server_name: str, domain: str, body: str) -> None:
        self.server_name = server_name
        self.domain = domain
        self.body = body
        super().__init__(tmp_dir)

    def _write_config(self) -> None:
        self.config_path.write_text(
            f'server_name: "{self.server_name}"\n'
            f'listen: "{HOST}:{self.port}"\n'
            f'http: "{HOST}:{self.monitor_port}"\n'
            "jetstream {\n"
            f"  store_dir: {json.dumps(str(self.store_dir))}\n"
            f"  domain: {self.domain}\n"
            "}\n" + self.body
        )


def hub_config(leaf_port: int, datacenters: Sequence[str]) -> str:
    """The central accounts: CENTRAL (receivers, and one leaf user per datacenter), SYS."""
    leaf_users = "".join(
        f'    {{ user: "leaf-{dc}", password: "leaf-{dc}-pw", permissions: {LEAF_PERMISSIONS} }}\n'
        for dc in datacenters
    )
    return (
        "accounts {\n"
        "  CENTRAL {\n"
        "    jetstream: enabled\n"
        "    users: [\n"
        '    { user: "central", password: "central-pw" }\n'
        f"{leaf_users}"
        "    ]\n"
        "  }\n"
        '  SYS { users: [ { user: "sys", password: "sys-pw" } ] }\n'
        "}\n"
        "system_account: SYS\n"
        # A datacenter's traffic reaches the centre, never another datacenter.
        f'leafnodes {{ listen: "{HOST}:{leaf_port}", isolate_leafnode_interest: true }}\n'
    )


def leaf_config(dc: str, hub_urls: Sequence[str]) -> str:
    """A datacenter's leaf node: account DC<n> with its poller, bound to CENTRAL at the hub."""
    account = dc.upper()
    urls = ", ".join(f'"nats-leaf://leaf-{dc}:leaf-{dc}-pw@{url}"' for url in hub_urls)
    return (
        "accounts {\n"
        f"  {account} {{\n"
        "    jetstream: enabled\n"
        "    users: [\n"
        f'      {{ user: "poller-{dc}", password: "poller-{dc}-pw",'
        f" permissions: {poller_permissions(dc)} }}\n"
        # An operator's user in the datacenter, for tests that write to the edge stream.
        f'      {{ user: "admin-{dc}", password: "admin-{dc}-pw" }}\n'
        "    ]\n"
        "  }\n"
        '  SYS { users: [ { user: "sys", password: "sys-pw" } ] }\n'
        "}\n"
        "system_account: SYS\n"
        "leafnodes {\n"
        '  reconnect: "1s"\n'
        # Only the listed URLs (the WAN link): never a hub address learnt from its INFO.
        f"  remotes: [ {{ urls: [{urls}], account: {account},"
        " ignore_discovered_servers: true } ]\n"
        "}\n"
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
