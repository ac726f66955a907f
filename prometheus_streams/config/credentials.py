"""Rules shared by every section that holds credentials: files, secrets, user with password."""

from __future__ import annotations

from pathlib import Path

from prometheus_streams.config.reader import Section
from prometheus_streams.config.values import as_str, secret_text
from prometheus_streams.secret import (
    Secret,
    SecretSourceError,
    read_secret_env,
    read_secret_file,
    readable_by_others,
)

_SOURCES = ("", "_file", "_env")


def file_path(section: Section, key: str, private: bool = True) -> str | None:
    """A path to a file that must be readable; warn if a private one is world-readable."""
    path = section.get(key, as_str, None)
    if path is None:
        return None
    if not Path(path).is_file():
        section.problem(key, f"cannot read {path}: no such file")
        return None
    if private and readable_by_others(path):
        section.warn(key, f"{path} is readable by every user; chmod o-r it")
    return path


def has_secret(section: Section, key: str) -> bool:
    """Whether the secret `key` is given in any of its forms (`key`, `key_file`, `key_env`)."""
    return any(f"{key}{source}" in section for source in _SOURCES)


def secret(section: Section, key: str) -> Secret | None:
    """A secret given inline as `key`, in a file as `key_file` or in `key_env`; at most one."""
    given = [k for k in (f"{key}{source}" for source in _SOURCES) if section.given(k)]
    if len(given) > 1:
        section.problem(given[1], f"give only one of {', '.join(given)}")
        return None
    if not given:
        return None
    name = given[0]
    if name == key:
        value = section.get(key, secret_text, "")
        return Secret("inline config", value) if value else None
    if name.endswith("_file"):
        path = file_path(section, name)
        if path is None:
            return None
        try:
            return Secret(f"file {path}", read_secret_file(path))
        except SecretSourceError as exc:
            section.problem(name, str(exc))
            return None
    env = section.get(name, as_str, "")
    if not env:
        return None
    try:
        return Secret(f"environment variable {env}", read_secret_env(env))
    except SecretSourceError as exc:
        section.problem(name, str(exc))
        return None


def require_user_with_password(section: Section, user_key: str, password_forms: str) -> None:
    """A user needs a password and a password needs a user."""
    has_password = has_secret(section, "password")
    if has_password and user_key not in section:
        section.problem(user_key, "required with a password")
    if user_key in section and not has_password:
        section.problem("password", f"required with {user_key} ({password_forms})")
