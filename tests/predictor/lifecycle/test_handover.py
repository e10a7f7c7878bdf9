"""The handover on local disk: a serving process re-verifies what the agent hands over and never goes backwards."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sklearn.pipeline import Pipeline

from core.store import ModelStore
from predictor.agent import service
from predictor.http import extensions
from predictor.http.app import create_app
from predictor.lifecycle import handover
from predictor.lifecycle.follower import Follower
from predictor.lifecycle.handover import HandoverWriter, Pointer
from predictor.lifecycle.registry import Registry
from predictor.settings import PredictorSettings
from tests.predictor.conftest import publish

pytestmark = pytest.mark.integration


def hand_over(store: ModelStore, writer: HandoverWriter, model: Pipeline, trigger: str = "notification") -> str:
    """What the agent does for one new artifact: download, verify, stage, point."""
    ref = store.ref(f"models/model-{publish(store, model).version}.pkl")
    data = store.download(ref)
    writer.stage(ref, data)
    writer.point_to(store.load_bytes(ref, data), trigger, None)
    return ref.version


@pytest.fixture
def worker(predictor_settings: PredictorSettings, store: ModelStore, tmp_path: Path) -> tuple[Follower, Registry]:
    """A serving process's follower of `tmp_path` and its registry (not started: checked by hand, no thread timing)."""
    settings = predictor_settings.model_copy(update={"handover_dir": str(tmp_path)})
    follower = extensions.follower(create_app(settings, store))
    assert follower is not None
    return follower, follower.registry


def test_a_worker_serves_what_is_handed_over_and_ignores_older_pointers(
    worker: tuple[Follower, Registry], store: ModelStore, fitted_model: Pipeline, tmp_path: Path
) -> None:
    follower, registry = worker
    writer = HandoverWriter(tmp_path)
    follower.check()
    assert not registry.ready  # nothing handed over yet
    first = hand_over(store, writer, fitted_model)
    old_pointer = (tmp_path / handover.POINTER).read_bytes()
    follower.check()
    assert (registry.version, registry.history()[0].trigger) == (first, "startup")
    second = hand_over(store, writer, fitted_model)
    follower.check()
    assert (registry.version, registry.history()[0].trigger) == (second, "notification")
    handover.write_atomic(tmp_path / handover.POINTER, old_pointer)  # a stale pointer must not downgrade
    follower.check()
    assert registry.version == second
    ignored = {"trigger": "notification", "outcome": "ignored"}
    assert registry.metrics.registry.get_sample_value("predictor_model_swaps_total", ignored) == 1.0
    assert len(list(tmp_path.glob("model-*.pkl"))) == 2


def test_a_tampered_handover_is_refused_and_the_old_model_keeps_serving(
    worker: tuple[Follower, Registry], store: ModelStore, fitted_model: Pipeline, tmp_path: Path
) -> None:
    follower, registry = worker
    writer = HandoverWriter(tmp_path)
    first = hand_over(store, writer, fitted_model)
    follower.check()
    second = hand_over(store, writer, fitted_model)
    pointer = Pointer.read(tmp_path)
    assert pointer is not None
    path = tmp_path / pointer.file
    path.write_bytes(path.read_bytes() + b"\x00")  # the agent (or the disk) is not trusted with the bytes
    follower.check()
    assert registry.version == first
    record = registry.history()[0]
    assert (record.version, record.outcome, record.reason) == (second, "rejected", "hash_mismatch")


def test_the_agents_rejections_show_in_a_workers_history(
    worker: tuple[Follower, Registry], store: ModelStore, tmp_path: Path
) -> None:
    _, registry = worker
    agent = service.build(registry.settings, tmp_path, store)  # not started: offered to by hand
    missing = "models/model-20200101T000000000000Z.pkl"
    assert agent.registry.offer(missing, 7, "notification").outcome == "rejected"
    assert [(r.object, r.outcome, r.reason) for r in registry.history()] == [(missing, "rejected", "not_found")]
    assert not registry.ready


