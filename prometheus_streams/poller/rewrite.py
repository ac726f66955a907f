"""A page through a job's metric_relabel_configs and limits, as Prometheus 2.42 ingests it.

Only for jobs that have them: the others keep forwarding the page's bytes.
The outcome of the rules for a series depends on its key and the target's
labels alone, so each target keeps the outcomes of its last scrape. In the
steady state (every key known) the C pass rewrite_known does the page in
one go; this module's loop is the reference, the fallback without the C
pass, and what handles new series, renamed families and limit failures.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import repeat

from prometheus_streams.config import Job
from prometheus_streams.exposition import escape_value
from prometheus_streams.receiver.remote_write.text import ParseError, parse_page, series_labels
from prometheus_streams.relabel import relabel

# A comment line that names a family: `# TYPE name ...` or `# HELP name ...`.
_COMMENT = re.compile(rb"^(#[ \t]+(?:TYPE|HELP)[ \t]+([a-zA-Z_:][a-zA-Z0-9_:]*)[^\n]*)", re.M)
_TYPE = re.compile(rb"^#[ \t]+TYPE[ \t]+([a-zA-Z_:][a-zA-Z0-9_:]*)", re.M)
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created", "_info")

# A series' outcome: its rendered key (with family), None when dropped, or a limit it broke.
_Outcome = tuple[bytes, bytes] | None | str
_MISSING: _Outcome = ""  # never an outcome: a limit problem is never empty
_NAME = re.compile(rb"[a-zA-Z_:][a-zA-Z0-9_:]*")


_Native = Callable[
    [bytes, dict[bytes, bytes | None], list[bytes], list[bytes | None]], tuple[bytes, int] | None
]


def _native() -> _Native | None:
    try:
        from prometheus_streams._speedups import rewrite_known
    except ImportError:
        return None
    return rewrite_known


# The C pass (_speedups.c) is optional at build time; None: this module's loop alone.
NATIVE_REWRITE = _native()


@dataclass
class SeriesCache:
    """One target's outcomes by series key, from its last scrape (for reuse and series_added)."""

    rules: object = None
    outcomes: dict[bytes, _Outcome] = field(default_factory=dict)
    # For the C pass: key -> None (dropped), b"" (as written) or the key written
    # instead; only outcomes that keep the series in its family and within limits.
    lines: dict[bytes, bytes | None] = field(default_factory=dict)
    # The C pass's memory of the last page: its keys in order and their `lines` entry.
    order: tuple[list[bytes], list[bytes | None]] = field(default_factory=lambda: ([], []))


def _name(key: bytes) -> bytes:
    found = _NAME.match(key)
    return found.group() if found else b""


def _lines(outcomes: dict[bytes, _Outcome]) -> dict[bytes, bytes | None]:
    lines: dict[bytes, bytes | None] = {}
    for key, outcome in outcomes.items():
        if outcome is None:
            lines[key] = None
        elif not isinstance(outcome, str):
            rendered = outcome[0]
            if not rendered or _name(rendered) == _name(key):
                lines[key] = rendered
    return lines


@dataclass(frozen=True)
class Rewritten:
    """The rewritten page, or the limit it broke (`error`, `detail`), and its counts."""

    body: bytes
    samples_post: int
    series_added: int
    error: str = ""
    detail: str = ""
    # Samples read before a label limit stopped the page (Prometheus reports that
    # many as scrape_samples_scraped); 0: the whole page was read.
    scraped: int = 0


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
    # Lengths in bytes of UTF-8, as Go's len() counts them.
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
        if job.label_value_length_limit and len(value.encode()) > job.label_value_length_limit:
            return (
                f"label_value_length_limit exceeded (metric: {labels.get('__name__', '')}, "
                f"label name: {name}, value: {value!r}, limit: {job.label_value_length_limit})"
            )
    return None


