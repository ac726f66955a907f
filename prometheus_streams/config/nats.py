"""The stream sections (`poller_stream`, `receiver_stream`): NATS servers, JetStream, NATS auth."""

from __future__ import annotations

import re

from prometheus_streams.config.credentials import (
    file_path,
    has_secret,
    require_user_with_password,
    secret,
)
from prometheus_streams.config.model import NatsAuth, StreamConfig, StreamSource, TLSConfig
from prometheus_streams.config.reader import Section
from prometheus_streams.config.tls import read_tls
from prometheus_streams.config.values import (
    TOPIC_RE,
    as_str,
    int_in,
    nats_urls,
    one_of,
    positive_duration,
)
from prometheus_streams.secret import SecretSourceError, read_private_file, read_secret_file
from prometheus_streams.units import parse_size

_NATS_AUTH_KEYS = {
    "credentials_file",
    "nkey_seed_file",
    "user",
    "password",
    "password_file",
    "password_env",
    "token",
    "token_file",
    "token_env",
}
STREAM_KEYS = {
    "urls",
    "topic",
    "client_id",
    "tls",
    "stream",
    "replicas",
    "storage",
    "stream_max_age",
    "stream_max_bytes",
    "max_msgs_per_subject",
    "durable",
    "fetch_batch",
    "ack_wait",
    "domain",
    "sources",
    *_NATS_AUTH_KEYS,
}
_SOURCE_KEYS = {"name", "domain", "api_prefix", "deliver_prefix", "publisher"}
# Keys of the original (NATS Streaming) config that mean nothing on JetStream.
_OBSOLETE_STREAM_KEYS = {
    "cluster_id": "NATS Streaming cluster ids do not exist in JetStream",
}
_STREAM_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")
# A JetStream domain is one subject token of `$JS.<domain>.API`.
_DOMAIN_RE = _STREAM_NAME_RE
_PREFIX_RE = re.compile(r"[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*")


