"""`scrape_configs:` as Prometheus 2.x writes it: the same `Job`s as `jobs:`, its mistakes named."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from prometheus_streams import config
from prometheus_streams.check_config import describe
from prometheus_streams.errors import ConfigError

SECRET = "hunter2-scrape-secret"  # noqa: S105 - what must never be printed


def _load(tmp_path: Path, scrape: list[dict[str, Any]], **top: Any) -> config.Config:
    data = {
        "identity": "dc1",
        "poller_stream": {"urls": "nats://127.0.0.1:4222"},
        "scrape_configs": scrape,
        **top,
    }
    path = tmp_path / "poller.yaml"
    path.write_text(yaml.safe_dump(data))
    return config.load(path)


def _problems(tmp_path: Path, *jobs: dict[str, Any], **top: Any) -> str:
    scrape = top.pop("scrape_configs", list(jobs))
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, scrape, **top)
    text = "\n".join(caught.value.problems)
    assert SECRET not in text
    return text


def _secret_file(tmp_path: Path) -> str:
    path = tmp_path / "secret"
    path.write_text(f"{SECRET}\n")
    path.chmod(0o600)
    return str(path)


# Every key a `jobs:` entry shares with Prometheus' scrape_config, in both spellings.
def _shared_keys(tmp_path: Path) -> dict[str, Any]:
    return {
        "scrape_interval": "30s",
        "scrape_timeout": "5s",
        "metrics_path": "/probe",
        "scheme": "https",
        "params": {"module": ["http_2xx"]},
        "honor_timestamps": False,
        "honor_labels": True,
        "basic_auth": {"username": "prom", "password_file": _secret_file(tmp_path)},
        "tls_config": {"server_name": "node.example", "insecure_skip_verify": True},
        "proxy_url": "http://127.0.0.1:3128",
        "follow_redirects": False,
        "body_size_limit": "10MB",
        "sample_limit": 1000,
        "label_limit": 30,
        "label_name_length_limit": 200,
        "label_value_length_limit": 2000,
        "target_limit": 10,
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"target_label": "__address__", "replacement": "127.0.0.1:9115"},
        ],
        "metric_relabel_configs": [
            {"source_labels": ["__name__"], "regex": "go_.*", "action": "drop"}
        ],
        "file_sd_configs": [{"files": ["sd/*.json"], "refresh_interval": "1m"}],
        "http_sd_configs": [{"url": "http://127.0.0.1:1/sd", "refresh_interval": "30s"}],
        "dns_sd_configs": [{"names": ["_node._tcp.example"], "type": "SRV"}],
    }


def test_a_prometheus_job_loads_as_the_same_job_written_in_jobs(tmp_path: Path) -> None:
    keys = _shared_keys(tmp_path)
    pasted = _load(
        tmp_path,
        [
            {
                "job_name": "blackbox",
                **keys,
                "static_configs": [
                    {"targets": ["a.example:443", "b.example:443"], "labels": {"env": "prod"}}
                ],
            }
        ],
    ).jobs
    ours = config.parse(
        {
            "identity": "dc1",
            "poller_stream": {"urls": "nats://127.0.0.1:4222"},
            "jobs": {
                "blackbox": {
                    **keys,
                    "targets": [
                        {"url": "https://a.example:443/probe", "labels": {"env": "prod"}},
                        {"url": "https://b.example:443/probe", "labels": {"env": "prod"}},
                    ],
                }
            },
        },
        str(tmp_path / "poller.yaml"),
    ).jobs
    assert pasted == ours
    job = pasted[0]
    assert [t.name for t in job.targets] == ["a.example:443", "b.example:443"]
    assert job.metric_relabel_configs and job.rewrites_pages and job.target_limit == 10
    # As Prometheus reads them (units.Base2Bytes): MB is 1024 * 1024 bytes.
    assert job.honor_labels and job.body_size_limit == 10 * 1024 * 1024
    assert job.file_sd[0].files == (str(tmp_path / "sd/*.json"),)
    assert SECRET not in repr(job)


def test_global_sets_the_defaults_of_scrape_configs_jobs_only(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        [
            {"job_name": "a", "static_configs": [{"targets": ["h:1"]}]},
            {"job_name": "b", "scrape_interval": "5s", "static_configs": [{"targets": ["h:1"]}]},
        ],
        **{"global": {"scrape_interval": "15s", "scrape_timeout": "3s"}},
        jobs={"ours": {"targets": [{"url": "http://h:1/metrics"}]}},
    )
    timing = {j.name: (j.scrape_interval, j.scrape_timeout) for j in cfg.jobs}
    assert timing == {"ours": (60.0, 10.0), "a": (15.0, 3.0), "b": (5.0, 3.0)}
    # As Prometheus: the default timeout is capped at a shorter interval.
    short = _load(
        tmp_path,
        [{"job_name": "a", "static_configs": [{"targets": ["h:1"]}]}],
        **{"global": {"scrape_interval": "5s"}},
    )
    assert (short.jobs[0].scrape_interval, short.jobs[0].scrape_timeout) == (5.0, 5.0)


def test_static_configs_are_target_groups(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        [
            {
                "job_name": "node",
                "static_configs": [
                    {"targets": ["a:9100"], "labels": {"rack": "r1", "__meta_site": "x"}},
                    {"targets": ["b:9100", "a:9100"], "labels": {"__metrics_path__": "/m"}},
                ],
            }
        ],
    )
    a, b = cfg.jobs[0].targets
    assert (a.url, a.labels, a.meta) == (
        "http://a:9100/metrics",
        (("rack", "r1"),),
        (("__meta_site", "x"),),
    )
    assert (b.url, b.labels, b.meta) == ("http://b:9100/m", (), ())
    assert "static_configs[1].targets: 'a:9100' is listed twice" in "\n".join(cfg.warnings)


def test_what_is_ignored_is_said(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        [
            {
                "job_name": "node",
                "enable_http2": True,
                "scrape_classic_histograms": True,
                "static_configs": [{"targets": ["a:9100"]}],
            },
            {"job_name": "empty"},
        ],
        **{"global": {"external_labels": {"dc": "x"}, "evaluation_interval": "1m"}},
    )
    warnings = "\n".join(cfg.warnings)
    for key in (
        "scrape_configs[0].enable_http2: ignored",
        "scrape_configs[0].scrape_classic_histograms: ignored",
        "scrape_configs[1]: no static_configs and no discovery",
        "global.external_labels: ignored",
        "global.evaluation_interval: ignored",
    ):
        assert key in warnings
    assert [j.name for j in cfg.jobs] == ["node", "empty"]


def test_honor_labels_is_read_not_ignored(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        [
            {"job_name": "pushed", "honor_labels": True, **STATIC},
            {"job_name": "node", **STATIC},
        ],
    )
    assert [(j.name, j.honor_labels) for j in cfg.jobs] == [("pushed", True), ("node", False)]
    assert "honor_labels" not in "\n".join(cfg.warnings)


def test_global_without_scrape_configs_is_not_silently_ignored(tmp_path: Path) -> None:
    data = {
        "identity": "dc1",
        "poller_stream": {"urls": "nats://127.0.0.1:4222"},
        "global": {"scrape_interval": "15s"},
        "jobs": {"ours": {"targets": [{"url": "http://h:1/metrics"}]}},
    }
    cfg = config.parse(data, "poller.yaml")
    assert "poller.yaml: global: used by scrape_configs only" in "\n".join(cfg.warnings)


STATIC = {"static_configs": [{"targets": ["a:9100"]}]}


@pytest.mark.parametrize(
    ("jobs", "top", "expected"),
    [
        ([STATIC], {}, "scrape_configs[0].job_name: required"),
        ([{"job_name": "n\n", **STATIC}], {}, "job_name: must not contain control characters"),
        (
            [{"job_name": "n", **STATIC}, {"job_name": "n", **STATIC}],
            {},
            "scrape_configs[1].job_name: 'n' is already the name of another job",
        ),
        (
            [{"job_name": "ours", **STATIC}],
            {"jobs": {"ours": {"targets": [{"url": "http://h:1/metrics"}]}}},
            "scrape_configs[0].job_name: 'ours' is already the name",
        ),
        (
            [{"job_name": "n", "kubernetes_sd_configs": [{"role": "pod"}]}],
            {},
            "scrape_configs[0].kubernetes_sd_configs: this discovery is not supported",
        ),
        ([{"job_name": "n", "oauth2": {}, **STATIC}], {}, "oauth2: OAuth 2.0 is not supported"),
        (
            [{"job_name": "n", "targets": ["a:1"]}],
            {},
            "scrape_configs[0].targets: a scrape_configs job lists them in static_configs",
        ),
        (
            [{"job_name": "n", "scrape_intreval": "1s", **STATIC}],
            {},
            "scrape_intreval: unknown key, did you mean 'scrape_interval'?",
        ),
        (
            [{"job_name": "n", "static_configs": [{"targets": ["http://a:1/metrics"]}]}],
            {},
            "scrape_configs[0].static_configs[0].targets: not a host:port",
        ),
        (
            [{"job_name": "n", "static_configs": [{"targets": [f"u:{SECRET}@a:1"]}]}],
            {},
            "static_configs[0].targets: 'a:1': user info",
        ),
        (
            [{"job_name": "n", "static_configs": [{"targets": ["a:1"], "lables": {}}]}],
            {},
            "static_configs[0].lables: unknown key, did you mean 'labels'?",
        ),
        ([{"job_name": "n", "static_configs": "a:1"}], {}, "static_configs: must be a list"),
        (
            [{"job_name": "n", "relabel_configs": [{"action": "relabel"}], **STATIC}],
            {},
            "scrape_configs[0].relabel_configs[0].action: unknown relabel action",
        ),
        ([{"job_name": "n", "sample_limit": -1, **STATIC}], {}, "sample_limit:"),
        ([{"job_name": "n", "honor_labels": "yes", **STATIC}], {}, "scrape_configs[0].honor_l"),
        (
            [{"job_name": "n", "body_size_limit": "10kB", **STATIC}],
            {},
            "scrape_configs[0].body_size_limit: not a size as Prometheus writes it",
        ),
        ([], {"scrape_configs": {"job_name": "n"}}, "scrape_configs: must be a list"),
        (
            [{"job_name": "n", **STATIC}],
            {"global": {"scrape_interval": "5s", "scrape_timeout": "10s"}},
            "global.scrape_timeout: 10s is longer than the scrape_interval 5s",
        ),
        ([{"job_name": "n", **STATIC}], {"global": {"rule_files": []}}, "global.rule_files: unkn"),
    ],
)
def test_mistakes_are_named(
    tmp_path: Path, jobs: list[dict[str, Any]], top: dict[str, Any], expected: str
) -> None:
    assert expected in _problems(tmp_path, *jobs, **top)


def test_check_config_describes_a_pasted_job(tmp_path: Path) -> None:
    cfg = _load(tmp_path, [{"job_name": "blackbox", **_shared_keys(tmp_path)}])
    job = describe(cfg)["jobs"]["blackbox"]
    assert job["relabel_configs"] == 2 and job["metric_relabel_configs"] == 1
    assert job["limits"]["sample_limit"] == 1000
    assert job["honor_labels"] is True and job["body_size_limit_bytes"] == 10 * 1024 * 1024
    assert job["auth"].startswith("basic auth as prom")
    assert any(d.startswith("file ") for d in job["discovery"])
    assert SECRET not in repr(describe(cfg))


def _doc_snippet() -> str:
    """The pasted Prometheus config of docs/configuration.md, exactly as shown there."""
    doc = (Path(__file__).parent.parent.parent / "docs" / "configuration.md").read_text()
    after = doc.split("<!-- pasted-prometheus-job -->\n", 1)[1]
    assert after.startswith("```yaml\n")
    return after.removeprefix("```yaml\n").split("```\n", 1)[0]


def test_the_documented_prometheus_job_loads_unchanged(tmp_path: Path) -> None:
    snippet = _doc_snippet()
    path = tmp_path / "poller.yaml"
    path.write_text('identity: dc1\npoller_stream: {urls: "nats://127.0.0.1:4222"}\n' + snippet)
    cfg = config.load(path)
    assert cfg.warnings == ()
    assert cfg.problems_for("poller") == []
    node, blackbox, api = cfg.jobs
    assert [t.name for t in node.targets] == [
        "web1.dc1.example.net:9100",
        "web2.dc1.example.net:9100",
    ]
    assert (node.scrape_interval, node.sample_limit) == (15.0, 20000)
    assert blackbox.params == (("module", ("http_2xx",)),) and blackbox.relabel_configs
    assert api.dns_sd[0].type == "SRV" and api.scheme == "https"
    # Prometheus 2.42 takes the same text: the block is Prometheus' own syntax.
    (tmp_path / "prometheus.yml").write_text(snippet)
    checked = subprocess.run(
        ["promtool", "check", "config", "--syntax-only", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