def with_target_labels(
    own: list[tuple[str, str]], extra: dict[str, str], honor: bool = False
) -> dict[str, str]:
    """A series' labels with its target's, as Prometheus 2.42 merges them.

    Without `honor` (honor_labels: false) the target's label wins; the page's
    of that name becomes `exported_<name>` (prefixed again while that is
    taken), shortest names first, as in Go. With it the page's label wins
    and the target's of that name is not added.
    """
    if honor:
        page = dict(own)
        return {**{k: v for k, v in extra.items() if k not in page}, **page}
    labels = dict(extra)
    clashes = []
    for name, value in own:
        if name in extra:
            clashes.append((name, value))
        else:
            labels[name] = value
    if clashes:
        taken = {name for name, _ in own} | set(extra)
        for name, value in sorted(clashes, key=lambda clash: len(clash[0])):
            new = "exported_" + name
            while new in taken:
                new = "exported_" + new
            taken.add(new)
            labels[new] = value
    return labels


def _outcome(key: bytes, job: Job, extra: dict[str, str], typed: set[bytes]) -> _Outcome:
    # The target's labels take part in the rules and limits, as in Prometheus,
    # but travel beside the page: only what differs from them is written (a
    # page's label named like one of them is written as its exported_ name).
    labels = with_target_labels(series_labels(key), extra, job.honor_labels)
    result = relabel(labels, job.metric_relabel_configs)
    if result is None or not result.get("__name__"):
        return None
    problem = _limit_problem(job, result)
    if problem is not None:
        return problem
    written = {k: v for k, v in result.items() if k not in extra or v != extra[k]}
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
    rules = (
        job.metric_relabel_configs,
        job.label_limit,
        job.label_name_length_limit,
        job.label_value_length_limit,
        tuple(sorted(target_labels.items())),
        job.honor_labels,
    )
    if cache.rules != rules:
        cache.rules, cache.outcomes, cache.lines, cache.order = rules, {}, {}, ([], [])
    elif NATIVE_REWRITE is not None and honor_timestamps and cache.lines:
        done = NATIVE_REWRITE(body, cache.lines, *cache.order)
        if done is not None:
            return _limited(job, *done, added=0)
    try:
        samples = parse_page(body)
    except ParseError as exc:
        return Rewritten(b"", 0, 0, "invalid_exposition", str(exc))
    known = cache.outcomes
    typed: set[bytes] | None = None
    families: dict[bytes, list[bytes]] = {}
    # A sample's own line, when lines and samples align (no blank-only line):
    # its value and timestamp are then copied as the target wrote them.
    lines = [line for line in body.split(b"\n") if line and line[0] != 35]  # 35: "#"
    own_lines: Iterable[bytes | None] = lines if len(lines) == len(samples) else repeat(None)
    added = 0
    for index, ((key, value, stamp), line) in enumerate(zip(samples, own_lines, strict=False)):
        outcome = known.get(key, _MISSING)
        if outcome is _MISSING:
            if typed is None:
                typed = {m.group(1) for m in _TYPE.finditer(body)}
            known[key] = outcome = _outcome(key, job, target_labels, typed)
            added += 1
        if outcome is None:
            continue
        if isinstance(outcome, str):
            # As Prometheus: the scrape stops at this sample, which counts as read.
            kept = sum(len(lines) for lines in families.values())
            return Rewritten(b"", kept, 0, "label_limit", outcome, scraped=index + 1)
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
        cache.lines, cache.order = _lines(cache.outcomes), ([], [])
    kept = sum(len(lines) for lines in families.values())
    if job.sample_limit and kept > job.sample_limit:
        return _limited(job, b"", kept, added)
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


def _limited(job: Job, body: bytes, kept: int, added: int) -> Rewritten:
    """The rewritten page, or the sample_limit failure when it keeps too many samples."""
    if job.sample_limit and kept > job.sample_limit:
        return Rewritten(
            b"", kept, added, "sample_limit", f"sample_limit exceeded ({kept} > {job.sample_limit})"
        )
    return Rewritten(body, kept, added)
