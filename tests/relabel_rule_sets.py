"""Rule sets given both to Prometheus 2.42 and to the poller, one job each, same targets.

Every relabel action in relabel_configs and in metric_relabel_configs, and
every limit, each limit at its edge (the value that passes, the one that
fails). Three targets serve the pages below with the static labels below;
a rule set scrapes `front` and `back` unless it names its `targets`.
"""

from __future__ import annotations

from typing import Any

FRONT = (
    b"# HELP app_requests_total Requests.\n"
    b"# TYPE app_requests_total counter\n"
    b'app_requests_total{code="200",method="GET",path="/a"} 5\n'
    b'app_requests_total{code="503",method="post",path="/b"} 1\n'
    b"# TYPE app_temperature gauge\n"
    b'app_temperature{room="Stra\xc3\x9fe"} 21.5\n'
    b'app_temperature{room="a \\"b\\" \\\\ c"} 19\n'
    b"# TYPE app_latency_seconds histogram\n"
    b'app_latency_seconds_bucket{le="0.1"} 3\n'
    b'app_latency_seconds_bucket{le="+Inf"} 4\n'
    b"app_latency_seconds_sum 0.5\n"
    b"app_latency_seconds_count 4\n"
    b"# TYPE go_goroutines gauge\n"
    b"go_goroutines 12\n"
    b"# TYPE go_gc_duration_seconds summary\n"
    b'go_gc_duration_seconds{quantile="0.5"} 0.001\n'
    b"go_gc_duration_seconds_sum 0.1\n"
    b"go_gc_duration_seconds_count 3\n"
    b"# TYPE process_open_fds gauge\n"
    b"process_open_fds 7\n"
)
FRONT_SAMPLES = 14
# A value of 31 characters and 38 bytes (Go's len counts bytes; a metric name is a
# value too, the longest 28), and a 29-character label name.
LONG_VALUE = "\u00c4\u00d6\u00dc\u00e4\u00f6\u00fc\u00df-a-rather-long-user-name"
LONG_NAME = "a_rather_long_label_name_here"
BACK = (
    b"# TYPE app_sessions gauge\n"
    + f'app_sessions{{user="{LONG_VALUE}",{LONG_NAME}="x"}} 3\n'.encode()
    + b'app_sessions{user="bob"} 4\n'
    b"# TYPE app_requests_total counter\n"
    b'app_requests_total{code="200",method="GET"} 9\n'
    + b"".join(b'app_extra{n="%d"} %d\n' % (n, n) for n in range(12))
    + b"# TYPE go_goroutines gauge\n"
    b"go_goroutines 30\n"
    b"# TYPE process_open_fds gauge\n"
    b"process_open_fds 9\n"
)
BACK_SAMPLES = 17
# Labels of the page named like the target's (honor_labels: false renames them).
EDGE = (
    b"# TYPE edge_info gauge\n"
    b'edge_info{tier="page",instance="inner",job="inner-job",version="1.0"} 1\n'
    b'edge_requests_total{exported_tier="x",tier="y",code="200"} 2\n'
    b"edge_plain 3\n"
)
# Labels of the page with the very values of its target's (job h_self): with
# honor_labels shown once, as the page has them, through the Pushgateway too.
SELF = b'self_info{job="h_self",tier="self",dc="d"} 1\nself_plain 2\n'
PAGES = {"front": FRONT, "back": BACK, "edge": EDGE, "self": SELF}
TARGET_LABELS = {
    "front": {"tier": "front", "dc": "a", "owner": "Team-A"},
    "back": {"tier": "back", "dc": "b", "owner": "TEAM-b"},
    "edge": {"tier": "edge", "dc": "c", "owner": "x"},
    "self": {"tier": "self", "dc": "d"},
}
# The most labels a front series has (3 + __name__, job, instance, tier, dc, owner); back: 8.
FRONT_MOST_LABELS = 9

_DROP_FAMILIES = {"source_labels": ["__name__"], "regex": "go_.*|process_.*", "action": "drop"}

