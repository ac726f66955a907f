#!/usr/bin/env bash
# Install everything the tests need, then lint, type-check and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
echo "== ruff"
.venv/bin/ruff check prometheus_streams tests benchmarks
.venv/bin/ruff format --check prometheus_streams tests benchmarks
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
# pytest exits 5 when it collects nothing: that is a failure here too.
# The slowest tests are listed at the end, so CI logs show where the time goes.
# Three worker processes (pytest-xdist), whole files each: most tests wait on real
# servers rather than use a CPU, and every server takes free ports and a tmp dir of
# its test's own. Collecting nothing still exits 5.
.venv/bin/pytest -q --durations=40 -n 3 --dist loadfile "$@"
