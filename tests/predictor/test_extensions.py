"""predictor.extensions and the lazy store: typed per-app state, and an app built without touching keys or network."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from flask import Flask

from core.store import ModelStore
from predictor import extensions
from predictor.app import LazyStore, create_app
from predictor.metrics import Metrics
from predictor.registry import Registry
from predictor.settings import PredictorSettings
from tests import keys


def test_the_accessors_return_what_the_factory_installed(offline_settings: PredictorSettings) -> None:
    app = create_app(offline_settings)
    assert extensions.settings(app) is offline_settings
    assert isinstance(extensions.registry(app), Registry)
    assert isinstance(extensions.metrics(app), Metrics)
    with app.app_context():
        assert extensions.registry() is extensions.registry(app)


def test_an_app_without_the_state_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="no Registry"):
        extensions.registry(Flask(__name__))


def test_building_the_app_reads_no_key_and_builds_no_client(tmp_path: Path) -> None:
    """The trusted keys are read on first use: removed after the app was built, the store says so then."""
    keys_dir = tmp_path / "public"
    shutil.copytree(Path(keys.settings()["model_public_keys_dir"]), keys_dir)
    settings = PredictorSettings(storage_emulator_host="127.0.0.1:9", model_public_keys_dir=keys_dir)
    store = extensions.registry(create_app(settings)).store
    assert isinstance(store, LazyStore)
    assert isinstance(store, ModelStore)
    assert store._bucket is None
    assert store._keyring is None
    for pem in keys_dir.glob("*.pem"):
        pem.unlink()
    with pytest.raises(ValueError, match="MODEL_PUBLIC_KEYS_DIR"):
        store.keyring  # noqa: B018 - the property builds the keyring
    assert store.bucket.name == settings.gcs_bucket
    assert store.bucket is store.bucket
