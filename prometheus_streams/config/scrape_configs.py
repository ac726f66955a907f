"""`scrape_configs:` and `global:` as Prometheus 2.x writes them, read into `jobs:`'s `Job`s.

Only what differs from `jobs:` is read here (job_name, static_configs,
the `global` defaults); every other key goes through the
readers `jobs:` uses. A Prometheus key we do not support is an error or,
where ignoring it changes nothing that reaches the centre, a warning.
"""

from __future__ import annotations

from typing import Any

from prometheus_streams.config.jobs import JOB_KEYS, JobDefaults, read_job
from prometheus_streams.config.model import Job, Target
from prometheus_streams.config.reader import Section
from prometheus_streams.config.scrape_http import HTTP_JOB_KEYS
from prometheus_streams.config.target_groups import GroupError, read_target_group
from prometheus_streams.config.values import NAME_RE, positive_duration

SCRAPE_CONFIG_KEYS = (
    (JOB_KEYS - {"targets"})
    | HTTP_JOB_KEYS
    | {
        "job_name",
        "static_configs",
    }
)
STATIC_CONFIG_KEYS = {"targets", "labels"}
GLOBAL_KEYS = {"scrape_interval", "scrape_timeout"}
# Prometheus' global keys that mean nothing to a poller: warned about, then ignored.
GLOBAL_IGNORED = {
    "evaluation_interval": "no rules are evaluated here",
    "query_log_file": "no queries are answered here",
    "external_labels": "series leave with the publisher label, which names where they come from",
}
# Prometheus' scrape_config keys that change nothing at the centre when left out.
IGNORED = {
    "scrape_classic_histograms": "only the text format is scraped (classic histograms)",
    "native_histogram_bucket_limit": "only the text format is scraped (no native histograms)",
    "scrape_protocols": "the text format 0.0.4 is always asked for",
    "enable_compression": "gzip is always accepted",
    "keep_dropped_targets": "dropped targets are counted, not kept",
    "track_timestamps_staleness": "staleness is decided at the receiver",
}
# Prometheus' keys that would change what is scraped or how: an error, never a guess.
UNSUPPORTED = {
    "oauth2": "OAuth 2.0 is not supported; use basic_auth or authorization",
    "no_proxy": "not supported; give proxy_url only to the jobs that need it",
    "proxy_from_environment": "not supported; give proxy_url",
    "proxy_connect_header": "not supported (proxy authentication)",
    "http_headers": "not supported; use basic_auth, authorization or params",
}
_SUPPORTED_SD = ("static_configs", "file_sd_configs", "http_sd_configs", "dns_sd_configs")


def read_global_defaults(top: Section, defaults: JobDefaults) -> JobDefaults:
    """`global:` scrape_interval and scrape_timeout: the defaults of `scrape_configs` jobs."""
    g = top.mapping("global") if top.given("global") else None
    if g is None:
        return defaults
    g.check_keys(GLOBAL_KEYS, GLOBAL_IGNORED)
    interval = g.get("scrape_interval", positive_duration, defaults.scrape_interval)
    timeout = g.get("scrape_timeout", positive_duration, defaults.scrape_timeout)
    if g.given("scrape_timeout") and timeout > interval:
        g.problem(
            "scrape_timeout", f"{timeout:g}s is longer than the scrape_interval {interval:g}s"
        )
    return JobDefaults(interval, min(timeout, interval), defaults.body_size_limit)


def read_scrape_configs(top: Section, defaults: JobDefaults, taken: set[str]) -> tuple[Job, ...]:
    """Every usable job of the `scrape_configs` list; `taken` holds the names of `jobs:`."""
    defaults = read_global_defaults(top, defaults)
    if not top.given("scrape_configs"):
        if top.given("global"):
            top.warn("global", "used by scrape_configs only; jobs: take the top-level keys")
        return ()
    if not isinstance(top.raw("scrape_configs"), list):
        top.problem("scrape_configs", "must be a list of jobs (- job_name: ...)")
        return ()
    jobs = []
    names = set(taken)
    for s in top.entries("scrape_configs"):
        name = _job_name(s, names)
        _check_prometheus_keys(s)
        job = read_job(s, name or "", defaults, _static_targets)
        if job is not None and name:
            jobs.append(job)
    return tuple(jobs)


def _job_name(s: Section, names: set[str]) -> str | None:
    name = s.raw("job_name")
    if not isinstance(name, str) or not name:
        s.problem("job_name", "required: the job's name (its job label)")
        return None
    if not NAME_RE.fullmatch(name) or name != name.strip():
        s.problem("job_name", "must not contain control characters or surrounding blanks")
        return None
    if name in names:
        s.problem("job_name", f"{name!r} is already the name of another job")
        return None
    names.add(name)
    return name


def _check_prometheus_keys(s: Section) -> None:
    for key in s:
        if key == "targets":
            s.problem(key, "a scrape_configs job lists them in static_configs: [{targets: [...]}]")
        elif key in UNSUPPORTED:
            s.problem(key, UNSUPPORTED[key])
        elif key.endswith("_sd_configs") and key not in _SUPPORTED_SD:
            s.problem(
                key,
                f"this discovery is not supported; use one of {', '.join(_SUPPORTED_SD)}",
            )
    known = SCRAPE_CONFIG_KEYS | set(UNSUPPORTED) | {k for k in s if k.endswith("_sd_configs")}
    known.add("targets")
    s.check_keys(known, IGNORED)


def _static_targets(
    s: Section, discovered: bool, scheme: str, metrics_path: str, http: dict[str, Any]
) -> tuple[Target, ...] | None:
    """The targets of `static_configs`, as Prometheus' target groups."""
    if not s.given("static_configs"):
        if not discovered:
            s.warn(None, "no static_configs and no discovery: the job has no targets")
        return ()
    if not isinstance(s.raw("static_configs"), list):
        s.problem("static_configs", "must be a list of {targets: [host:port], labels: {...}}")
        return None
    targets: dict[str, Target] = {}
    for group in s.entries("static_configs"):
        group.check_keys(STATIC_CONFIG_KEYS)
        try:
            found = read_target_group(group.data, scheme, metrics_path)
        except GroupError as exc:
            group.problem(exc.key or None, str(exc))
            continue
        for target in found:
            if target.name in targets:
                group.warn("targets", f"{target.name!r} is listed twice: scraped once")
            targets.setdefault(target.name, target)
    return tuple(targets.values())
