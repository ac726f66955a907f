"""The `tls` sections (top level, per stream, management): manual files or a Puppet ssldir."""

from __future__ import annotations

import re

from prometheus_streams.config.model import TLSConfig
from prometheus_streams.config.reader import Section
from prometheus_streams.config.values import as_str, one_of

TLS_KEYS = {"scheme", "identity", "ssl_dir", "ca", "cert", "key"}
_OBSOLETE_TLS_KEYS = {"cache": "only the Choria backplane used a certificate cache"}
_PUPPET_CERTNAME_RE = re.compile(r"[a-z0-9_][a-z0-9._-]*")


def is_puppet_certname(name: str) -> bool:
    """Whether `name` follows Puppet's certificate-name rules (lower case, no path separators)."""
    return _PUPPET_CERTNAME_RE.fullmatch(name) is not None


def read_tls(parent: Section, identity: str) -> TLSConfig | None:
    """The `tls` mapping of `parent`; None when it is unusable (with problems)."""
    s = parent.mapping("tls")
    if s is None:
        return None
    s.check_keys(TLS_KEYS, _OBSOLETE_TLS_KEYS)
    scheme = s.get("scheme", one_of("manual", "file", "puppet"), "")
    if not scheme:
        if not s.given("scheme"):
            s.problem("scheme", "required: manual, file or puppet")
        return None
    scheme = "manual" if scheme == "file" else scheme
    if scheme == "puppet":
        # Puppet certificate names are lower case; a host's FQDN may not be.
        identity = identity.lower()
    tls = TLSConfig(
        scheme=scheme,
        identity=s.get("identity", as_str, identity),
        ssl_dir=s.get("ssl_dir", as_str, None),
        ca=s.get("ca", as_str, None),
        cert=s.get("cert", as_str, None),
        key=s.get("key", as_str, None),
    )
    if scheme == "puppet":
        _check_puppet(s, tls)
    if scheme == "manual":
        if tls.ssl_dir is not None:
            s.problem("ssl_dir", "only used with scheme: puppet")
        for key in ("ca", "cert", "key"):
            if getattr(tls, key) is None:
                s.problem(key, "required with scheme: manual")
    return tls


def _check_puppet(s: Section, tls: TLSConfig) -> None:
    if not tls.ssl_dir:
        s.problem("ssl_dir", "required with scheme: puppet")
    for key in ("ca", "cert", "key"):
        if getattr(tls, key) is not None:
            s.problem(key, "not used with scheme: puppet (ssl_dir has them)")
    # The identity names files under ssl_dir: no path separators, Puppet's rules.
    if not is_puppet_certname(tls.identity):
        s.problem(
            "identity",
            f"not a Puppet certificate name (lower case, no '/'): {tls.identity!r}",
        )
