"""A page through a job's metric_relabel_configs and limits, as Prometheus 2.42 ingests it.

Only for jobs that have them: the others keep forwarding the page's bytes.
The outcome of the rules for a series depends on its key and the target's
labels alone, so each target keeps the rendered lines of its last scrape:
in the steady state a sample costs a parse (C) and a dict lookup.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat

from prometheus_streams.config import Job
from prometheus_streams.receiver.remote_write.text import ParseError, parse_page, series_labels
from prometheus_streams.relabel import relabel

# A comment line that names a family: `# TYPE name ...` or `# HELP name ...`.
_COMMENT = re.compile(rb"^(#[ \t]+(?:TYPE|HELP)[ \t]+([a-zA-Z_:][a-zA-Z0-9_:]*)[^\n]*)", re.M)
_TYPE = re.compile(rb"^#[ \t]+TYPE[ \t]+([a-zA-Z_:][a-zA-Z0-9_:]*)", re.M)
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created", "_info")
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})

# A series' outcome: its rendered key (with family), None when dropped, or a limit it broke.
_Outcome = tuple[bytes, bytes] | None | str
_MISSING: _Outcome = ""  # never an outcome: a limit problem is never empty


@dataclass
class SeriesCache:
    """One target's outcomes by series key, from its last scrape (for reuse and series_added)."""

    rules: object = None
    outcomes: dict[bytes, _Outcome] = field(default_factory=dict)


@dataclass(frozen=True)
class Rewritten:
    """The rewritten page, or the limit it broke (`error`, `detail`), and its counts."""

    body: bytes
    samples_post: int
    series_added: int
    error: str = ""
    detail: str = ""


def escape_value(value: str) -> str:
    """A label value escaped for the text format."""
    return value.translate(_ESCAPES)


def render_key(labels: dict[str, str]) -> bytes:
    """A series key in the text format: `name{a="v",...}` (empty values left out)."""
    name = labels.get("__name__", "")
    pairs = ",".join(f'{k}="{escape_value(v)}"' for k, v in labels.items() if k != "__name__" and v)
    return f"{name}{{{pairs}}}".encode() if pairs else name.encode()


def format_value(value: float) -> bytes:
    """A sample value as the text format spells it; exact (repr round-trips)."""
    if math.isnan(value):
        return b"NaN"
    if math.isinf(value):
        return b"+Inf" if value > 0 else b"-Inf"
    return repr(value).encode()


def _family(name: bytes, typed: set[bytes]) -> bytes:
    if name in typed:
        return name
    for suffix in _SUFFIXES:
        if name.endswith(suffix.encode()) and name[: -len(suffix)] in typed:
            return name[: -len(suffix)]
    return name


def _limit_problem(job: Job, labels: dict[str, str]) -> str | None:
    present = [(k, v) for k, v in labels.items() if v]
    if job.label_limit and len(present) > job.label_limit:
        return (
            f"label_limit exceeded (metric: {labels.get('__name__', '')}, "
            f"number of labels: {len(present)}, limit: {job.label_limit})"
        )
    for name, value in present:
        if job.label_name_length_limit and len(name) > job.label_name_length_limit:
            return (
                f"label_name_length_limit exceeded (metric: {labels.get('__name__', '')}, "
                f"label name: {name}, limit: {job.label_name_length_limit})"
            )
        if job.label_value_length_limit and len(value) > job.label_value_length_limit:
            return (
                f"label_value_length_limit exceeded (metric: {labels.get('__name__', '')}, "
                f"label name: {name}, value: {value!r}, limit: {job.label_value_length_limit})"
            )
    return None


def _outcome(key: bytes, job: Job, extra: dict[str, str], typed: set[bytes]) -> _Outcome:
    own = dict(series_labels(key))
    # The target's labels take part in the rules and limits, as in Prometheus
    # (the page's own label wins here: the receiver settles clashes later),
    # but travel beside the page, so only what the rules change is written.
    labels = {**extra, **own}
    result = relabel(labels, job.metric_relabel_configs)
    if result is None or not result.get("__name__"):
        return None
    problem = _limit_problem(job, result)
    if problem is not None:
        return problem
    written = {k: v for k, v in result.items() if k in own or k not in extra or v != extra[k]}
    rendered = render_key(written)
    family = _family(rendered.partition(b"{")[0], typed)
    return (b"" if rendered == key else rendered), family


def rewrite_page(
    body: bytes,
    job: Job,
    target_labels: dict[str, str],
    cache: SeriesCache,
    honor_timestamps: bool = True,
) -> Rewritten:
    """`body` after the job's metric_relabel_configs, checked against its limits."""
    try:
        samples = parse_page(body)
    except ParseError as exc:
        return Rewritten(b"", 0, 0, "invalid_exposition", str(exc))
    rules = (
        job.metric_relabel_configs,
        job.label_limit,
        job.label_name_length_limit,
        job.label_value_length_limit,
        tuple(sorted(target_labels.items())),
    )
    if cache.rules != rules:
        cache.rules, cache.outcomes = rules, {}
    known = cache.outcomes
    typed: set[bytes] | None = None
    families: dict[bytes, list[bytes]] = {}
    # A sample's own line, when lines and samples align (no blank-only line):
    # its value and timestamp are then copied as the target wrote them.
    lines = [line for line in body.split(b"\n") if line and line[0] != 35]  # 35: "#"
    own_lines: Iterable[bytes | None] = lines if len(lines) == len(samples) else repeat(None)
    added = 0
    for (key, value, stamp), line in zip(samples, own_lines, strict=False):
        outcome = known.get(key, _MISSING)
        if outcome is _MISSING:
            if typed is None:
                typed = {m.group(1) for m in _TYPE.finditer(body)}
            known[key] = outcome = _outcome(key, job, target_labels, typed)
            added += 1
        if outcome is None:
            continue
        if isinstance(outcome, str):
            return Rewritten(b"", 0, 0, "label_limit", outcome)
        rendered, family = outcome
        if line is not None and (stamp is None or honor_timestamps) and line.startswith(key):
            # An empty rendering: the rules left the series as written.
            text = rendered + line[len(key) :] if rendered else line
        else:
            text = (rendered or key) + b" " + format_value(value)
            if stamp is not None and honor_timestamps:
                text += b" " + str(stamp).encode()
        kept_lines = families.get(family)
        if kept_lines is None:
            families[family] = kept_lines = []
        kept_lines.append(text)
    if added:
        # Series gone from the page leave the cache when new ones come; in a
        # steady state the cache is left as it is (one lookup per sample).
        cache.outcomes = {key: known[key] for key, _, _ in samples}
    kept = sum(len(lines) for lines in families.values())
    if job.sample_limit and kept > job.sample_limit:
        return Rewritten(
            b"", kept, added, "sample_limit", f"sample_limit exceeded ({kept} > {job.sample_limit})"
        )
    comments: dict[bytes, list[bytes]] = {}
    for line, name in _COMMENT.findall(body):
        if name in families:
            comments.setdefault(name, []).append(line)
    out: list[bytes] = []
    for family, lines in families.items():
        out += comments.get(family, ())
        out += lines
    out.append(b"")
    return Rewritten(b"\n".join(out) if kept else b"", kept, added)
