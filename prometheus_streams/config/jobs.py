"""The `jobs` section: scrape targets, their schedule and limits, file-based discovery."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_streams.config.model import (
    DEFAULT_BODY_SIZE_LIMIT,
    DEFAULT_SCRAPE_INTERVAL,
    DEFAULT_SCRAPE_TIMEOUT,
    FileSD,
    Job,
    Target,
)
from prometheus_streams.config.reader import Section
from prometheus_streams.config.relabel import read_relabel_configs
from prometheus_streams.config.scrape_http import (
    HTTP_JOB_KEYS,
    read_dns_sd,
    read_http_sd,
    read_job_http,
    url_credentials_clash,
)
from prometheus_streams.config.values import (
    NAME_RE,
    as_bool,
    as_name,
    http_url,
    int_in,
    one_of,
    positive_duration,
    size_in,
    url_path,
)
from prometheus_streams.units import parse_base2_size
from prometheus_streams.wire import MAX_LABELS, label_name_problem

# Prometheus' per-job limits; 0 (the default) is no limit.
LIMIT_KEYS = (
    "sample_limit",
    "label_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "target_limit",
)
JOB_KEYS = {
    "targets",
    "scrape_interval",
    "scrape_timeout",
    "body_size_limit",
    "scheme",
    "metrics_path",
    "file_sd_configs",
    "honor_timestamps",
    "honor_labels",
    "relabel_configs",
    "metric_relabel_configs",
    *LIMIT_KEYS,
}
TARGET_KEYS = {"name", "url", "labels"}
FILE_SD_KEYS = {"files", "refresh_interval"}


@dataclass(frozen=True)
class JobDefaults:
    """What a job inherits from the top level when it does not say."""

    scrape_interval: float
    scrape_timeout: float
    body_size_limit: int


def default_instance_name(url: str) -> str:
    """The `host:port` Prometheus would use as the instance label."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def check_labels(raw: object) -> tuple[tuple[str, str], ...]:
    """Validate extra target labels: a mapping of label name to string value."""
    if not isinstance(raw, dict):
        raise ValueError(f"must be a mapping of label names to values, got {raw!r}")
    if len(raw) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels, got {len(raw)}")
    labels = []
    for name, value in raw.items():
        problem = label_name_problem(name)
        if problem:
            raise ValueError(problem)
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(f"label {name!r} needs a string value, got {value!r}")
        labels.append((name, str(value)))
    return tuple(sorted(labels))


def read_job_defaults(top: Section) -> JobDefaults:
    """The top-level scrape_interval, scrape_timeout and body_size_limit."""
    interval = top.get("scrape_interval", positive_duration, DEFAULT_SCRAPE_INTERVAL)
    timeout = top.get("scrape_timeout", positive_duration, DEFAULT_SCRAPE_TIMEOUT)
    if top.given("scrape_timeout"):
        _check_timeout(top, timeout, interval)
    return JobDefaults(
        scrape_interval=interval,
        scrape_timeout=min(timeout, interval),
        body_size_limit=top.get("body_size_limit", size_in(1024, 2**31), DEFAULT_BODY_SIZE_LIMIT),
    )


def _check_timeout(s: Section, timeout: float, interval: float) -> None:
    if timeout > interval:
        s.problem(
            "scrape_timeout", f"{timeout:g}s is longer than the scrape_interval {interval:g}s"
        )


def read_jobs(parent: Section, defaults: JobDefaults) -> tuple[Job, ...]:
    """Every job of the `jobs` mapping that is usable; problems for the others."""
    jobs_section = parent.mapping("jobs")
    if jobs_section is None:
        return ()
    jobs = []
    for job_name in jobs_section:
        if not NAME_RE.fullmatch(job_name) or job_name != job_name.strip():
            jobs_section.problem(
                job_name, "job names must not contain control characters or surrounding blanks"
            )
        s = jobs_section.mapping(job_name)
        if s is None:
            continue
        job = _job(s, job_name, defaults)
        if job is not None:
            jobs.append(job)
    return tuple(jobs)


# Reads a job's own target list: (job section, has discovery, scheme, metrics path,
# the job's HTTP fields) -> targets, or None when the job is unusable.
TargetsReader = Callable[[Section, bool, str, str, dict[str, Any]], "tuple[Target, ...] | None"]


