"""The benchmark harness works end to end (tiny counts); its figures are never asserted as goals."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Figures every smoke run must produce, one per scenario at least.
RATES = [
    "raw_scrape_node_gzip_per_s",
    "pgw_nocheck_node_10_pushes_per_s",
    "pgw_check_node_10_pushes_per_s",
    "direct_push_per_s",
    "drain_per_s",
    "pipeline_scrapes_per_s",
    "pipeline_pushes_per_s",
    "agent_scrapes_per_s",
    "scale_scrapes_per_s",
    "recovery_direct_round_s",
    "recovery_from_ready_s",
    "vm_poller_samples_per_s",
    "vm_vmagent_samples_per_s",
    "rw_receiver_samples_per_s",
    "rw_vmagent_samples_per_s",
    "rw_drain_ours_samples_per_s",
    "rw_drain_vmagent_samples_per_s",
    "rw_drain_ours_per_cpu_s",
    "rw_ours_queryable_p50_ms",
    "rw_vmagent_queryable_p50_ms",
    "topology_catchup_from_restore_s",
    "topology_catchup_direct_round_s",
    "topology_leaves_stored_centre_p50_ms",
    "ha_lease_share_pct",
    "ha_failover_from_kill_s",
]
CPU = [
    "pipeline_poller_cpu_ms_per_1k_samples",
    "pipeline_receiver_cpu_ms_per_1k_samples",
    "agent_cpu_ms_per_1k_samples",
    "drain_cpu_ms_per_1k_samples",
    "hotpath_receiver_us",
    "hotpath_shape_us",
    "vm_poller_cpu_ms_per_1k_samples",
    "vm_vmagent_cpu_ms_per_1k_samples",
    "rw_receiver_cpu_ms_per_1k",
    "rw_vmagent_cpu_ms_per_1k",
    "topology_leaves_ours_cpu_ms_per_1k_samples",
    "topology_leaves_leaf_nats_cpu_ms_per_1k_samples",
    "relabel_none_cpu_ms_per_1k_samples",
    "relabel_typical_cpu_ms_per_1k_samples",
    "relabel_payload_typical_us",
]
MEMORY = ["pipeline_poller_rss_mib", "pipeline_receiver_rss_mib", "agent_rss_mib"]
RATIOS = [
    "drain_ratio",
    "drain_ratio_aiohttp",
    "drain_ratio_whole",
    "vm_poller_ratio",
    "rw_receiver_ratio",
    "rw_ours_ratio",
    "rw_ours_store_rows_ratio",
    "rw_vmagent_store_rows_ratio",
    "relabel_ratio",
    "topology_ratio_nats_cpu_ms_per_1k_samples",
    "topology_leaves_ratio_ours_cpu_ms_per_1k_samples",
    "topology_leaves_ratio_nats_cpu_ms_per_1k_samples",
    "topology_catchup_drain_ratio",
]
# With two CPUs or more the drain also runs with the Pushgateway on a CPU of its own.
PINNED = ["pinned_drain_per_s", "pinned_direct_push_per_s", "pinned_drain_ratio"]


def test_benchmark_smoke_run_reports_every_figure() -> None:
    done = subprocess.run(
        [str(REPO / "benchmarks" / "run"), "--smoke", "--json"],
        capture_output=True,
        text=True,
        timeout=450,  # the topology scenario alone takes about a minute
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["profile"] == "smoke"
    figures = report["figures"]
    pinned = PINNED if len(os.sched_getaffinity(0)) >= 2 else []
    for key in RATES + CPU + MEMORY + RATIOS + pinned:
        assert key in figures, f"{key} missing; have {sorted(figures)}"
        figure = figures[key]
        assert figure["runs"] >= 1
        assert figure["min"] <= figure["median"] <= figure["max"]
        assert math.isfinite(figure["median"]) and figure["median"] > 0, (key, figure)
    latency = figures["latency_p50_ms"]["median"]
    assert latency is not None and latency >= 0
    assert 0 <= figures["pipeline_late_or_missed_pct"]["median"] <= 100
    assert {g["goal"] for g in report["goals"]} and all(
        g["value"] is not None for g in report["goals"]
    ), report["goals"]
    assert report["machine"]["cpus"] >= 1 and report["versions"]["prometheus"]
    drain_goal = report["goals"][0]
    assert drain_goal["goal"].startswith("receiver drain")
    # Judged with the Pushgateway apart when it could be; the shared ratio beside it.
    assert ("CPU of its own" in drain_goal["goal"]) == bool(pinned), drain_goal
    assert (
        drain_goal["value"] == figures["pinned_drain_ratio" if pinned else "drain_ratio"]["median"]
    )
