"""Check 3: hostile and broken artifacts in models/ are refused with the right reason; the old model keeps serving."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from core import layout
from tests import keys
from tests.faults import artifacts
from tests.faults.load import running
from tests.faults.metrics_text import rejected
from tests.faults.report import Row
from tests.faults.stack import Pod, Stack
from tests.polling import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.e2e]


def history_rejections(pod: Pod, tries: int = 16) -> dict[str, str]:
    """object -> reason of every rejection in the swap history the workers we reach show (their pod agent's)."""
    found: dict[str, str] = {}
    for _ in range(tries):
        history = pod.get("/v1/model", headers={"Connection": "close"}).json()["history"]
        found |= {h["object"]: h["reason"] for h in history if h["outcome"] == "rejected"}
    return found


def test_bad_artifacts_rejected_old_model_serves(main_stack: Stack, pods: list[Pod], row: Row, tmp_path: Path) -> None:
    current = pods[0].model()["model_version"]
    assert all(pod.served() == {current} for pod in pods)
    blob = main_stack.bucket().get_blob(layout.model_object(current))
    assert blob is not None
    marker = tmp_path / "code-ran"
    bad = artifacts.catalogue(keys.KEYRING, blob.download_as_bytes(), (blob.download_as_bytes(),
                              dict(blob.metadata or {})), marker)  # fmt: skip
    expected = Counter(a.reason for a in bad)
    before = {pod.name: rejected(pod.url) for pod in pods}

    with running([p.url for p in pods]) as load:
        for artifact in bad:
            artifacts.upload(main_stack.bucket(), artifact)

        counts: dict[str, Counter[str]] = {}

        def counted() -> bool:  # each pod's model agent verifies once; its workers never see a rejected artifact
            counts.update({p.name: rejected(p.url) - before[p.name] for p in pods})
            return all(counts[p.name] == expected for p in pods)

        try:
            wait_for(counted, 30, "every pod rejecting every bad artifact")
        except AssertionError as e:
            raise AssertionError(f"{e}: expected {dict(expected)}, counted {counts}") from None
        histories = {pod.name: history_rejections(pod) for pod in pods}

    row.add_load(load.sent, len(load.failures()), load.versions())
    row.note(f"{len(bad)} artifacts, reasons {dict(expected)}")
    assert not marker.exists(), "unpickling executed code from an artifact"
    assert load.failures() == []
    assert load.versions() == [current]
    for name, found in histories.items():
        assert {a.name: a.reason for a in bad} == {k: v for k, v in found.items() if k in {a.name for a in bad}}, name
    for pod in pods:
        assert pod.served() == {current}
        assert rejected(pod.url) - before[pod.name] == expected
