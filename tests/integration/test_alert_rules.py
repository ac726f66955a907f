"""The shipped alerting rules are valid and fire as documented (promtool)."""

from __future__ import annotations

import subprocess
from pathlib import Path

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
    assert "SUCCESS: 6 rules found" in result.stdout


def test_alert_rules_fire_on_down_target_silent_poller_and_open_breaker() -> None:
    result = subprocess.run(
        [find_binary("promtool"), "test", "rules", "alerts.test.yaml"],
        cwd=DOCS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
