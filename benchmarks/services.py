"""The real parts the benchmark runs: nats-server, Pushgateway, Prometheus, our roles, targets.

Every service listens on 127.0.0.1 on a free port, keeps its data in the
run's temporary directory and is started through `Processes`, which stops it.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.procs import HOST, Proc, Processes, free_port, http_get

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent


def binary(name: str) -> str:
    """An executable from the venv's bin (nats-server, prometheus-streams), else PATH."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: run scripts/setup.sh --test")
    return found


def _ok(url: str) -> bool:
    return http_get(url, timeout=2.0)[0] == 200


@dataclass
class Service:
    """A started service: its process and where it listens."""

    proc: Proc
    port: int
    extra_port: int = 0

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port> (nats:// for NATS)."""
        return f"http://{HOST}:{self.port}"


def start_nats(
    procs: Processes, work: Path, name: str = "nats", cpus: frozenset[int] | None = None
) -> Service:
    """nats-server with JetStream (file store under `work`) and its monitoring port."""
    port, monitor = free_port(), free_port()
    store = work / f"{name}-js"
    conf = work / f"{name}.conf"
    conf.write_text(
        f'server_name: "bench-{port}"\nlisten: "{HOST}:{port}"\nhttp: "{HOST}:{monitor}"\n'
        f"jetstream {{\n  store_dir: {json.dumps(str(store))}\n}}\n"
    )
    proc = procs.start(
        name,
        [binary("nats-server"), "-c", str(conf)],
        ready=lambda: _ok(f"http://{HOST}:{monitor}/healthz?js-enabled-only=true"),
        cpus=cpus,
    )
    return Service(proc, port, monitor)


def nats_url(service: Service) -> str:
    """The client URL of a nats-server service."""
    return f"nats://{HOST}:{service.port}"


def start_pushgateway(
    procs: Processes,
    work: Path,
    check: bool,
    name: str = "pushgateway",
    data: Path | None = None,
    cpus: frozenset[int] | None = None,
) -> Service:
    """The Pushgateway, with or without its consistency check; admin API on for wipes.

    `data` is a persistence file: a Pushgateway stopped with SIGTERM writes its
    groups there, and the next one started on it begins with them.
    """
    port = free_port()
    argv = [
        binary("prometheus-pushgateway"),
        f"--web.listen-address={HOST}:{port}",
        "--web.enable-admin-api",
        "--log.level=warn",
    ]
    # Debian's build defaults to /var/lib/prometheus/pushgateway.data, shared by
    # every run: without `data`, no persistence at all.
    argv.append(f"--persistence.file={data or ''}")
    if not check:
        argv.append("--push.disable-consistency-check")
    proc = procs.start(
        name, argv, ready=lambda: _ok(f"http://{HOST}:{port}/-/ready"), timeout=180.0, cpus=cpus
    )
    return Service(proc, port)


def start_targets(procs: Processes) -> Service:
    """The synthetic target server (one process, any number of target paths)."""
    port = free_port()
    proc = procs.start(
        "targets",
        [sys.executable, "-m", "benchmarks.targetserver", "--port", str(port)],
        ready=lambda: _ok(f"http://{HOST}:{port}/-/ready"),
        env={"PYTHONPATH": str(REPO)},
    )
    return Service(proc, port)


def target_urls(targets: Service, count: int, kind: str = "node") -> list[str]:
    """URLs of `count` targets of one kind on the target server."""
    return [f"{targets.url}/{kind}/{i}/metrics" for i in range(count)]


@dataclass(frozen=True)
class StreamSettings:
    """The JetStream stream settings a scenario runs with (they are in the report)."""

    max_msgs_per_subject: int = 10
    storage: str = "file"
    stream_max_bytes: str = "4GiB"
    fetch_batch: int = 64
    replicas: int = 1  # 3 on a cluster (the topology scenario)


def _stream(nats: Service | list[Service], settings: StreamSettings) -> dict[str, object]:
    servers = nats if isinstance(nats, list) else [nats]
    return {
        "urls": [nats_url(server) for server in servers],
        "replicas": settings.replicas,
        "topic": "prometheus",
        "storage": settings.storage,
        "max_msgs_per_subject": settings.max_msgs_per_subject,
        "stream_max_bytes": settings.stream_max_bytes,
        "fetch_batch": settings.fetch_batch,
        "client_id": "bench_receiver",
    }


def start_poller(
    procs: Processes,
    work: Path,
    nats: Service | list[Service],
    urls: list[str],
    interval: float,
    settings: StreamSettings,
    name: str = "poller",
    launcher: list[str] | None = None,
    identity: str = "bench",
    job_keys: dict[str, object] | None = None,
    ha: dict[str, object] | None = None,
    stream: dict[str, object] | None = None,
) -> Service:
    """`prometheus-streams poller` scraping `urls` (job node, instances t0, t1, ...).

    `job_keys` go into the job beside its targets (e.g. metric_relabel_configs);
    `stream` adds to or overrides `poller_stream` (credentials, a domain).
    """
    port = free_port()
    config: dict[str, object] = {
        "identity": identity,
        "scrape_interval": f"{interval:g}s",
        "scrape_timeout": f"{min(interval, 10.0):g}s",
        "monitor_port": port,
        "monitor_address": HOST,
        "poller_stream": {**_stream(nats, settings), **(stream or {})},
        "jobs": {
            "node": {
                "targets": [{"name": f"t{i}", "url": url} for i, url in enumerate(urls)],
                **(job_keys or {}),
            }
        },
    }
    if ha is not None:
        config["ha"] = ha
    return _start_role(procs, work, "poller", name, config, port, launcher=launcher)


def start_receiver(
    procs: Processes,
    work: Path,
    nats: Service | list[Service],
    gateway: Service,
    settings: StreamSettings,
    name: str = "receiver",
    cpus: frozenset[int] | None = None,
    stream: dict[str, object] | None = None,
) -> Service:
    """`prometheus-streams receiver` pushing to `gateway`; `stream` as in `start_poller`."""
    port = free_port()
    config = {
        "identity": "central",
        "monitor_port": port,
        "monitor_address": HOST,
        "receiver_stream": {**_stream(nats, settings), **(stream or {})},
        "push_gateway": {"url": gateway.url, "publisher_label": True},
    }
    return _start_role(procs, work, "receiver", name, config, port, cpus)


def start_rw_receiver(
    procs: Processes,
    work: Path,
    nats: Service,
    store: Service | int,
    name: str = "receiver",
    launcher: list[str] | None = None,
    output: str = "vm",
    queue: dict[str, int] | None = None,
) -> Service:
    """`prometheus-streams receiver` with one remote-write output (`output`) into `store`.

    The receiver provisions the stream keeping every scrape (remote write's history);
    `queue` is the output's queue_config, its defaults when None.
    """
    port = free_port()
    store_url = store.url if isinstance(store, Service) else f"http://{HOST}:{store}"
    config = {
        "identity": "central",
        "monitor_port": port,
        "monitor_address": HOST,
        "receiver_stream": _stream(nats, StreamSettings()),
        "remote_write": [
            {"url": f"{store_url}/api/v1/write", "name": output, **_queue_config(queue)}
        ],
    }
    return _start_role(procs, work, "receiver", name, config, port, launcher=launcher)


def _queue_config(queue: dict[str, int] | None) -> dict[str, object]:
    return {} if queue is None else {"queue_config": queue}


def _start_role(
    procs: Processes,
    work: Path,
    role: str,
    name: str,
    config: dict[str, object],
    port: int,
    cpus: frozenset[int] | None = None,
    launcher: list[str] | None = None,
) -> Service:
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    proc = procs.start(
        name,
        [*(launcher or [binary("prometheus-streams")]), "--config", str(path), role],
        ready=lambda: _ok(f"http://{HOST}:{port}/-/ready"),
        cpus=cpus,
    )
    return Service(proc, port)


def _static_targets(urls: list[str]) -> list[dict[str, object]]:
    """Prometheus `static_configs`: one per URL, instance t0, t1, ... as our poller names them."""
    static: list[dict[str, object]] = []
    for i, url in enumerate(urls):
        rest = url.removeprefix("http://")
        address, metrics_path = rest.split("/", 1)
        labels = {"instance": f"t{i}", "__metrics_path__": f"/{metrics_path}"}
        static.append({"targets": [address], "labels": labels})
    return static


def start_prometheus_pair(
    procs: Processes, work: Path, urls: list[str], interval: float
) -> tuple[Service, Service]:
    """A Prometheus in agent mode scraping `urls`, remote-writing to a receiving Prometheus."""
    sink_port, agent_port = free_port(), free_port()
    sink_config = work / "prometheus-sink.yml"
    sink_config.write_text("global: {}\nscrape_configs: []\n")
    sink_proc = procs.start(
        "prometheus-sink",
        [
            binary("prometheus"),
            f"--config.file={sink_config}",
            f"--storage.tsdb.path={work / 'prometheus-sink-data'}",
            f"--web.listen-address={HOST}:{sink_port}",
            "--web.enable-remote-write-receiver",
            "--log.level=warn",
        ],
        ready=lambda: _ok(f"http://{HOST}:{sink_port}/-/ready"),
    )
    static = _static_targets(urls)
    timeout = min(interval, 10.0)
    agent_config = {
        "global": {"scrape_interval": f"{interval:g}s", "scrape_timeout": f"{timeout:g}s"},
        "scrape_configs": [{"job_name": "node", "static_configs": static}],
        "remote_write": [{"url": f"http://{HOST}:{sink_port}/api/v1/write"}],
    }
    agent_file = work / "prometheus-agent.yml"
    agent_file.write_text(yaml.safe_dump(agent_config, sort_keys=False))
    agent_proc = procs.start(
        "prometheus-agent",
        [
            binary("prometheus"),
            f"--config.file={agent_file}",
            "--enable-feature=agent",
            f"--storage.agent.path={work / 'prometheus-agent-data'}",
            f"--web.listen-address={HOST}:{agent_port}",
            "--log.level=warn",
        ],
        ready=lambda: _ok(f"http://{HOST}:{agent_port}/-/ready"),
    )
    return Service(agent_proc, agent_port), Service(sink_proc, sink_port)


def start_victoria_metrics(
    procs: Processes, work: Path, name: str = "victoria-metrics", port: int = 0
) -> Service:
    """A single-node VictoriaMetrics (Debian's build) taking remote writes on /api/v1/write.

    Queries see a sample as soon as it is searchable (no 30 s latency offset),
    as tests/stores.py starts it: the scrape -> queryable figures rely on it.
    """
    port = port or free_port()
    proc = procs.start(
        name,
        [
            binary("victoria-metrics"),
            f"-storageDataPath={work / f'{name}-data'}",
            f"-httpListenAddr={HOST}:{port}",
            "-search.latencyOffset=0s",
            "-loggerLevel=WARN",
        ],
        ready=lambda: _ok(f"http://{HOST}:{port}/health"),
    )
    return Service(proc, port)


def start_vmagent(
    procs: Processes,
    work: Path,
    urls: list[str],
    interval: float,
    store: Service | int,
    name: str = "vmagent",
) -> Service:
    """vmagent scraping `urls` (job node, instances t0, t1, ...), remote-writing into `store`.

    `store` may be a port where no store listens yet: vmagent then queues what
    it scrapes in its -remoteWrite.tmpDataPath (`work`/`name`-data).
    """
    port = free_port()
    store_url = store.url if isinstance(store, Service) else f"http://{HOST}:{store}"
    config = {
        "global": {
            "scrape_interval": f"{interval:g}s",
            "scrape_timeout": f"{min(interval, 10.0):g}s",
        },
        "scrape_configs": [{"job_name": "node", "static_configs": _static_targets(urls)}],
    }
    path = work / f"{name}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    proc = procs.start(
        name,
        [
            binary("vmagent"),
            f"-promscrape.config={path}",
            f"-remoteWrite.url={store_url}/api/v1/write",
            f"-remoteWrite.tmpDataPath={work / f'{name}-data'}",
            f"-httpListenAddr={HOST}:{port}",
            "-loggerLevel=WARN",
        ],
        ready=lambda: _ok(f"http://{HOST}:{port}/health"),
    )
    return Service(proc, port)
