"""Build verified TLS client contexts from the `tls` config."""

from __future__ import annotations

import ssl
from pathlib import Path

from prometheus_streams.config import TLSConfig
from prometheus_streams.errors import ConfigError


def client_context(tls: TLSConfig, where: str) -> ssl.SSLContext:
    """A context that verifies the server and presents our certificate."""
    files = {"ca": tls.ca_file, "cert": tls.cert_file, "key": tls.key_file}
    problems = [
        f"{where}.tls.{key}: cannot read {path}"
        for key, path in files.items()
        if path is None or not Path(path).is_file()
    ]
    if problems:
        raise ConfigError(problems)
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=files["ca"])
    try:
        context.load_cert_chain(str(files["cert"]), str(files["key"]))
    except ssl.SSLError as exc:
        raise ConfigError(
            [f"{where}.tls: {files['cert']} and {files['key']} do not form a key pair: {exc}"]
        ) from None
    return context
