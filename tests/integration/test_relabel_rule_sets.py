"""Every rule set of relabel_rule_sets given to Prometheus 2.42 and to the pipeline at once.

One Prometheus scrapes the targets itself and is also the remote-write
store of the receiver (the pipeline's series carry `publisher`, Prometheus'
own do not); the receiver also pushes to a Pushgateway. The series each
path delivers are the series Prometheus ingested, label for label, with the
same values, and `up` agrees.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness import new_poller, new_receiver, poller_config, receiver_config, running
from prometheus_client.parser import text_string_to_metric_families
from relabel_rule_sets import KNOWN_DIFFERENCES, PAGES, RULE_SETS, TARGET_LABELS
from servers import NatsServer, Pushgateway, Target, async_wait_for
from stores import PrometheusStore

INTERVAL = "2s"
POST = "scrape_samples_post_metric_relabeling"
ACTIONS = {"replace", "keep", "drop", "keepequal", "dropequal", "hashmod", "labelmap",
           "labeldrop", "labelkeep", "lowercase", "uppercase"}  # fmt: skip
LIMITS = {"sample_limit", "label_limit", "label_name_length_limit", "label_value_length_limit",
          "target_limit", "body_size_limit"}  # fmt: skip
# Series about the scrape or the push, not the target's: `up` and COMPARED are compared.
NOT_COMPARED = ("scrape_", "push_time_seconds", "push_failure_time_seconds")
COMPARED = ("scrape_samples_scraped", POST)
# A job whose pages are parsed reports POST; the others forward pages untouched and do not.
REWRITES = {"metric_relabel_configs", "sample_limit", "label_limit", "label_name_length_limit",
            "label_value_length_limit"}  # fmt: skip

Series = frozenset[tuple[str, str]]
View = dict[str, dict[Series, float]]  # job -> series (with __name__) -> value


def test_the_rule_sets_cover_every_action_and_limit() -> None:
    assert len(RULE_SETS) >= 30
    for section in ("relabel_configs", "metric_relabel_configs"):
        used = {
            rule.get("action", "replace")
            for keys in RULE_SETS.values()
            for rule in keys.get(section, ())
        }
        assert used == ACTIONS, (section, ACTIONS - used)
    assert {key for keys in RULE_SETS.values() for key in keys} >= LIMITS


def _view(series: Iterable[tuple[dict[str, str], float]]) -> View:
    found: View = {}
    for labels, value in series:
        if labels["__name__"].startswith(NOT_COMPARED) and labels["__name__"] not in COMPARED:
            continue
        labels = {k: v for k, v in labels.items() if k != "publisher"}
        found.setdefault(labels.get("job", ""), {})[frozenset(labels.items())] = value
    return found


def _pushgateway_view(text: str) -> View:
    return _view(
        ({**s.labels, "__name__": s.name}, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("publisher") == "dc1"
    )


def _query_view(result: list[dict[str, Any]]) -> View:
    return _view((s["metric"], float(s["value"][1])) for s in result)


def _difference(want: dict[Series, float], mine: dict[Series, float]) -> str:
    if mine == want:
        return ""
    missing = [dict(sorted(s)) for s in want.keys() - mine.keys()]
    extra = [dict(sorted(s)) for s in mine.keys() - want.keys()]
    values = {str(dict(sorted(s))): (want[s], mine[s]) for s in want.keys() & mine.keys()
              if want[s] != mine[s]}  # fmt: skip
    return f"missing {missing}, extra {extra}, values (Prometheus, ours) {values}"


def _prometheus_jobs(address: dict[str, str]) -> list[dict[str, Any]]:
    jobs = []
    for name, keys in RULE_SETS.items():
        chosen = keys.get("targets", ["front", "back"])
        static = [{"targets": [address[t]], "labels": TARGET_LABELS[t]} for t in chosen]
        job = {k: v for k, v in keys.items() if k != "targets"}
        jobs.append({"job_name": name, "scrape_interval": INTERVAL, "scrape_timeout": INTERVAL,
                     "static_configs": static, **job})  # fmt: skip
    return jobs


def _poller_jobs(urls: dict[str, str]) -> dict[str, Any]:
    jobs = {}
    for name, keys in RULE_SETS.items():
        chosen = keys.get("targets", ["front", "back"])
        targets = [{"url": urls[t], "labels": TARGET_LABELS[t]} for t in chosen]
        jobs[name] = {"targets": targets, **{k: v for k, v in keys.items() if k != "targets"}}
    return jobs


async def test_every_rule_set_reaches_the_centre_as_prometheus_ingests_it(
    tmp_path: Path, nats_server: NatsServer, pushgateway: Pushgateway
) -> None:
    servers = {name: Target(page) for name, page in PAGES.items()}
    for server in servers.values():
        await server.start()
    urls = {name: server.url for name, server in servers.items()}
    address = {name: url.split("//", 1)[1].split("/", 1)[0] for name, url in urls.items()}
    prometheus = PrometheusStore(tmp_path / "prom", scrape_configs=_prometheus_jobs(address))
    prometheus.start()
    poller, _ = new_poller(
        poller_config(tmp_path, nats_server.url, _poller_jobs(urls), scrape_interval=INTERVAL)
    )
    store = {"url": prometheus.write_url, "name": "prometheus",
             "queue_config": {"batch_send_deadline": "1s", "max_backoff": "1s"}}  # fmt: skip
    receiver, _ = new_receiver(
        receiver_config(tmp_path, nats_server.url, pushgateway.url, remote_write=[store])
    )
    views: dict[str, View] = {}
    try:
        async with running(poller), running(receiver):

            async def agreed() -> bool:
                status, body = await prometheus.request("GET", "/api/v1/targets")
                active = json.loads(body)["data"]["activeTargets"] if status == 200 else []
                theirs = _query_view(await prometheus.query('{__name__=~".+", publisher=""}'))
                ups = sum(1 for job in theirs.values() for s in job if ("__name__", "up") in s)
                views["Prometheus"] = theirs
                views["remote write"] = _query_view(await prometheus.query('{publisher="dc1"}'))
                views["Pushgateway"] = _pushgateway_view(pushgateway.metrics_text())
                # Every target Prometheus scrapes has been scraped, and the paths agree.
                return bool(active) and ups == len(active) and not _all_differences(views)

            # On timeout the differences are shown below.
            with contextlib.suppress(AssertionError):
                await async_wait_for(agreed, timeout=90, interval=1, message="never agreed")
    finally:
        prometheus.close()
        for server in servers.values():
            await server.stop()
    theirs = views["Prometheus"]
    assert set(theirs) >= {n for n in RULE_SETS if n != "t_drop_all"}, sorted(theirs)
    differences = _all_differences(views)
    assert not differences, "\n".join(f"{path}: {line}" for (path, _), line in differences.items())


def _all_differences(views: dict[str, View]) -> dict[tuple[str, str], str]:
    """(path, job) -> how it differs from Prometheus; known differences when they vanish."""
    theirs = views["Prometheus"]
    found = {}
    for path in ("remote write", "Pushgateway"):
        ours = views[path]
        for job in sorted(set(theirs) | set(ours)):
            want = theirs.get(job, {})
            if not REWRITES & set(RULE_SETS.get(job, {})):
                want = {s: v for s, v in want.items() if ("__name__", POST) not in s}
            difference = _difference(want, ours.get(job, {}))
            if (path, job) in KNOWN_DIFFERENCES:
                # Still there, and nothing else: the rest of the job must agree.
                if not difference:
                    found[path, job] = f"agrees now: {KNOWN_DIFFERENCES[path, job]} (update)"
            elif difference:
                found[path, job] = f"{job}: {difference}"
    return found
