"""The shipped alerting rules are valid and fire as documented (promtool)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from servers import find_binary

DOCS = Path(__file__).parent.parent.parent / "docs"


def test_alert_rules_pass_promtool_check() -> None:
    result = subprocess.run(
        [find_binary("promtool"), "check", "rules", "alerts.yaml"],
        cwd=DOCS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    shipped = yaml.safe_load((DOCS / "alerts.yaml").read_text(encoding="utf-8"))
    rules = sum(len(group["rules"]) for group in shipped["groups"])
    assert rules >= 7, "a rule went missing"
    assert f"SUCCESS: {rules} rules found" in result.stdout, result.stdout


def test_alert_rules_fire_on_down_target_silent_poller_open_breaker_and_nats_down() -> None:
    result = subprocess.run(
        [find_binary("promtool"), "test", "rules", "alerts.test.yaml"],
        cwd=DOCS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
