"""Prometheus file-based service discovery: target groups read from JSON or YAML files."""

from __future__ import annotations

import asyncio
import glob
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from prometheus_streams.config import FileSD, Job, Target, check_labels

log = logging.getLogger(__name__)

# How often file modification times are compared; cheap (a stat per file).
WATCH_INTERVAL = 1.0


class DiscoveryError(ValueError):
    """A file-SD file that cannot be used; its previous targets are kept."""


def parse_target_groups(path: str, text: str, job: Job, as_json: bool = False) -> list[Target]:
    """Targets of one file: a list of {targets: [host:port], labels: {...}}."""
    as_json = as_json or path.endswith(".json")
    try:
        data = json.loads(text) if as_json else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise DiscoveryError(f"{path}: not valid {'JSON' if as_json else 'YAML'}: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise DiscoveryError(f"{path}: must be a list of target groups")
    targets = []
    for index, group in enumerate(data):
        where = f"{path}: [{index}]"
        if not isinstance(group, dict) or not isinstance(group.get("targets"), list):
            raise DiscoveryError(f"{where}: a target group needs a `targets` list")
        group_labels = group.get("labels") or {}
        if not isinstance(group_labels, dict):
            raise DiscoveryError(f"{where}.labels: must be a mapping of label names to values")
        raw_labels = dict(group_labels)
        scheme = str(raw_labels.pop("__scheme__", job.scheme))
        metrics_path = str(raw_labels.pop("__metrics_path__", job.metrics_path))
        if not metrics_path.startswith("/") or any(c in metrics_path for c in " ?#\n\r"):
            raise DiscoveryError(f"{where}: __metrics_path__ must be a path: {metrics_path!r}")
        instance_override = raw_labels.pop("instance", None)
        if instance_override is not None and (
            not isinstance(instance_override, str)
            or not instance_override.isprintable()
            or instance_override != instance_override.strip()
            or not instance_override
        ):
            raise DiscoveryError(f"{where}: bad instance label {instance_override!r}")
        raw_labels = {k: v for k, v in raw_labels.items() if not str(k).startswith("__")}
        try:
            labels = check_labels(raw_labels)
        except ValueError as exc:
            raise DiscoveryError(f"{where}.labels: {exc}") from None
        if scheme not in ("http", "https"):
            raise DiscoveryError(f"{where}: __scheme__ must be http or https")
        for address in group["targets"]:
            if isinstance(address, str) and "@" in address:
                # Never quoted: what precedes the `@` would be a password.
                raise DiscoveryError(
                    f"{where}.targets: {address.rpartition('@')[2]!r}: user info "
                    "(user:password@) is not allowed in a host:port"
                )
            if (
                not isinstance(address, str)
                or not address.isprintable()
                or any(c in address for c in "/ ?#")
            ):
                raise DiscoveryError(f"{where}.targets: not a host:port: {address!r}")
            name = str(instance_override) if instance_override else address
            targets.append(
                Target(name=name, url=f"{scheme}://{address}{metrics_path}", labels=labels)
            )
    return targets


class FileDiscovery:
    """Watches one job's file-SD files and reports its target list when it changes."""

    def __init__(
        self,
        job: Job,
        on_change: Callable[[str, tuple[Target, ...]], None],
        on_error: Callable[[str, str], None],
    ) -> None:
        self.job = job
        self._on_change = on_change
        self._on_error = on_error
        self._per_file: dict[str, list[Target]] = {}
        self._mtimes: dict[str, float] = {}
        self._last: tuple[Target, ...] | None = None

    def _paths(self) -> list[str]:
        paths: set[str] = set()
        for sd in self.job.file_sd:
            for pattern in sd.files:
                paths.update(glob.glob(pattern))
        return sorted(paths)

    def refresh(self, force: bool = False) -> None:
        """Re-read changed (or, forced, all) files and report the targets if they differ."""
        paths = self._paths()
        mtimes = {}
        for path in paths:
            try:
                mtimes[path] = os.stat(path).st_mtime
            except OSError:
                continue
        changed = force or mtimes != self._mtimes
        if not changed:
            return
        for path in list(self._per_file):
            if path not in mtimes:
                del self._per_file[path]  # a removed file takes its targets with it
        for path, mtime in mtimes.items():
            if not force and self._mtimes.get(path) == mtime and path in self._per_file:
                continue
            try:
                text = Path(path).read_text(encoding="utf-8")
                self._per_file[path] = parse_target_groups(path, text, self.job)
            except (OSError, UnicodeDecodeError, DiscoveryError) as exc:
                self._on_error(self.job.name, str(exc))
        self._mtimes = mtimes
        merged: dict[str, Target] = {}
        for path in sorted(self._per_file):
            for target in self._per_file[path]:
                merged.setdefault(target.name, target)
        targets = tuple(merged[name] for name in sorted(merged))
        if targets != self._last:
            self._last = targets
            self._on_change(self.job.name, targets)

    async def run(self) -> None:
        """Watch until cancelled: on file changes, and fully every refresh_interval."""
        interval = min((sd.refresh_interval for sd in self.job.file_sd), default=300.0)
        self.refresh(force=True)
        next_full = time.monotonic() + interval
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            full = time.monotonic() >= next_full
            if full:
                next_full = time.monotonic() + interval
            self.refresh(force=full)


__all__ = ["DiscoveryError", "FileDiscovery", "FileSD", "parse_target_groups"]