def _stream_name(topic: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", topic).upper()


def read_stream(
    parent: Section, key: str, identity: str, inherited: TLSConfig | None
) -> StreamConfig | None:
    """The stream section `key` of `parent`; None when absent or unusable (with problems)."""
    if not parent.given(key):
        return None
    s = parent.mapping(key)
    if s is None:
        return None
    s.check_keys(STREAM_KEYS, _OBSOLETE_STREAM_KEYS)
    urls: tuple[str, ...] = s.get("urls", nats_urls, ())
    if not s.given("urls"):
        s.problem("urls", "required: the NATS server URL(s)")
    topic = s.get("topic", as_str, "prometheus")
    if not TOPIC_RE.fullmatch(topic):
        s.problem("topic", f"must be dot-separated [A-Za-z0-9_-] tokens: {topic!r}")
    client_id = s.get("client_id", as_str, "prometheus_streams")
    durable = re.sub(r"[^A-Za-z0-9_-]", "_", s.get("durable", as_str, client_id))
    stream = s.get("stream", as_str, _stream_name(topic))
    if not _STREAM_NAME_RE.fullmatch(stream):
        s.problem("stream", f"must match [A-Za-z0-9_-]+: {stream!r}")
    tls = read_tls(s, identity) if "tls" in s else inherited
    domain = s.get("domain", as_str, None)
    if domain is not None and not _DOMAIN_RE.fullmatch(domain):
        s.problem("domain", f"a JetStream domain must match [A-Za-z0-9_-]+: {domain!r}")
    sources = _sources(s, key)
    return StreamConfig(
        urls=urls,
        topic=topic,
        stream=stream,
        client_id=client_id,
        durable=durable,
        replicas=s.get("replicas", int_in(1, 5), 1),
        storage=s.get("storage", one_of("file", "memory"), "file"),
        stream_max_age=s.get("stream_max_age", positive_duration, 600.0),
        stream_max_bytes=s.get("stream_max_bytes", parse_size, 1024**3),
        max_msgs_per_subject=s.get("max_msgs_per_subject", int_in(1, 1_000_000), 1),
        fetch_batch=s.get("fetch_batch", int_in(1, 10_000), 24),
        ack_wait=s.get("ack_wait", positive_duration, 30.0),
        tls=tls,
        auth=_nats_auth(s),
        domain=domain,
        # The edge stream of a datacenter's leaf node takes this poller's subjects only.
        publisher=identity if domain is not None and key == "poller_stream" else None,
        sources=sources,
    )


def _sources(s: Section, key: str) -> tuple[StreamSource, ...]:
    """`sources`: the datacenter streams a central stream is built from."""
    if not s.given("sources"):
        return ()
    if key != "receiver_stream":
        s.problem("sources", "only the receiver builds a stream from sources")
        return ()
    if not isinstance(s.raw("sources"), list):
        s.problem("sources", "must be a list of {name, domain or api_prefix, publisher}")
        return ()
    found: list[StreamSource] = []
    for entry in s.entries("sources"):
        entry.check_keys(_SOURCE_KEYS)
        name = entry.get("name", as_str, "")
        if not _STREAM_NAME_RE.fullmatch(name):
            entry.problem("name", f"required, the source stream's name, [A-Za-z0-9_-]+: {name!r}")
        domain = entry.get("domain", as_str, None)
        if domain is not None and not _DOMAIN_RE.fullmatch(domain):
            entry.problem("domain", f"a JetStream domain must match [A-Za-z0-9_-]+: {domain!r}")
        prefix = entry.get("api_prefix", as_str, None)
        deliver = entry.get("deliver_prefix", as_str, None)
        for field, value in (("api_prefix", prefix), ("deliver_prefix", deliver)):
            if value is not None and not _PREFIX_RE.fullmatch(value):
                entry.problem(field, f"must be a subject without wildcards: {value!r}")
        if domain is not None and prefix is not None:
            entry.problem(None, "choose domain or api_prefix, not both")
        found.append(
            StreamSource(
                name=name,
                domain=domain,
                api_prefix=prefix,
                deliver_prefix=deliver,
                publisher=entry.get("publisher", as_str, None),
            )
        )
    seen: set[tuple[str, str | None]] = set()
    for index, source in enumerate(found):
        if (source.name, source.api) in seen:
            s.problem(f"sources[{index}]", f"stream {source.name} of that domain is listed twice")
        seen.add((source.name, source.api))
    return tuple(found)


def _nats_auth(s: Section) -> NatsAuth | None:
    creds = file_path(s, "credentials_file")
    if creds is not None:
        _check_creds_file(s, creds)
    seed = file_path(s, "nkey_seed_file")
    if seed is not None:
        _check_nkey_seed_file(s, seed)
    user = s.get("user", as_str, None)
    password = secret(s, "password")
    token = secret(s, "token")
    methods = [
        name
        for name, present in (
            ("credentials_file", "credentials_file" in s),
            ("nkey_seed_file", "nkey_seed_file" in s),
            ("user/password", "user" in s),
            ("token", has_secret(s, "token")),
        )
        if present
    ]
    if len(methods) > 1:
        s.problem(None, f"choose one NATS auth method, got {' and '.join(methods)}")
    require_user_with_password(s, "user", "or password_file, password_env")
    if not methods:
        return None
    return NatsAuth(
        credentials_file=creds,
        nkey_seed_file=seed,
        user=user,
        password=password,
        token=token,
    )


def _check_creds_file(s: Section, path: str) -> None:
    try:
        text = read_private_file(path)
    except SecretSourceError as exc:
        s.problem("credentials_file", str(exc))
        return
    for marker in ("BEGIN NATS USER JWT", "BEGIN USER NKEY SEED"):
        if marker not in text:
            s.problem(
                "credentials_file", f"{path} is not a NATS credentials file: no {marker} block"
            )


def _check_nkey_seed_file(s: Section, path: str) -> None:
    import nkeys  # nats-py's own dependency for nkey auth

    try:
        seed = read_secret_file(path)
    except SecretSourceError as exc:
        s.problem("nkey_seed_file", str(exc))
        return
    try:
        nkeys.from_seed(bytearray(seed.encode())).wipe()
    except Exception:  # nkeys raises bare and assorted errors; none may echo the seed
        s.problem("nkey_seed_file", f"{path} does not hold a valid nkey seed")
        return
    if not seed.startswith("SU"):
        s.problem("nkey_seed_file", f"{path} holds an nkey seed, but not a user seed (SU...)")
