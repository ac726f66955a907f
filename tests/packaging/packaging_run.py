"""Run scripts/test-packaging.sh once per section and keep what it printed."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "test-packaging.sh"
# Building the RPM twice and running Puppet take about two minutes on 2 cores.
TIMEOUT = 600.0


@dataclass(frozen=True)
class Run:
    """Exit code and combined output of one section of the packaging script."""

    section: str
    returncode: int
    output: str

    def lines(self) -> list[str]:
        """The output, one stripped line each."""
        return [line.strip() for line in self.output.splitlines()]

    def explain(self) -> str:
        """The tail of the output, for assertion messages."""
        return f"test-packaging.sh {self.section} exited {self.returncode}:\n" + "\n".join(
            self.output.splitlines()[-60:]
        )


def run_section(section: str) -> Run:
    """Run one section of scripts/test-packaging.sh (rpm or puppet)."""
    done = subprocess.run(
        ["bash", str(SCRIPT), section],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return Run(section, done.returncode, done.stdout)
