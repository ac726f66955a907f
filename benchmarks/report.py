"""The goals of issue 6 checked against the medians, and the table and JSON output."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from benchmarks.context import Context

SECTIONS = (
    ("baselines", "Raw-scrape baseline (the poller's ceiling)"),
    ("pushgateway", "Pushgateway limit: pushes/s by groups stored"),
    ("receiver", "Receiver drain vs direct push (each alone, every process on every CPU)"),
    ("receiver_pinned", "Receiver drain vs direct push, the Pushgateway on a CPU of its own"),
    ("hotpath", "Receiver per node page, in-process, no network (fastest repeat)"),
    ("pipeline", "Pipeline: poller + receiver running"),
    ("agent", "Prometheus agent mode, same targets and interval"),
    ("scale", "One poller, many node-sized targets"),
    ("recovery", "Recovery after a receiver outage"),
    ("vmagent", "Against vmagent (issue 16): same targets and interval, measured side by side"),
    (
        "rw_vmagent",
        "Remote write against vmagent (issue 16): each into its own VictoriaMetrics, side by side",
    ),
    ("relabel", "Poller with typical metric_relabel_configs against none (issue 17), side by side"),
    ("ha", "HA pollers (issue 19): failover after kill -9 of the leader, lease traffic"),
    ("topology", "3-node JetStream cluster (replicas 3) against one server, same machine"),
)


@dataclass
class Goal:
    """One goal of the issue: the measured value, the bound, met or not."""

    name: str
    value: float | None
    bound: str
    met: bool | None
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        """JSON form."""
        return {
            "goal": self.name,
            "value": self.value,
            "bound": self.bound,
            "met": self.met,
            "detail": self.detail,
        }


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _check(value: float | None, ok: bool) -> bool | None:
    return None if value is None or math.isnan(value) else ok


def goals(ctx: Context) -> list[Goal]:
    """Each goal evaluated on the medians of this run."""
    m = ctx.median
    out = []
    out.append(_drain_goal(ctx))
    cpu = _ratio(m("pipeline_poller_cpu_ms_per_1k_samples"), m("agent_cpu_ms_per_1k_samples"))
    out.append(
        Goal(
            "poller CPU/sample / agent CPU/sample",
            cpu,
            "<= 1.0",
            _check(cpu, (cpu or math.inf) <= 1.0),
        )
    )
    p = ctx.profile
    late, peak = m("scale_late_or_missed_pct"), m("scale_poller_peak_rss_mib")
    rate = m("scale_scrapes_per_s")
    expected = p.scale_targets / p.scale_interval
    kept = None
    if late is not None and peak is not None and rate is not None:
        kept = late < 1.0 and peak <= 250 and rate >= 0.99 * expected
    out.append(
        Goal(
            f"one poller, {p.scale_targets} targets every {p.scale_interval:g}s "
            f"({expected:.0f} scrapes/s): late or missed %",
            late,
            "< 1 % with peak RSS <= 250 MiB",
            kept,
        )
    )
    for q, bound in ((50, 50.0), (99, 500.0)):
        value = m(f"latency_p{q}_ms")
        out.append(
            Goal(
                f"scrape -> Pushgateway latency p{q} (ms)",
                value,
                f"<= {bound:g}",
                _check(value, (value or math.inf) <= bound),
            )
        )
    vm = m("vm_poller_ratio")
    out.append(
        Goal(
            "poller CPU/sample / vmagent CPU/sample (issue 16)",
            vm,
            "<= 1.0",
            _check(vm, (vm or math.inf) <= 1.0),
            f"runs {_spread(ctx, 'vm_poller_ratio')}" if vm is not None else "",
        )
    )
    for key, name, bound in (
        ("rw_receiver_ratio", "receiver CPU/sample written / vmagent's (issue 16)", 1.0),
        ("rw_ours_ratio", "poller + receiver CPU/sample / vmagent's (issue 16)", 1.5),
    ):
        value = m(key)
        out.append(
            Goal(
                name,
                value,
                f"<= {bound:g}",
                _check(value, (value or math.inf) <= bound),
                f"runs {_spread(ctx, key)}" if value is not None else "",
            )
        )
    relabel = m("relabel_ratio")
    out.append(
        Goal(
            "poller CPU/sample, typical metric_relabel_configs / none (issue 17)",
            relabel,
            "<= 1.25",
            _check(relabel, (relabel or math.inf) <= 1.25),
            f"runs {_spread(ctx, 'relabel_ratio')}" if relabel is not None else "",
        )
    )
    rec = m("recovery_ratio")
    out.append(
        Goal(
            "recovery / one round of direct pushes",
            rec,
            "<= 2",
            _check(rec, (rec or math.inf) <= 2.0),
        )
    )
    share = m("ha_lease_share_pct")
    out.append(
        Goal(
            f"HA lease traffic / data bytes, % ({p.ha_targets} node targets every "
            f"{p.ha_interval:g}s, failover_timeout {p.ha_failover:g}s)",
            share,
            "<= 1",
            _check(share, (share or math.inf) <= 1.0),
        )
    )
    # The worst of the kills, not the median: every failover must be in time.
    kills = ctx.figures.get("ha_failover_from_kill_s")
    worst = max(kills.values) if kills is not None and kills.values else None
    bound = p.ha_failover + p.ha_interval
    out.append(
        Goal(
            "HA: kill -9 of the leader to the standby's first publish, worst of the kills (s)",
            worst,
            f"<= failover_timeout + one interval ({bound:g})",
            _check(worst, (worst or math.inf) <= bound),
        )
    )
    return out


def _drain_goal(ctx: Context) -> Goal:
    """The receiver's drain against the faster direct client, judged with the Pushgateway apart.

    On CPUs shared with the Pushgateway every contender's own CPU is taken
    from the Pushgateway, so there the ratio also prices the work the receiver
    must do besides pushing; with the Pushgateway on a CPU of its own (as on a
    machine of its own) it shows whether the receiver keeps the Pushgateway as
    busy as a client that only pushes. Both are shown; the second is judged
    when it was measured.
    """
    shared, pinned = ctx.median("drain_ratio"), ctx.median("pinned_drain_ratio")
    shared_text = _spread(ctx, "drain_ratio")
    if pinned is None:
        return Goal(
            "receiver drain / faster direct push (every process on every CPU)",
            shared,
            ">= 0.9",
            _check(shared, (shared or 0) >= 0.9),
            f"runs {shared_text}" if shared is not None else "",
        )
    return Goal(
        "receiver drain / faster direct push, the Pushgateway on a CPU of its own",
        pinned,
        ">= 0.9",
        _check(pinned, pinned >= 0.9),
        f"runs {_spread(ctx, 'pinned_drain_ratio')}; on CPUs shared with the Pushgateway "
        f"{_fmt(shared)} ({shared_text}), against the aiohttp client alone "
        f"{_fmt(ctx.median('drain_ratio_aiohttp'))}",
    )


def _spread(ctx: Context, key: str) -> str:
    figure = ctx.figures.get(key)
    if figure is None:
        return "-"
    s = figure.summary()
    return f"{_fmt(s['min'])} - {_fmt(s['max'])}"


def _fmt(value: object) -> str:
    if not isinstance(value, int | float):
        return "-"
    v = float(value)
    if math.isnan(v):
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 0.1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def table(ctx: Context, header: list[str]) -> str:
    """The human-readable report."""
    lines = [*header, ""]
    for section, title in SECTIONS:
        figures = [f for f in ctx.figures.values() if f.section == section]
        if not figures:
            continue
        lines.append(f"== {title}")
        width = max(len(f.label) for f in figures)
        unit_width = max(len(f.unit) for f in figures)
        for figure in figures:
            s = figure.summary()
            spread = f"{_fmt(s['min'])} - {_fmt(s['max'])}"
            lines.append(
                f"  {figure.label:<{width}}  {_fmt(s['median']):>10} {figure.unit:<{unit_width}}"
                f"  ({spread}, {s['runs']} runs)"
            )
        lines.append("")
    lines.append("== Goals (issue 6), on the medians")
    for goal in goals(ctx):
        verdict = {True: "met", False: "NOT met", None: "not measured"}[goal.met]
        detail = f" [{goal.detail}]" if goal.detail else ""
        lines.append(f"  {goal.name}: {_fmt(goal.value)} (goal {goal.bound}): {verdict}{detail}")
    for note in ctx.notes:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def as_json(ctx: Context, meta: dict[str, object]) -> str:
    """The machine-readable report."""
    figures = {
        key: {
            "label": f.label,
            "unit": f.unit,
            "section": f.section,
            **f.summary(),
            "values": [v if not math.isnan(v) else None for v in f.values],
        }
        for key, f in ctx.figures.items()
    }
    document = {
        **meta,
        "figures": figures,
        "goals": [g.as_dict() for g in goals(ctx)],
        "notes": ctx.notes,
    }
    return json.dumps(document, indent=2, allow_nan=False, default=str)
