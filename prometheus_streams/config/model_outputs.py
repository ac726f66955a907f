"""The resolved outputs of the receiver: the Pushgateway and remote_write."""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from prometheus_streams.config.model_jobs import HTTPTLSConfig
from prometheus_streams.secret import Secret


@dataclass(frozen=True)
class PushGatewayConfig:
    """Where and how the receiver pushes."""

    url: str
    publisher_label: bool = False
    timeout: float = 10.0
    concurrency: int = 8
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0
    stale_after: float = 0.0
    stale_check_interval: float = 60.0
    # Publishers whose stale groups are ours even when the stream holds none of their subjects.
    stale_publishers: tuple[str, ...] = ()
    ca: str | None = None
    insecure_skip_verify: bool = False
    username: str | None = None
    password: Secret | None = None
    bearer_token: Secret | None = None

    def describe_auth(self) -> str:
        """How the receiver authenticates, never the secret."""
        if self.username is not None:
            source = self.password.source if self.password else "nowhere"
            return f"basic auth as {self.username} with password from {source}"
        if self.bearer_token is not None:
            return f"bearer token from {self.bearer_token.source}"
        return "none"


@dataclass(frozen=True)
class RemoteWriteConfig:
    """One Prometheus Remote-Write 1.0 destination, in the keys of Prometheus' `remote_write`."""

    url: str
    # Unique across the list; [A-Za-z0-9_-]+, so it fits a NATS consumer name and a label.
    name: str
    headers: tuple[tuple[str, str], ...] = ()
    username: str | None = None
    password: Secret | None = None
    bearer_token: Secret | None = None
    # The scheme of `authorization` (Prometheus sends `<type> <credentials>`).
    authorization_type: str = "Bearer"
    ca: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False
    min_version: str | None = None
    max_version: str | None = None
    remote_timeout: float = 30.0
    max_samples_per_send: int = 2000
    batch_send_deadline: float = 5.0
    min_backoff: float = 0.03
    max_backoff: float = 5.0
    # Ours, not Prometheus': a target silent this long gets its series marked
    # stale (0: never).
    stale_after: float = 300.0
    # Ours: how many receivers can write this output at once. Each partition
    # (the publishers whose name hashes to it) is written by one receiver at a time.
    partitions: int = 1

    def request_headers(self) -> dict[str, str]:
        """The user's headers and Authorization; the protocol's own headers are the sender's."""
        headers = dict(self.headers)
        if self.username is not None:
            password = self.password.reveal() if self.password is not None else ""
            pair = f"{self.username}:{password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        elif self.bearer_token is not None:
            headers["Authorization"] = f"{self.authorization_type} {self.bearer_token.reveal()}"
        return headers

    @property
    def tls_server_name(self) -> str | None:
        """The name to send (SNI) and to check the certificate against; None for http://."""
        if not self.url.startswith("https:"):
            return None
        return self.server_name or urlsplit(self.url).hostname

    def ssl_context(self) -> ssl.SSLContext | None:
        """CA, client certificate and versions for https:// (None for http://).

        The server name is per connection, not per context: pass `tls_server_name`
        as `server_hostname` when connecting.
        """
        if not self.url.startswith("https:"):
            return None
        # The same context as a scrape job's tls_config (Prometheus' default minimum, TLS 1.2).
        return HTTPTLSConfig(
            ca_file=self.ca,
            cert_file=self.cert_file,
            key_file=self.key_file,
            insecure_skip_verify=self.insecure_skip_verify,
            min_version=self.min_version,
            max_version=self.max_version,
        ).ssl_context()

    def describe_auth(self) -> str:
        """How the receiver authenticates to this destination, never the secret."""
        methods = []
        if self.username is not None:
            source = self.password.source if self.password else "nowhere"
            methods.append(f"basic auth as {self.username} with password from {source}")
        elif self.bearer_token is not None:
            kind = (
                "bearer token"
                if self.authorization_type == "Bearer"
                else (f"{self.authorization_type} credentials")
            )
            methods.append(f"{kind} from {self.bearer_token.source}")
        if self.cert_file is not None:
            methods.append(f"client certificate {self.cert_file}")
        return ", ".join(methods) or "none"
