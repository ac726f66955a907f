"""A job's `relabel_configs` applied to its targets, as Prometheus 2.42 does before scraping."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from prometheus_streams.config import Job, Target
from prometheus_streams.config.jobs import default_instance_name
from prometheus_streams.poller import LOGGER_NAME
from prometheus_streams.relabel import relabel
from prometheus_streams.wire import RESERVED_LABELS

log = logging.getLogger(LOGGER_NAME)

_PARAM = "__param_"


def target_labels(job: Job, target: Target) -> dict[str, str]:
    """The labels a target starts relabelling with: its URL's parts, the job, its own labels."""
    parts = urlsplit(target.url)
    address = default_instance_name(target.url)
    labels: dict[str, str] = {
        "__address__": address,
        "__scheme__": parts.scheme,
        "__metrics_path__": parts.path or "/",
        "job": job.name,
    }
    # A parameter in the URL wins over the job's, as in with_params.
    present: set[str] = set()
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in present:
            labels[_PARAM + name] = value
            present.add(name)
    for name, values in job.params:
        if name not in present and values:
            labels[_PARAM + name] = values[0]
    if target.name != address:
        labels["instance"] = target.name
    labels.update(target.meta)
    labels.update(target.labels)
    return labels


def relabel_target(job: Job, target: Target) -> Target | None:
    """The target after the job's relabel_configs, None when dropped; unchanged without rules."""
    if not job.relabel_configs:
        return target
    result = relabel(target_labels(job, target), job.relabel_configs)
    if result is None:
        return None
    address = result.get("__address__", "")
    if not address or any(c in address for c in "/?# @"):
        return None  # Prometheus drops a target without a usable address too
    scheme = result.get("__scheme__", "") or "http"
    path = result.get("__metrics_path__", "") or "/metrics"
    if not path.startswith("/"):
        path = "/" + path
    query = urlencode([(k[len(_PARAM) :], v) for k, v in result.items() if k.startswith(_PARAM)])
    # Credentials in the URL are never a label (they would be printed); they stay with the URL.
    userinfo = urlsplit(target.url).netloc.rpartition("@")
    netloc = f"{userinfo[0]}@{address}" if userinfo[1] else address
    url = urlunsplit((scheme, netloc, path, query, ""))
    # As Prometheus: an address without a port gets the scheme's.
    name = result.get("instance", "") or default_instance_name(url)
    labels = []
    for k, v in sorted(result.items()):
        if k.startswith("__") or k in ("instance", "job") or not v:
            continue
        if k in RESERVED_LABELS:
            # The central side sets it; a target may not (as for static labels).
            log.warning("job %s: relabel_configs set reserved label %r: left out", job.name, k)
            continue
        labels.append((k, v))
    return Target(name=name, url=url, labels=tuple(labels))
