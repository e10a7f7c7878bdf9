"""The handover on local disk: a serving process re-verifies what the agent hands over and never goes backwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sklearn.pipeline import Pipeline

from core.store import ModelStore
from predictor import background, handover
from predictor.agent import service
from predictor.app import create_app
from predictor.handover import Pointer, Publisher
from predictor.registry import Registry
from predictor.settings import PredictorSettings
from tests.predictor.conftest import publish

pytestmark = pytest.mark.integration


def hand_over(store: ModelStore, publisher: Publisher, model: Pipeline, trigger: str = "notification") -> str:
    """What the agent does for one new artifact: download, verify, stage, point."""
    ref = store.ref(f"models/model-{publish(store, model).version}.pkl")
    data = store.download(ref)
    publisher.stage(ref, data)
    publisher.publish(store.load_bytes(ref, data), trigger, None)
    return ref.version


@pytest.fixture
def worker(predictor_settings: PredictorSettings, store: ModelStore, tmp_path: Path) -> tuple[Flask, Registry]:
    """A serving process's app following `tmp_path` (its follower is checked by hand: no thread timing)."""
    settings = predictor_settings.model_copy(update={"handover_dir": str(tmp_path), "handover_poll_interval": 1})
    app = create_app(settings, store)
    background.start(app)
    yield app, app.extensions["registry"]
    background.stop(app)


def test_a_worker_serves_what_is_handed_over_and_ignores_older_pointers(
    worker: tuple[Flask, Registry], store: ModelStore, fitted_model: Pipeline, tmp_path: Path
) -> None:
    app, registry = worker
    follower = app.extensions["background"]
    publisher = Publisher(tmp_path)
    follower.check()
    assert not registry.ready  # nothing handed over yet
    first = hand_over(store, publisher, fitted_model)
    old_pointer = (tmp_path / handover.POINTER).read_bytes()
    follower.check()
    assert (registry.version, registry.history()[0].trigger) == (first, "startup")
    second = hand_over(store, publisher, fitted_model)
    follower.check()
    assert (registry.version, registry.history()[0].trigger) == (second, "notification")
    handover.write_atomic(tmp_path / handover.POINTER, old_pointer)  # a stale pointer must not downgrade
    follower.check()
    assert registry.version == second
    ignored = {"trigger": "notification", "outcome": "ignored"}
    assert registry.metrics.registry.get_sample_value("predictor_model_swaps_total", ignored) == 1.0
    assert len(list(tmp_path.glob("model-*.pkl"))) == 2


def test_a_tampered_handover_is_refused_and_the_old_model_keeps_serving(
    worker: tuple[Flask, Registry], store: ModelStore, fitted_model: Pipeline, tmp_path: Path
) -> None:
    app, registry = worker
    follower, publisher = app.extensions["background"], Publisher(tmp_path)
    first = hand_over(store, publisher, fitted_model)
    follower.check()
    second = hand_over(store, publisher, fitted_model)
    pointer = Pointer.read(tmp_path)
    assert pointer is not None
    path = tmp_path / pointer.file
    path.write_bytes(path.read_bytes() + b"\x00")  # the agent (or the disk) is not trusted with the bytes
    follower.check()
    assert registry.version == first
    record = registry.history()[0]
    assert (record.version, record.outcome, record.reason) == (second, "rejected", "hash_mismatch")


def test_the_agents_rejections_show_in_a_workers_history(
    worker: tuple[Flask, Registry], store: ModelStore, tmp_path: Path
) -> None:
    _, registry = worker
    agent = service.build(registry.settings, tmp_path, store)  # not started: offered to by hand
    missing = "models/model-20200101T000000000000Z.pkl"
    assert agent.registry.offer(missing, 7, "notification").outcome == "rejected"
    assert [(r.object, r.outcome, r.reason) for r in registry.history()] == [(missing, "rejected", "not_found")]
    assert not registry.ready
