"""The resolved NATS side of the configuration: connection TLS, authentication, streams."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from prometheus_streams.secret import Secret
from prometheus_streams.wire import escape_token

# Prometheus' names; TLS10 and TLS11 are left out: Python's ssl deprecates them.
TLS_VERSIONS = {
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


@dataclass(frozen=True)
class TLSConfig:
    """How to secure a NATS connection."""

    scheme: str
    identity: str
    ssl_dir: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    @property
    def ca_file(self) -> str | None:
        """The CA bundle, from `ca` or the Puppet ssldir."""
        if self.scheme == "puppet" and self.ssl_dir:
            return str(Path(self.ssl_dir) / "certs" / "ca.pem")
        return self.ca

    @property
    def cert_file(self) -> str | None:
        """The client certificate, from `cert` or the Puppet ssldir."""
        if self.scheme == "puppet" and self.ssl_dir:
            return str(Path(self.ssl_dir) / "certs" / f"{self.identity}.pem")
        return self.cert

    @property
    def key_file(self) -> str | None:
        """The client key, from `key` or the Puppet ssldir."""
        if self.scheme == "puppet" and self.ssl_dir:
            return str(Path(self.ssl_dir) / "private_keys" / f"{self.identity}.pem")
        return self.key


@dataclass(frozen=True)
class NatsAuth:
    """How a NATS connection proves who it is: exactly one method; secrets never shown."""

    credentials_file: str | None = None
    nkey_seed_file: str | None = None
    user: str | None = None
    password: Secret | None = None
    token: Secret | None = None

    def describe(self) -> str:
        """The method and where its secret comes from, never the secret."""
        if self.credentials_file:
            return f"credentials file {self.credentials_file}"
        if self.nkey_seed_file:
            return f"nkey seed file {self.nkey_seed_file}"
        if self.user is not None:
            source = self.password.source if self.password else "nowhere"
            return f"user {self.user} with password from {source}"
        if self.token is not None:
            return f"token from {self.token.source}"
        return "none"


@dataclass(frozen=True)
class StreamSource:
    """One datacenter stream the central stream sources, through another domain's API."""

    name: str
    domain: str | None = None
    api_prefix: str | None = None
    deliver_prefix: str | None = None
    # Only this publisher's subjects come through: a datacenter cannot send as another.
    publisher: str | None = None

    @property
    def api(self) -> str | None:
        """The JetStream API prefix of the source's domain; None for this domain."""
        if self.api_prefix:
            return self.api_prefix
        return f"$JS.{self.domain}.API" if self.domain else None


@dataclass(frozen=True)
class StreamConfig:
    """A NATS connection plus the JetStream stream and consumer it uses."""

    urls: tuple[str, ...]
    topic: str
    stream: str
    client_id: str
    durable: str
    replicas: int = 1
    storage: str = "file"
    stream_max_age: float = 600.0
    stream_max_bytes: int = 1024**3
    max_msgs_per_subject: int = 1
    fetch_batch: int = 24
    ack_wait: float = 30.0
    tls: TLSConfig | None = None
    auth: NatsAuth | None = None
    # Set by a receiver with remote write, not a config key: the stream keeps
    # every scrape (no per-subject limit), marked in its metadata.
    history: bool = False
    # The JetStream domain whose API provisions, acks and consumes (a leaf node's).
    domain: str | None = None
    # Set for a poller in a domain, not a config key: its edge stream takes only
    # this publisher's subjects, so leaf nodes sharing an account never store
    # each other's scrapes.
    publisher: str | None = None
    # A central stream built from datacenter streams: it has no subjects of its own.
    sources: tuple[StreamSource, ...] = ()

    @property
    def subjects(self) -> str:
        """The subject filter of every message of this topic (of one publisher at the edge)."""
        if self.publisher is not None:
            return f"{self.topic}.{escape_token(self.publisher)}.>"
        return f"{self.topic}.>"

    @property
    def api_prefix(self) -> str:
        """The JetStream API prefix: the domain's, or the connection's own."""
        return f"$JS.{self.domain}.API" if self.domain else "$JS.API"
