"""Helpers for the model-events tests: settings, a predictor-side store, publishing models and raw notifications."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sklearn.pipeline import Pipeline

from core import gcs
from core.lineage import Lineage
from core.store import ModelStore
from devstack import emulators
from predictor.agent.subscription import ModelEvents
from predictor.lifecycle.registry import Registry
from predictor.settings import PredictorSettings
from tests import keys
from tests.polling import wait_for


def settings_from_env(env: dict[str, str], **overrides: Any) -> PredictorSettings:
    """Predictor settings from a subprocess environment dict (as `common_env`), with overrides."""
    values: dict[str, Any] = {k.lower(): v for k, v in env.items()}
    values.update(overrides)
    return PredictorSettings(**values)


def registry_for(settings: PredictorSettings) -> Registry:
    store = ModelStore(gcs.client(settings).bucket(settings.gcs_bucket), keys.KEYRING, gcs.retry(settings))
    return Registry(store, settings)


def publish_model(store: ModelStore, model: Pipeline) -> Lineage:
    return store.publish(model, data_fingerprint="test", row_count=150, metrics={"accuracy": 1.0})


def notify(host: str, project: str, topic: str, data: bytes = b"", **attributes: str) -> None:
    """Publish one raw message, as a GCS notification would arrive (or a malformed one)."""
    with emulators.publisher_client(host) as client:
        client.publish(client.topic_path(project, topic), data, **attributes).result(timeout=10)


def subscriptions(host: str, project: str, topic: str) -> list[str]:
    with emulators.publisher_client(host) as client:
        return list(client.list_topic_subscriptions(topic=client.topic_path(project, topic), timeout=5))


@contextmanager
def running(events: ModelEvents) -> Iterator[ModelEvents]:
    """Start the subscriber, wait for its subscription, stop it (deleting the subscription) afterwards."""
    events.start()
    try:
        wait_for(lambda: events.connects >= 1, 10, "the subscription")
        yield events
    finally:
        events.stop(timeout=5)