# Job name -> its keys (Prometheus' spelling); `targets`: which of PAGES it scrapes.
RULE_SETS: dict[str, dict[str, Any]] = {
    # ---- relabel_configs (targets) ----
    "t_replace": {"relabel_configs": [
        {"source_labels": ["dc"], "target_label": "site", "replacement": "site-$1"},
        {"source_labels": ["__address__"], "regex": "(.*):(.*)", "target_label": "__tmp_port",
         "replacement": "$2"},
        {"source_labels": ["tier", "__tmp_port"], "separator": "-", "target_label": "slot"},
        {"source_labels": ["tier"], "regex": "nomatch", "target_label": "tier",
         "replacement": "changed"},
        {"source_labels": ["owner"], "target_label": "owner", "replacement": ""},
    ]},
    "t_instance": {"relabel_configs": [
        {"source_labels": ["dc"], "target_label": "instance", "replacement": "node-$1"},
    ]},
    "t_keep": {"relabel_configs": [
        {"source_labels": ["tier"], "regex": "front", "action": "keep"},
    ]},
    "t_drop": {"relabel_configs": [
        {"source_labels": ["tier", "dc"], "regex": "back;.*", "action": "drop"},
    ]},
    "t_drop_all": {"relabel_configs": [{"regex": ".*", "action": "drop"}]},
    "t_keepequal": {"relabel_configs": [
        {"target_label": "__tmp_want", "replacement": "front"},
        {"source_labels": ["tier"], "target_label": "__tmp_want", "action": "keepequal"},
    ]},
    "t_dropequal": {"relabel_configs": [
        {"target_label": "__tmp_want", "replacement": "front"},
        {"source_labels": ["tier"], "target_label": "__tmp_want", "action": "dropequal"},
    ]},
    "t_hashmod": {"relabel_configs": [
        {"source_labels": ["tier", "dc"], "modulus": 7, "target_label": "shard",
         "action": "hashmod"},
    ]},
    "t_labelmap": {"relabel_configs": [
        {"regex": "(tier|dc)", "replacement": "copy_$1", "action": "labelmap"},
    ]},
    "t_labeldrop": {"relabel_configs": [{"regex": "dc|own.*", "action": "labeldrop"}]},
    "t_labelkeep": {"relabel_configs": [{"regex": "__.*|tier|job", "action": "labelkeep"}]},
    "t_lowercase": {"relabel_configs": [
        {"source_labels": ["owner"], "target_label": "owner_lc", "action": "lowercase"},
    ]},
    "t_uppercase": {"relabel_configs": [
        {"source_labels": ["tier", "dc"], "target_label": "tier", "action": "uppercase"},
    ]},
    # ---- metric_relabel_configs (samples) ----
    "m_replace": {"metric_relabel_configs": [
        {"source_labels": ["code"], "regex": "(\\d)\\d\\d", "target_label": "class",
         "replacement": "${1}xx"},
        {"source_labels": ["method", "tier"], "separator": "@", "target_label": "where"},
        {"source_labels": ["room"], "regex": "(.*)e", "target_label": "room",
         "replacement": "$1E"},
    ]},
    "m_rename": {"metric_relabel_configs": [
        {"source_labels": ["__name__"], "regex": "app_temperature", "target_label": "__name__",
         "replacement": "app_temperature_celsius"},
    ]},
    "m_target_label": {"metric_relabel_configs": [
        {"source_labels": ["__name__"], "regex": "app_requests_total", "target_label": "tier",
         "replacement": "requests"},
    ]},
    "m_keep": {"metric_relabel_configs": [
        {"source_labels": ["__name__"], "regex": "app_(requests|sessions).*", "action": "keep"},
    ]},
    "m_drop": {"metric_relabel_configs": [_DROP_FAMILIES]},
    "m_typical": {"metric_relabel_configs": [
        {"source_labels": ["__name__"], "regex": "go_goroutines|process_.*|go_gc_.*",
         "action": "drop"},
        {"regex": "path", "action": "labeldrop"},
        {"source_labels": ["code"], "regex": "(\\d)\\d\\d", "target_label": "code_class",
         "replacement": "${1}xx"},
    ]},
    "m_keepequal": {"metric_relabel_configs": [
        {"target_label": "want", "replacement": "200"},
        {"source_labels": ["code"], "target_label": "want", "action": "keepequal"},
        {"regex": "want", "action": "labeldrop"},
    ]},
    "m_dropequal": {"metric_relabel_configs": [
        {"target_label": "unwanted", "replacement": "503"},
        {"source_labels": ["code"], "target_label": "unwanted", "action": "dropequal"},
        {"regex": "unwanted", "action": "labeldrop"},
    ]},
    "m_hashmod": {"metric_relabel_configs": [
        {"source_labels": ["__name__", "n"], "modulus": 5, "target_label": "bucket",
         "action": "hashmod"},
        {"source_labels": ["bucket"], "regex": "[0-2]", "action": "keep"},
    ]},
    "m_labelmap": {"metric_relabel_configs": [
        {"regex": "(code|method|tier)", "replacement": "http_$1", "action": "labelmap"},
    ]},
    "m_labeldrop": {"metric_relabel_configs": [{"regex": "path|method", "action": "labeldrop"}]},
    "m_labelkeep": {"metric_relabel_configs": [
        {"regex": "__name__|job|instance|tier|dc|owner|code|le|quantile|n|room|user",
         "action": "labelkeep"},
    ]},
    "m_lowercase": {"metric_relabel_configs": [
        {"source_labels": ["method"], "target_label": "method", "action": "lowercase"},
        {"source_labels": ["owner"], "target_label": "owner_lc", "action": "lowercase"},
    ]},
    "m_uppercase": {"metric_relabel_configs": [
        {"source_labels": ["method"], "target_label": "method_uc", "action": "uppercase"},
        {"source_labels": ["room"], "target_label": "room", "action": "uppercase"},
    ]},
    "m_both": {
        "relabel_configs": [{"source_labels": ["tier"], "target_label": "role"}],
        "metric_relabel_configs": [
            {"source_labels": ["role", "__name__"], "regex": "back;app_extra", "action": "drop"},
        ],
    },
    "m_clash": {"targets": ["edge", "front"], "metric_relabel_configs": [
        {"source_labels": ["tier"], "regex": "edge", "target_label": "seen_tier",
         "replacement": "target"},
        {"source_labels": ["exported_tier"], "target_label": "page_tier"},
    ]},
    # ---- honor_labels: the page's job, instance and target-named labels ----
    "h_default": {"targets": ["edge"]},  # false: renamed exported_*, the page forwarded as is
    "h_honor": {"targets": ["edge", "front"], "honor_labels": True},
    "h_self": {"targets": ["self"], "honor_labels": True},
    "h_self_default": {"targets": ["self"]},
    "h_honor_rules": {"targets": ["edge", "front"], "honor_labels": True,
                      "metric_relabel_configs": [
        {"source_labels": ["tier"], "target_label": "seen_tier"},
    ]},
    # ---- limits ----
    "l_sample_exact": {"sample_limit": FRONT_SAMPLES},  # front at it, back over
    "l_sample_after": {"sample_limit": 5, "metric_relabel_configs": [
        {"source_labels": ["__name__"], "regex": "app_extra|app_temperature|app_latency.*|go_.*",
         "action": "drop"},
    ]},
    "l_labels_over": {"label_limit": FRONT_MOST_LABELS - 1},
    "l_labels_exact": {"label_limit": FRONT_MOST_LABELS},
    "l_labels_after": {"label_limit": FRONT_MOST_LABELS - 1, "metric_relabel_configs": [
        {"regex": "path", "action": "labeldrop"},
    ]},
    "l_name_len_over": {"label_name_length_limit": len(LONG_NAME) - 1},
    "l_name_len_exact": {"label_name_length_limit": len(LONG_NAME)},
    "l_value_len_chars": {"label_value_length_limit": len(LONG_VALUE) + 3},
    "l_value_len_bytes": {"label_value_length_limit": len(LONG_VALUE.encode())},
    "l_target_over": {"target_limit": 1},
    "l_target_exact": {"target_limit": 2},
    "l_target_after": {"target_limit": 1, "relabel_configs": [
        {"source_labels": ["tier"], "regex": "front", "action": "keep"},
    ]},
    "l_body_exact": {"body_size_limit": f"{len(FRONT)}B"},
    "l_body_plus_1": {"body_size_limit": f"{len(FRONT) + 1}B"},
}  # fmt: skip

