"""nats-server configs of the multi-datacenter layout (docs/topology.md), for tests and benchmarks.

The hub (or every node of a central cluster) has the account CENTRAL with
JetStream in domain `central` and a `leafnodes` listener; each datacenter runs
a leaf node with its own JetStream domain (`dc1`, `dc2`) and its own account
(`DC1`, `DC2`), bound to CENTRAL over its leaf link. Passwords are fixed test
values: these configs only ever run on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from benchmarks.procs import HOST

TOPIC = "prometheus"
STREAM = "PROMETHEUS"
CENTRAL_DOMAIN = "central"


def jetstream_node(
    server_name: str, port: int, http: int, store: Path, domain: str | None = None
) -> str:
    """The head of a node's config: its name, client and monitoring ports, JetStream (domain)."""
    return (
        f'server_name: "{server_name}"\n'
        f'listen: "{HOST}:{port}"\n'
        f'http: "{HOST}:{http}"\n'
        "jetstream {\n"
        f"  store_dir: {json.dumps(str(store))}\n"
        + (f"  domain: {domain}\n" if domain else "")
        + "}\n"
    )


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
