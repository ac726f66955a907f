"""The RPM: built, inspected, installed into a scratch root, run, verified."""

from __future__ import annotations

import re

import pytest
from packaging_run import Run, run_section

from prometheus_streams import __version__


@pytest.fixture(scope="module")
def rpm_run() -> Run:
    """One run of the rpm section (it builds the RPM twice: release 1 and 2)."""
    return run_section("rpm")


def test_rpm_section_passes(rpm_run: Run) -> None:
    assert rpm_run.returncode == 0, rpm_run.explain()
    assert "test-packaging: rpm OK" in rpm_run.lines(), rpm_run.explain()


def test_rpm_is_built_for_this_version(rpm_run: Run) -> None:
    built = [line for line in rpm_run.lines() if line.startswith("built dist/")]
    assert built, rpm_run.explain()
    name = rf"prometheus-streams-{re.escape(__version__)}-1\.\w+\.rpm"
    assert re.match(rf"built dist/{name} ", built[0]), built


def test_rpm_inspection_and_scratch_install_pass(rpm_run: Run) -> None:
    lines = rpm_run.lines()
    for step in (
        "== rpm: inspect",
        "== rpm: install into a scratch root",
        "== rpm: run the scratch root's venv",
    ):
        assert step in lines, rpm_run.explain()
    assert not any(line.startswith("FAIL:") for line in lines), rpm_run.explain()


def test_rpm_venv_holds_the_pinned_versions(rpm_run: Run) -> None:
    lines = rpm_run.lines()
    assert "== rpm: the venv holds exactly the versions of constraints.txt" in lines
    assert "all pinned" in lines, rpm_run.explain()


def test_both_units_verify_without_output(rpm_run: Run) -> None:
    lines = rpm_run.lines()
    assert "prometheus-streams-poller.service: verified" in lines, rpm_run.explain()
    assert "prometheus-streams-receiver.service: verified" in lines, rpm_run.explain()


def test_both_units_are_well_sandboxed(rpm_run: Run) -> None:
    exposures = re.findall(
        r"Overall exposure level for (prometheus-streams-\w+\.service): ([\d.]+)", rpm_run.output
    )
    assert {unit for unit, _ in exposures} == {
        "prometheus-streams-poller.service",
        "prometheus-streams-receiver.service",
    }, rpm_run.explain()
    assert all(float(score) <= 1.5 for _, score in exposures), exposures


def test_upgrade_keeps_an_edited_config(rpm_run: Run) -> None:
    assert "edited config kept" in rpm_run.lines(), rpm_run.explain()
