"""`make run`'s supervision with real processes: an exited child is started again, one that keeps exiting is given
up on and reported, and the other children keep running."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from devstack.run import Stack, StackSettings


def supervise(stack: Stack, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for child in stack.children:
            stack.tend(child)
        time.sleep(0.05)


def test_an_exited_child_is_restarted_and_one_that_keeps_exiting_is_given_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = Stack(StackSettings(stack_dir=tmp_path, stack_restart_limit=3, stack_restart_window=60))
    py = sys.executable
    try:
        steady = stack.spawn("steady", [py, "-c", "import time; time.sleep(60)"], {})
        crashing = stack.spawn(
            "crashing", [py, "-c", "print('bad configuration', flush=True); raise SystemExit(3)"], {}
        )
        first = crashing.process.pid
        supervise(stack, 1.8)  # exit, 1 s backoff, a second start
        assert stack.children[1].service.process.pid != first
        supervise(stack, 4.0)  # exits again, 2 s backoff, exits a third time: given up
        err = capsys.readouterr().err
        assert stack.children[1].given_up
        assert "crashing exited 3 times within 60 s (exit code 3); left down" in err
        assert "bad configuration" in err  # the last lines of its log
        assert stack.children[0].service is steady
        assert steady.alive()
    finally:
        stack.stop()
    assert not steady.alive()


def test_a_child_that_cannot_start_again_counts_as_an_exit(tmp_path: Path) -> None:
    stack = Stack(StackSettings(stack_dir=tmp_path, stack_restart_limit=2, stack_restart_window=60))
    starts = []

    def start() -> object:
        starts.append(time.monotonic())
        if len(starts) > 1:
            raise RuntimeError("never became ready")
        return stack_service

    stack_service = stack.spawn("once", [sys.executable, "-c", "pass"], {})
    stack.children[0].start = start  # type: ignore[assignment]
    starts.append(time.monotonic())
    supervise(stack, 2.0)
    assert len(starts) == 2
    assert stack.children[0].given_up
