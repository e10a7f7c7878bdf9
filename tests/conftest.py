"""Fixture chain shared by every test folder: emulators -> bucket -> settings -> store -> fitted model.

Folder-specific fixtures live in each tests/<area>/conftest.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.pipeline import Pipeline

from core import gcs
from core.iris import CLASSES
from core.store import ModelStore
from devstack.emulators import Service
from tests import keys
from trainer.model import build
from trainer.settings import TrainerSettings

pytest_plugins = ["tests.emulator_fixtures"]

PROJECT = "test-project"
TOPIC = "gcs-events"
EMULATORS = frozenset({"gcs_emulator", "pubsub_emulator"})
"""Session fixtures that start a real emulator: a test that uses one, directly or through its fixtures, is
`integration` whatever its module declares, so `make test-fast` (`-m "not integration ..."`) never starts one."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if EMULATORS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def fitted_model() -> Pipeline:
    """The production pipeline fitted on the bundled iris data, with species names as classes."""
    iris = load_iris()
    return build().fit(iris.data, np.asarray(CLASSES)[iris.target])


@pytest.fixture
def common_env(gcs_emulator: Service, bucket_name: str) -> dict[str, str]:
    """Environment for a subprocess (trainer, predictor, function) pointed at this test's bucket."""
    return {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "GCS_BUCKET": bucket_name,
        "STORAGE_EMULATOR_HOST": gcs_emulator.host,
        **keys.env(),
        "MODEL_EVENTS_TOPIC": TOPIC,
        "GCS_RETRY_DEADLINE": "5",
    }


@pytest.fixture
def trainer_settings(common_env: dict[str, str]) -> TrainerSettings:
    return TrainerSettings(**_lower(common_env))


@pytest.fixture
def store(trainer_settings: TrainerSettings) -> ModelStore:
    """A model store on this test's bucket, signing with the test trainer's key."""
    client = gcs.client(trainer_settings)
    return ModelStore(client.bucket(trainer_settings.gcs_bucket), keys.KEYRING, gcs.retry(trainer_settings))


def _lower(env: dict[str, str]) -> dict[str, Any]:
    return {k.lower(): v for k, v in env.items()}
