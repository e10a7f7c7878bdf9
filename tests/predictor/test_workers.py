"""Worker socket slots: the lowest free one, held for the worker's life and freed by the kernel when it exits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from predictor import workers
from predictor.settings import UNIX_PATH_MAX, PredictorSettings
from tests import keys

ROOT = Path(__file__).resolve().parents[2]
CLAIM = "import sys; from pathlib import Path; from predictor import workers; "


def claim_in_child(directory: Path, count: int, hold: str = "") -> subprocess.Popen[str]:
    """A process that claims a slot, prints it and (with `hold`) keeps it until its stdin closes."""
    code = CLAIM + f"print(workers.claim_slot(Path({str(directory)!r}), {count}), flush=True); {hold}"
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip


def test_slots_are_claimed_lowest_first_and_freed_when_the_holder_exits(tmp_path: Path) -> None:
    holders = []
    try:
        for expected in ("0", "1"):
            holder = claim_in_child(tmp_path, 2, "sys.stdin.read()")
            holders.append(holder)
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == expected
        assert claim_in_child(tmp_path, 2).communicate(timeout=30)[0].strip() == "None"  # all held: shared port only
        holders[0].communicate(timeout=30)  # the worker in slot 0 exits: the kernel drops its lock
        assert claim_in_child(tmp_path, 2).communicate(timeout=30)[0].strip() == "0"
    finally:
        for holder in holders:
            holder.communicate(timeout=30)


def test_socket_paths_are_one_per_slot() -> None:
    assert workers.socket_paths("/run/sockets", 2) == [Path("/run/sockets/worker-0.sock"),
                                                        Path("/run/sockets/worker-1.sock")]  # fmt: skip


def test_a_socket_folder_too_long_for_a_unix_socket_is_refused() -> None:
    PredictorSettings.model_validate(keys.settings() | {"worker_sockets_dir": "/run/sockets"})
    with pytest.raises(ValidationError, match="WORKER_SOCKETS_DIR"):
        PredictorSettings.model_validate(keys.settings() | {"worker_sockets_dir": "/" + "x" * UNIX_PATH_MAX})
