"""The closed loop on the local stack `make run` starts: a model that never saw part of the iris range serves,
its whole-range traffic comes back as feedback, and a model that learned from those labels serves on every worker,
more accurate on the same traffic; the service's own live accuracy of both versions agrees with the truth.

It runs `bench/loop_bench.py --fast` (shortened spool rotation, shipping and join intervals) as a user would and
reads its table: the benchmark raises when the loop does not close and exits 1 when accuracy did not improve."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def row(table: str, name: str) -> str:
    found = re.search(rf"^\| {re.escape(name)} \| (.+) \|$", table, re.MULTILINE)
    assert found, f"no row {name!r} in:\n{table}"
    return found.group(1)


@pytest.mark.timeout(600)
def test_feedback_on_served_traffic_becomes_a_better_model_serving_everywhere() -> None:
    run = subprocess.run(
        [sys.executable, "bench/loop_bench.py", "--fast", "--rounds", "1", "--timeout", "300"],
        cwd=ROOT, capture_output=True, text=True, timeout=580,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    table = run.stdout
    assert row(table, "feedback items accepted") == "150 of 150"
    assert int(row(table, "feedback rows the new model learned from")) > 0
    before = float(row(table, "accuracy before (whole-range traffic, true species)"))
    after = float(row(table, "accuracy after (same traffic, true species)"))
    assert after > before
    for phase, truth in (("before", before), ("after", after)):
        counted = row(table, f"live accuracy {phase}, as the service counts it")
        assert counted.startswith(f"{truth:.3f} ("), (phase, counted)  # the joiner counts what the bench knows