def _job(s: Section, name: str, defaults: JobDefaults) -> Job | None:
    s.check_keys(JOB_KEYS | HTTP_JOB_KEYS)
    return read_job(s, name, defaults, _listed_targets)


def read_job(s: Section, name: str, defaults: JobDefaults, listed: TargetsReader) -> Job | None:
    """A job's keys (those `jobs:` and `scrape_configs:` share); `listed` reads its targets."""
    interval = s.get("scrape_interval", positive_duration, defaults.scrape_interval)
    timeout = s.get("scrape_timeout", positive_duration, defaults.scrape_timeout)
    if "scrape_timeout" in s:
        _check_timeout(s, timeout, interval)
    timeout = min(timeout, interval)
    file_sd = _file_sd(s) if s.given("file_sd_configs") else ()
    http_sd = read_http_sd(s) if s.given("http_sd_configs") else ()
    dns_sd = read_dns_sd(s) if s.given("dns_sd_configs") else ()
    http = read_job_http(s)
    scheme = s.get("scheme", one_of("http", "https"), "http")
    metrics_path = s.get("metrics_path", url_path, "/metrics")
    targets = listed(s, bool(file_sd or http_sd or dns_sd), scheme, metrics_path, http)
    if targets is None:
        return None
    return Job(
        name=name,
        targets=targets,
        scrape_interval=interval,
        scrape_timeout=timeout,
        body_size_limit=s.get("body_size_limit", parse_base2_size, defaults.body_size_limit),
        scheme=scheme,
        metrics_path=metrics_path,
        file_sd=file_sd,
        honor_timestamps=s.get("honor_timestamps", as_bool, True),
        honor_labels=s.get("honor_labels", as_bool, False),
        http_sd=http_sd,
        dns_sd=dns_sd,
        relabel_configs=read_relabel_configs(s, "relabel_configs"),
        metric_relabel_configs=read_relabel_configs(s, "metric_relabel_configs"),
        **{key: s.get(key, int_in(0, 2**31), 0) for key in LIMIT_KEYS},  # type: ignore[arg-type]
        **http,
    )


def _listed_targets(
    s: Section, discovered: bool, scheme: str, metrics_path: str, http: dict[str, Any]
) -> tuple[Target, ...] | None:
    """The `targets` list of a `jobs:` entry ({name, url, labels} each)."""
    listed = s.raw("targets")
    if listed is None and discovered:
        return ()
    if not isinstance(listed, list) or not listed:
        s.problem(
            "targets",
            "must be a non-empty list of {name, url} "
            "(or use file_sd_configs, http_sd_configs or dns_sd_configs)",
        )
        return None
    return _targets(s, s.path().removeprefix("jobs."), http)


def _targets(job: Section, job_name: str, http: dict[str, object]) -> tuple[Target, ...]:
    targets: list[Target] = []
    seen: set[str] = set()
    for s in job.entries("targets"):
        s.check_keys(TARGET_KEYS)
        if not s.given("url"):
            s.problem("url", "required")
            continue
        url = s.get("url", http_url, "")
        if not url:
            continue
        if url_credentials_clash(http, url):
            s.problem("url", "holds credentials while the job sets basic_auth or authorization")
        name = s.get("name", as_name, default_instance_name(url))
        if name in seen:
            s.problem("name", f"duplicate target name {name!r} in job {job_name}")
        seen.add(name)
        labels: tuple[tuple[str, str], ...] = s.get("labels", check_labels, ())
        targets.append(Target(name=name, url=url, labels=labels))
    return tuple(targets)


def _file_sd(job: Section) -> tuple[FileSD, ...]:
    if not isinstance(job.raw("file_sd_configs"), list):
        job.problem("file_sd_configs", "must be a list of {files, refresh_interval}")
        return ()
    result = []
    for s in job.entries("file_sd_configs"):
        s.check_keys(FILE_SD_KEYS)
        files = s.raw("files")
        if (
            not isinstance(files, list)
            or not files
            or not all(isinstance(f, str) and f for f in files)
        ):
            s.problem("files", "must be a non-empty list of file paths or globs")
            continue
        # As Prometheus does: relative paths are relative to the config file.
        base = Path(s.reader.path).resolve().parent
        result.append(
            FileSD(
                files=tuple(str(base / f) for f in files),
                refresh_interval=s.get("refresh_interval", positive_duration, 300.0),
            )
        )
    return tuple(result)