# (path, job) -> why the centre cannot show what Prometheus ingested; each must still differ.
KNOWN_DIFFERENCES = {
    # A rule that sets a target label per series: a Pushgateway group holds one
    # value of each grouping label, so the rule's is shown as exported_tier.
    # (Remote write keeps the rule's value: the poller sends a page it rewrote
    # with the honor header, its clashes being resolved already.)
    ("Pushgateway", "m_target_label"): "a target label set by metric_relabel_configs",
    # Rules that keep a histogram's or summary's _sum or _count but not both:
    # the Pushgateway shows every metric of such a family with both (0 for the other).
    # Not fixable in the poller: sent untyped (TYPE untyped or no TYPE), the lines
    # collide with the family as another group has it typed, and the Pushgateway
    # refuses the whole push (400, "collides with previously collected summary").
    ("Pushgateway", "m_hashmod"): "a summary or histogram split by the rules",
    # honor_labels: true and a page whose job, instance or tier differs from the
    # target's: a Pushgateway group holds one value of each grouping label, so
    # the page's is shown as exported_<name> (its series of job="inner-job" too).
    ("Pushgateway", "h_honor"): "a page's job, instance or tier other than the group's",
    ("Pushgateway", "h_honor_rules"): "a page's job, instance or tier other than the group's",
    ("Pushgateway", "inner-job"): "a page's job, instance or tier other than the group's",
}
