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

from prometheus_streams.config import FileSD, Job, Target
from prometheus_streams.config.target_groups import GroupError, read_target_group

log = logging.getLogger(__name__)

# How often file modification times are compared; cheap (a stat per file).
WATCH_INTERVAL = 1.0


class DiscoveryError(ValueError):
    """A file-SD file that cannot be used; its previous targets are kept."""


def parse_target_groups(
    path: str, text: str, job: Job, as_json: bool = False, meta: str = "__meta_filepath"
) -> list[Target]:
    """Targets of one file: a list of {targets: [host:port], labels: {...}}.

    Each target gets `path` as the discovery label `meta` (Prometheus' names:
    __meta_filepath for file_sd, __meta_url for http_sd).
    """
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
        try:
            targets += read_target_group(group, job.scheme, job.metrics_path, ((meta, path),))
        except GroupError as exc:
            key = f".{exc.key}" if exc.key else ""
            raise DiscoveryError(f"{path}: [{index}]{key}: {exc}") from None
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
