"""Secrets from the config, a file or the environment, kept out of every printout."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

MAX_SECRET_FILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Secret:
    """A password or token; str() and repr() name where it came from, never the value."""

    source: str  # "inline", "file /etc/x", "environment variable X"
    value: str = field(repr=False, compare=False)

    def reveal(self) -> str:
        """The secret itself, for the one call that sends it."""
        return self.value

    def __str__(self) -> str:
        return f"<secret from {self.source}>"

    def __repr__(self) -> str:
        return f"Secret({self.source!r})"


class SecretSourceError(ValueError):
    """A secret's file or environment variable cannot be used; the message holds no secret."""


def read_secret_file(path: str) -> str:
    """Read a one-line secret file (surrounding whitespace dropped)."""
    text = read_private_file(path)
    value = text.strip()
    if not value:
        raise SecretSourceError(f"{path} is empty")
    if any(c in value for c in "\r\n"):
        raise SecretSourceError(f"{path} holds more than one line")
    return value


def read_private_file(path: str) -> str:
    """Read a small text file holding key material, with errors that never quote it."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise SecretSourceError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise SecretSourceError(f"{path} is larger than {MAX_SECRET_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretSourceError(f"{path} is not UTF-8 text") from None


def read_secret_env(name: str) -> str:
    """Read a secret from an environment variable (surrounding whitespace dropped)."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise SecretSourceError(f"environment variable {name} is not set or empty")
    return value


def readable_by_others(path: str) -> bool:
    """True when users other than the owner and group may read the file."""
    try:
        return bool(Path(path).stat().st_mode & stat.S_IROTH)
    except OSError:
        return False


REDACTED = "xxxxx"

# A scheme, then user info up to the last `@` before the host: a password may
# hold `@` itself, never a `/`, `?`, `#`, space or quote.
_URL_USERINFO = re.compile(r"""([A-Za-z][A-Za-z0-9+.-]*://)([^\s/?#'"<>]*)@""")


def _redacted_userinfo(userinfo: str) -> str:
    # Without a password the user part may itself be the secret (a NATS token).
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{REDACTED}" if colon else REDACTED


def redact_url(url: str) -> str:
    """The URL with its user info redacted (`user:xxxxx@`), for logs and printouts."""
    try:
        parts = urlsplit(url)
        if "@" not in parts.netloc:
            return url
        userinfo, _, host = parts.netloc.rpartition("@")
        return urlunsplit(parts._replace(netloc=f"{_redacted_userinfo(userinfo)}@{host}"))
    except ValueError:
        return "<unparsable URL>"


def userinfo_secrets(url: str) -> tuple[str, ...]:
    """What must never be shown of a URL's user info: the password, raw and decoded."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        netloc = url.partition("://")[2].partition("/")[0]
    if "@" not in netloc:
        return ()
    userinfo = netloc.rpartition("@")[0]
    user, colon, password = userinfo.partition(":")
    secret = password if colon else user
    return tuple(sorted({s for s in (secret, unquote(secret)) if s}, key=len, reverse=True))


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with the user info of every URL in it redacted and each of `secrets` masked.

    For messages built by libraries (aiohttp puts the URL into some of its
    exceptions), where we cannot keep the secret out in the first place.
    """
    if "@" in text:
        text = _URL_USERINFO.sub(lambda m: f"{m[1]}{_redacted_userinfo(m[2])}@", text)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text