def in_thread(fn: Callable[[], object], timeout: float = 10.0) -> None:
    """Run `fn` and fail if it does not return in time (a blocked read would hang the test otherwise); its
    exception, if any, is raised here."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "blocked"
    if errors:
        raise errors[0]


def test_a_fifo_named_by_the_pointer_never_blocks_and_the_bucket_serves_instead(
    worker: tuple[Follower, Registry], store: ModelStore, fitted_model: Pipeline, tmp_path: Path
) -> None:
    follower, registry = worker
    writer = HandoverWriter(tmp_path)
    hand_over(store, writer, fitted_model)
    follower.check()
    second = hand_over(store, writer, fitted_model)
    pointer = Pointer.read(tmp_path)
    assert pointer is not None
    (tmp_path / pointer.file).unlink()
    os.mkfifo(tmp_path / pointer.file)  # no writer: a plain open() for reading would wait forever
    in_thread(follower.check)
    assert registry.version == second
    assert (tmp_path / pointer.file).is_fifo()


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory", "oversized"])
def test_a_pointer_that_is_not_a_small_regular_file_is_not_read(
    worker: tuple[Follower, Registry], store: ModelStore, fitted_model: Pipeline, tmp_path: Path, kind: str
) -> None:
    follower, registry = worker
    writer = HandoverWriter(tmp_path)
    first = hand_over(store, writer, fitted_model)
    follower.check()
    hand_over(store, writer, fitted_model)
    path = tmp_path / handover.POINTER
    good = path.read_bytes()
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        (tmp_path / "elsewhere.json").write_bytes(good)
        path.symlink_to(tmp_path / "elsewhere.json")
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(good[:-1] + b" " * handover.POINTER_MAX_BYTES + b"}")
        assert json.loads(path.read_bytes())  # still a valid pointer, only too large
    in_thread(follower.check)
    assert registry.version == first
    assert Pointer.read(tmp_path) is None


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory", "oversized"])
def test_read_regular_reads_only_small_regular_files(tmp_path: Path, kind: str) -> None:
    path, target = tmp_path / "file", tmp_path / "target"
    target.write_bytes(b"12345")
    assert handover.read_regular(target, 5) == b"12345"
    {
        "fifo": lambda: os.mkfifo(path),
        "symlink": lambda: path.symlink_to(target),
        "directory": lambda: path.mkdir(),
        "oversized": lambda: path.write_bytes(b"123456"),
    }[kind]()
    with pytest.raises(handover.NotRegularFile):
        in_thread(lambda: handover.read_regular(path, 5))


def test_the_artifact_is_read_after_its_signature_verified_and_outside_the_registry_lock(
    worker: tuple[Follower, Registry],
    store: ModelStore,
    fitted_model: Pipeline,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    follower, registry = worker
    writer = HandoverWriter(tmp_path)
    reads: list[tuple[str, bool]] = []
    real = handover.read_regular

    def spy(path: Path, max_bytes: int) -> bytes:
        reads.append((path.name, registry._lock._is_owned()))  # type: ignore[attr-defined]
        return real(path, max_bytes)

    monkeypatch.setattr(handover, "read_regular", spy)
    first = hand_over(store, writer, fitted_model)
    follower.check()
    assert registry.version == first
    artifact_reads = [owned for name, owned in reads if name.startswith("model-")]
    assert artifact_reads == [False]  # read once, by prepare(), before the offer took the lock
    reads.clear()
    second = hand_over(store, writer, fitted_model)
    pointer = json.loads((tmp_path / handover.POINTER).read_bytes())
    pointer["metadata"]["row_count"] = "151"  # the signature no longer covers it
    handover.write_atomic(tmp_path / handover.POINTER, json.dumps(pointer).encode())
    follower.check()
    assert registry.version == first
    assert (registry.history()[0].version, registry.history()[0].reason) == (second, "bad_signature")
    assert [name for name, _ in reads if name.startswith("model-")] == []


def test_monitoring_files_round_trip_and_read_only_when_sound(tmp_path: Path) -> None:
    assert handover.read_live_accuracy(tmp_path) is None
    assert handover.read_drift(tmp_path) is None
    handover.write_live_accuracy(tmp_path, b'{"schema": 1}')
    handover.write_drift(tmp_path, {"version": "v1", "window_rows": 3})
    assert handover.read_live_accuracy(tmp_path) == b'{"schema": 1}'
    assert json.loads(handover.read_drift(tmp_path) or b"") == {"version": "v1", "window_rows": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == [handover.DRIFT, handover.LIVE_ACCURACY]  # no temporaries
    (tmp_path / handover.DRIFT).write_bytes(b" " * (handover.DRIFT_MAX_BYTES + 1))
    assert handover.read_drift(tmp_path) is None
