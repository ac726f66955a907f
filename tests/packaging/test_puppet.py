"""The Puppet module: validated, linted, specified, and applied for real."""

from __future__ import annotations

import re

import pytest
from packaging_run import Run, run_section


@pytest.fixture(scope="module")
def puppet_run() -> Run:
    """One run of the puppet section."""
    return run_section("puppet")


def test_puppet_section_passes(puppet_run: Run) -> None:
    assert puppet_run.returncode == 0, puppet_run.explain()
    assert "test-packaging: puppet OK" in puppet_run.lines(), puppet_run.explain()


def test_validate_lint_and_metadata_pass(puppet_run: Run) -> None:
    lines = puppet_run.lines()
    for step in (
        "== puppet: parser validate",
        "== puppet: puppet-lint",
        "== puppet: metadata-json-lint",
        "== puppet: rspec-puppet",
    ):
        assert step in lines, puppet_run.explain()
    assert not any(line.startswith("FAIL:") for line in lines), puppet_run.explain()


def test_rspec_examples_all_pass(puppet_run: Run) -> None:
    summary = re.search(r"^(\d+) examples, (\d+) failures", puppet_run.output, re.MULTILINE)
    assert summary is not None, puppet_run.explain()
    examples, failures = int(summary.group(1)), int(summary.group(2))
    assert examples >= 30
    assert failures == 0, puppet_run.explain()


def test_apply_changes_once_then_nothing(puppet_run: Run) -> None:
    applies = puppet_run.output.split("== puppet: puppet apply, twice", 1)[-1]
    applies = applies.split("== puppet: check-config", 1)[0]
    changes = re.findall(r"File\[[^\]]*prometheus-streams\.yaml\]/ensure: defined content", applies)
    assert len(changes) == 1, puppet_run.explain()
    assert applies.count("Applied catalog") == 2, puppet_run.explain()


def test_rendered_config_passes_check_config(puppet_run: Run) -> None:
    assert "rendered config fit for poller and receiver" in puppet_run.lines(), puppet_run.explain()
