"""predictor.http.extensions and the deferred bucket: typed per-app state, an app built without keys or network."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from flask import Flask

from predictor.dataplane import DataPlane
from predictor.http import extensions
from predictor.http.app import create_app
from predictor.lifecycle.bucket import DeferredModelStore
from predictor.lifecycle.handover import HandoverReader
from predictor.lifecycle.readiness import PodReadiness
from predictor.lifecycle.registry import Registry
from predictor.metrics import Metrics
from predictor.settings import PredictorSettings
from tests import keys


def test_the_accessors_return_what_the_factory_installed(offline_settings: PredictorSettings) -> None:
    app = create_app(offline_settings)
    assert extensions.settings(app) is offline_settings
    assert isinstance(extensions.registry(app), Registry)
    assert isinstance(extensions.metrics(app), Metrics)
    dataplane = extensions.dataplane(app)
    assert isinstance(dataplane, DataPlane)
    assert (dataplane.registry, dataplane.metrics) == (extensions.registry(app), extensions.metrics(app))
    assert (extensions.follower(app), extensions.pod_readiness(app)) == (None, None)  # no handover: its own pod
    with app.app_context():
        assert extensions.registry() is extensions.registry(app)


def test_a_worker_app_follows_the_handover(offline_settings: PredictorSettings, tmp_path: Path) -> None:
    """With HANDOVER_DIR the registry reads the handover (the deferred bucket behind it), with pod readiness under
    gunicorn; the follower is built but not started (gunicorn's post_worker_init starts it)."""
    settings = offline_settings.model_copy(update={"handover_dir": str(tmp_path)})
    app = create_app(settings, pod_workers=3)
    follower, registry = extensions.follower(app), extensions.registry(app)
    assert follower is not None
    assert follower.registry is registry
    assert follower.thread is None
    assert type(registry.store) is HandoverReader
    assert follower.store is registry.store
    assert type(registry.store.verifier) is DeferredModelStore
    assert registry.notification_lookups is None  # a pointer is read locally, never rate-limited
    assert extensions.pod_readiness(app) == PodReadiness(tmp_path, 3)
    assert extensions.pod_readiness(create_app(settings)) is None


def test_an_app_without_the_state_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="no Registry"):
        extensions.registry(Flask(__name__))


def test_building_the_app_reads_no_key_and_builds_no_client(tmp_path: Path) -> None:
    """The trusted keys are read on first use: removed after the app was built, the store says so then."""
    keys_dir = tmp_path / "public"
    shutil.copytree(Path(keys.settings()["model_public_keys_dir"]), keys_dir)
    settings = PredictorSettings(storage_emulator_host="127.0.0.1:9", model_public_keys_dir=keys_dir)
    store = extensions.registry(create_app(settings)).store
    assert type(store) is DeferredModelStore
    assert store._bucket is None
    assert store._keyring is None
    for pem in keys_dir.glob("*.pem"):
        pem.unlink()
    with pytest.raises(ValueError, match="MODEL_PUBLIC_KEYS_DIR"):
        store.keyring  # noqa: B018 - the property builds the keyring
    assert store.bucket.name == settings.gcs_bucket
    assert store.bucket is store.bucket
