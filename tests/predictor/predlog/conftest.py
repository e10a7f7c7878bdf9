"""Fixtures of the prediction log and feedback spool tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import emulators
from devstack.emulators import Service


@pytest.fixture
def own_gcs(tmp_path: Path) -> Iterator[Service]:
    """A fake-gcs-server of this test alone (memory backend), so it can be stopped and started again."""
    service = emulators.start_fake_gcs(emulators.free_port(), None, tmp_path / "fake-gcs.log")
    try:
        yield service
    finally:
        service.stop()
