"""Prometheus' target groups ({targets: [host:port], labels: {...}}), one reader for all.

`static_configs`, file_sd files and http_sd answers share this format; so do
their rules (what a host:port is, which `__` labels steer the URL, which are
kept for relabelling as discovery metadata).
"""

from __future__ import annotations

from typing import Any

from prometheus_streams.config.jobs import check_labels
from prometheus_streams.config.model import Target


class GroupError(ValueError):
    """A target group that cannot be used; `key` is where in the group ("" for the group)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _meta(raw: dict[Any, Any]) -> tuple[tuple[str, str], ...]:
    """The group's `__` labels (`__meta_*`, `__param_*`, `__tmp*`): seen by relabel_configs only."""
    meta = []
    for name, value in raw.items():
        if not isinstance(name, str) or not isinstance(value, str | int | float):
            raise GroupError("labels", f"label {name!r} needs a string value, got {value!r}")
        meta.append((name, str(value)))
    return tuple(sorted(meta))


def read_target_group(
    group: object, scheme: str, metrics_path: str, source: tuple[tuple[str, str], ...] = ()
) -> list[Target]:
    """The targets of one group; raises GroupError naming what is wrong.

    `source` is the discovery's own metadata (__meta_filepath, __meta_url); as in
    Prometheus it wins over a group label of the same name.
    """
    if not isinstance(group, dict) or not isinstance(group.get("targets"), list):
        raise GroupError("", "a target group needs a `targets` list")
    group_labels = group.get("labels") or {}
    if not isinstance(group_labels, dict):
        raise GroupError("labels", "must be a mapping of label names to values")
    raw_labels = dict(group_labels)
    raw_labels.pop("__address__", None)  # each entry of `targets` is the address
    scheme = str(raw_labels.pop("__scheme__", scheme))
    metrics_path = str(raw_labels.pop("__metrics_path__", metrics_path))
    if not metrics_path.startswith("/") or any(c in metrics_path for c in " ?#\n\r"):
        raise GroupError("", f"__metrics_path__ must be a path: {metrics_path!r}")
    instance_override = raw_labels.pop("instance", None)
    if instance_override is not None and (
        not isinstance(instance_override, str)
        or not instance_override.isprintable()
        or instance_override != instance_override.strip()
        or not instance_override
    ):
        raise GroupError("", f"bad instance label {instance_override!r}")
    meta = _meta(
        {**{k: v for k, v in raw_labels.items() if str(k).startswith("__")}, **dict(source)}
    )
    raw_labels = {k: v for k, v in raw_labels.items() if not str(k).startswith("__")}
    try:
        labels = check_labels(raw_labels)
    except ValueError as exc:
        raise GroupError("labels", str(exc)) from None
    if scheme not in ("http", "https"):
        raise GroupError("", "__scheme__ must be http or https")
    targets = []
    for address in group["targets"]:
        if isinstance(address, str) and "@" in address:
            # Never quoted: what precedes the `@` would be a password.
            raise GroupError(
                "targets",
                f"{address.rpartition('@')[2]!r}: user info "
                "(user:password@) is not allowed in a host:port",
            )
        if (
            not isinstance(address, str)
            or not address.isprintable()
            or any(c in address for c in "/ ?#")
        ):
            raise GroupError("targets", f"not a host:port: {address!r}")
        name = str(instance_override) if instance_override else address
        targets.append(
            Target(name=name, url=f"{scheme}://{address}{metrics_path}", labels=labels, meta=meta)
        )
    return targets
