"""Fixtures of the fault suite: its own restartable stacks, the shared main stack with two pods, the result table.

Each check asks for `row` and fills it (requests sent, failed, versions seen, one measurement); at the end of the
session the table is printed and written to test-output/faults/report.md.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest
from sklearn.pipeline import Pipeline

from tests.faults import report
from tests.faults.report import Row
from tests.faults.stack import Pod, Stack, start_stack

ROWS = pytest.StashKey[list[Row]]()
DURATION = pytest.StashKey[list[float]]()


def _ours(nodeid: str) -> bool:
    return nodeid.startswith("tests/faults/")


@pytest.fixture
def row(request: pytest.FixtureRequest) -> Row:
    """This check's row in the result table."""
    item = request.node
    entry = Row(check=item.name, nodeid=item.nodeid)
    request.config.stash.setdefault(ROWS, []).append(entry)
    return entry


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each check's outcome and every phase's duration (the folder's runtime) for the table."""
    rep: pytest.TestReport = yield
    if _ours(rep.nodeid):
        item.config.stash.setdefault(DURATION, []).append(rep.duration)
        for entry in item.config.stash.get(ROWS, []):
            if entry.nodeid == rep.nodeid and rep.when == "call":
                entry.outcome = "passed" if rep.passed else rep.outcome
            elif entry.nodeid == rep.nodeid and rep.failed:
                entry.outcome = f"error in {rep.when}"
    return rep


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    rows = config.stash.get(ROWS, [])
    if not rows:
        return
    durations: list[float] = config.stash.get(DURATION, [])
    runtime = float(sum(durations))
    path = report.write(rows, runtime)
    terminalreporter.section("fault and abuse suite")
    for line in report.markdown(rows, runtime).splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(written to {path})")


@pytest.fixture(scope="session")
def main_stack(tmp_path_factory: pytest.TempPathFactory, fitted_model: Pipeline) -> Iterator[Stack]:
    """Emulators, a bucket with one published model and two ready pods (long reconcile interval)."""
    stack = start_stack(tmp_path_factory.mktemp("faults-main"))
    try:
        lineage = stack.store().publish(fitted_model, data_fingerprint="faults-initial", row_count=150, metrics={})
        stack.start_pods(["main-a", "main-b"], lineage.version, RECONCILE_INTERVAL="300", WORKER_TIMEOUT="8")
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def pods(main_stack: Stack) -> list[Pod]:
    """The main stack's two pods, checked alive before each check."""
    for pod in main_stack.pods:
        assert pod.service.alive(), f"pod {pod.name} died earlier:\n{pod.service.log_tail()}"
    return list(main_stack.pods)
