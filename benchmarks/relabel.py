"""relabel() per sample on the node page: a typical metric_relabel_configs against none.

Run alone: `.venv/bin/python -m benchmarks.relabel`. Labels are parsed once
beforehand; the figures are relabelling only, fastest of several repeats.
"""

from __future__ import annotations

import functools
import timeit

from benchmarks.pages import node_page
from prometheus_streams.config.reader import Reader
from prometheus_streams.config.relabel import read_relabel_configs
from prometheus_streams.receiver.remote_write.text import parse_page, series_labels
from prometheus_streams.relabel import RelabelConfig, relabel

FAMILIES = (
    "node_scrape_collector_duration_seconds",
    "node_scrape_collector_success",
    "go_gc_duration_seconds",
)
TYPICAL: list[dict[str, object]] = [
    {"source_labels": ["__name__"], "regex": "|".join(FAMILIES), "action": "drop"},
    {"regex": "device", "action": "labeldrop"},
    {"source_labels": ["mode"], "regex": "(.+)", "target_label": "cpu_mode",
     "replacement": "mode_$1"},
]  # fmt: skip


def _drop(name: str) -> dict[str, object]:
    return {"source_labels": ["__name__"], "regex": name, "action": "drop"}


# The same with one drop rule per family.
SPLIT: list[dict[str, object]] = [_drop(name) for name in FAMILIES] + TYPICAL[1:]


def read_rules(raw: list[dict[str, object]]) -> tuple[RelabelConfig, ...]:
    """Rules as the config reader reads them."""
    reader = Reader("benchmark")
    section = reader.root({"metric_relabel_configs": raw})
    assert section is not None
    rules = read_relabel_configs(section, "metric_relabel_configs")
    assert not reader.problems, reader.problems
    return rules


def _run(samples: list[dict[str, str]], configs: tuple[RelabelConfig, ...]) -> None:
    for labels in samples:
        relabel(labels, configs)


def _labels_of(page: bytes) -> list[dict[str, str]]:
    return [dict(series_labels(key)) for key, _value, _ts in parse_page(page)]


def main() -> None:
    """Print µs per sample with no rules and with the typical rules."""
    page = node_page()
    samples = [
        {**dict(series_labels(key)), "job": "node", "instance": "host:9100"}
        for key, _value, _ts in parse_page(page)
    ]
    rules = read_rules(TYPICAL)
    kept = sum(relabel(labels, rules) is not None for labels in samples)
    print(f"node page: {len(samples)} samples, {kept} kept by the typical rules")
    # For scale: what turning the page into label dicts costs, before any rule.
    runs = timeit.repeat(functools.partial(_labels_of, page), number=20, repeat=7)
    print(f"{'parse + labels':>20}: {min(runs) / 20 / len(samples) * 1e6:.3f} µs per sample")
    sets = (
        ("no relabelling", ()),
        ("typical rules", rules),
        ("one drop per family", read_rules(SPLIT)),
    )
    for name, configs in sets:
        runs = timeit.repeat(functools.partial(_run, samples, configs), number=20, repeat=7)
        per_sample = min(runs) / 20 / len(samples) * 1e6
        print(f"{name:>20}: {per_sample:.3f} µs per sample")


if __name__ == "__main__":
    main()
