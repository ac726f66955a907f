"""The C pass of the poller's rewrite (rewrite_known) against the Python loop, page by page."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relabel_rule_sets import BACK, EDGE, FRONT, RULE_SETS, TARGET_LABELS

from prometheus_streams.config import Job
from prometheus_streams.config.reader import Reader
from prometheus_streams.config.relabel import read_relabel_configs
from prometheus_streams.poller import rewrite
from prometheus_streams.poller.rewrite import Rewritten, SeriesCache, rewrite_page
from prometheus_streams.relabel import RelabelConfig

JOB = Job(name="j", targets=(), scrape_interval=15, scrape_timeout=10, body_size_limit=2**20)
LABELS = {"job": "j", "instance": "h:1", **TARGET_LABELS["front"]}
NATIVE = rewrite.NATIVE_REWRITE


def _rules(raw: list[dict[str, Any]]) -> tuple[RelabelConfig, ...]:
    reader = Reader("poller.yaml")
    section = reader.root({"rules": raw})
    assert section is not None
    found = read_relabel_configs(section, "rules")
    assert not reader.problems
    return found


def _node_like() -> bytes:
    lines = []
    for family in range(30):
        name = f"node_family_{family}_total"
        lines += [f"# HELP {name} Family {family}.", f"# TYPE {name} counter"]
        lines += [f'{name}{{cpu="{cpu}",mode="m{family % 4}"}} {cpu}.5' for cpu in range(6)]
    lines += ["# TYPE node_seconds histogram"]
    lines += [f'node_seconds_bucket{{le="{le}"}} {i}' for i, le in enumerate(["0.1", "1", "+Inf"])]
    lines += ["node_seconds_sum 3", "node_seconds_count 3", "node_untyped 1", "node_untyped_b 2"]
    lines += ["# TYPE go_gc_duration_seconds summary", 'go_gc_duration_seconds{quantile="0"} 0']
    lines += ["go_gc_duration_seconds_sum 1", "go_gc_duration_seconds_count 2"]
    return ("\n".join(lines) + "\n").encode()


NODE_LIKE = _node_like()
PAGES = {"front": FRONT, "back": BACK, "edge": EDGE, "node": NODE_LIKE}
TYPICAL: list[dict[str, Any]] = [
    {"source_labels": ["__name__"], "regex": "node_family_[12]_total|go_.*", "action": "drop"},
    {"regex": "cpu", "action": "labeldrop"},
    {"source_labels": ["mode"], "regex": "(.+)", "target_label": "m", "replacement": "x_$1"},
]
# Pages of unusual shape: the C pass either agrees or leaves them to Python.
ODD_PAGES = [
    b"a 1\nb 2\na 3\n",  # a family in two runs
    b"# HELP a x\na_total 1\n",  # HELP alone: a_total is its own family
    b"# TYPE a counter\na_total 1\n# TYPE b gauge\nb 1\na_created 2\n",
    b"a_total 1\n# TYPE a counter\na 2\n",  # TYPE after a sample of its suffix
    b"# TYPE a gauge\na 1\n# HELP a late\n",  # a comment after its samples
    b'\n\n# TYPE a gauge\n\n a 1\n\t\nb{x="1"} 2 1700000000000\n',
    b"  # indented comment\na 1\n",
    b"# random comment\n#TYPE a gauge\n# TYPE  a  gauge\na 1\n",
    b"# TYPE a gauge\n# HELP a h\n# HELP a again\na 1\n",
    b'a{x="1",} 1\na { x = "2" } 2\n',
    b"a 1\nb NaN\nc +Inf\nd -1e-3 -5\n",
    b"a 1\nbroken line\n",
    b"a 1e999\n",
    b'm{v="\\\\ \\" \\n"} 1\n',
]


def _both(
    monkeypatch: pytest.MonkeyPatch, page: bytes, job: Job, labels: dict[str, str]
) -> tuple[Rewritten, Rewritten]:
    """The steady state (second scrape of the same page) with the Python loop, and with C."""
    monkeypatch.setattr(rewrite, "NATIVE_REWRITE", None)
    cache = SeriesCache()
    rewrite_page(page, job, labels, cache)
    python = rewrite_page(page, job, labels, cache)
    monkeypatch.setattr(rewrite, "NATIVE_REWRITE", NATIVE)
    cache = SeriesCache()
    rewrite_page(page, job, labels, cache)
    native = rewrite_page(page, job, labels, cache)
    # The third scrape: the C pass takes the keys in the order it remembered.
    assert rewrite_page(page, job, labels, cache) == native
    return python, native


def test_c_and_python_agree_scrape_after_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    """Series come, go and move; the C pass's memory of the last page never misleads it."""
    job = replace(JOB, metric_relabel_configs=_rules(TYPICAL))
    lines = NODE_LIKE.split(b"\n")
    pages = [
        NODE_LIKE,
        b"\n".join(line for line in lines if b'cpu="3"' not in line),
        NODE_LIKE.replace(b'cpu="1"', b'cpu="9"'),
        NODE_LIKE,
        b"\n".join(lines[:40] + lines[80:] + lines[40:80]),
        NODE_LIKE.replace(b"} 0.5", b"} 7"),
        NODE_LIKE[: len(NODE_LIKE) // 2].rpartition(b"\n")[0] + b"\n",
        NODE_LIKE,
    ]
    results = {}
    for native in (None, NATIVE):
        monkeypatch.setattr(rewrite, "NATIVE_REWRITE", native)
        cache = SeriesCache()
        results[native] = [rewrite_page(page, job, LABELS, cache) for page in pages for _ in "12"]
    assert results[NATIVE] == results[None]


def test_the_c_pass_is_built() -> None:
    assert NATIVE is not None


def test_the_c_pass_takes_a_typical_node_page_alone() -> None:
    assert NATIVE is not None
    job = replace(JOB, metric_relabel_configs=_rules(TYPICAL))
    cache = SeriesCache()
    first = rewrite_page(NODE_LIKE, job, LABELS, cache)
    assert NATIVE(NODE_LIKE, cache.lines, [], []) == (first.body, first.samples_post)
    assert b"node_family_1_total" not in first.body and b'm="x_m0"' in first.body


@pytest.mark.parametrize("name", sorted(RULE_SETS))
@pytest.mark.parametrize(
    "page", [FRONT, BACK, EDGE, NODE_LIKE], ids=["front", "back", "edge", "node"]
)
def test_c_and_python_rewrite_every_rule_set_alike(
    monkeypatch: pytest.MonkeyPatch, name: str, page: bytes
) -> None:
    keys = RULE_SETS[name]
    job = replace(
        JOB,
        metric_relabel_configs=_rules(keys.get("metric_relabel_configs", [])),
        sample_limit=keys.get("sample_limit", 0),
        label_limit=keys.get("label_limit", 0),
        label_name_length_limit=keys.get("label_name_length_limit", 0),
        label_value_length_limit=keys.get("label_value_length_limit", 0),
    )
    python, native = _both(monkeypatch, page, job, LABELS)
    assert native == python


@pytest.mark.parametrize("page", ODD_PAGES)
def test_c_and_python_agree_on_odd_pages(monkeypatch: pytest.MonkeyPatch, page: bytes) -> None:
    job = replace(JOB, metric_relabel_configs=_rules(TYPICAL))
    python, native = _both(monkeypatch, page, job, LABELS)
    assert native == python


_LINES = st.sampled_from(
    [b"# TYPE a counter", b"# TYPE a_total gauge", b"# HELP a h", b"# TYPE b histogram",
     b"# HELP b x", b"# comment", b"", b"  ", b"a 1", b"a_total 2", b'a_total{mode="x"} 3',
     b"a_created 4", b'b_bucket{le="1"} 1', b"b_sum 2", b"b_count 3", b"b 4", b"c 5",
     b'c{cpu="1"} 6', b"c 7 1700000000000", b'go_x{mode="y"} 8', b"b_total 9"]
)  # fmt: skip


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_LINES, max_size=12))
def test_c_and_python_agree_on_random_pages(
    monkeypatch: pytest.MonkeyPatch, lines: list[bytes]
) -> None:
    page = b"\n".join(lines) + b"\n"
    rules: list[dict[str, Any]] = [
        {"source_labels": ["__name__"], "regex": "c|b_sum", "action": "drop"},
        {"source_labels": ["mode"], "target_label": "m", "replacement": "z"},
        {"regex": "cpu", "action": "labeldrop"},
    ]
    job = replace(JOB, metric_relabel_configs=_rules(rules))
    python, native = _both(monkeypatch, page, job, LABELS)
    assert native == python
