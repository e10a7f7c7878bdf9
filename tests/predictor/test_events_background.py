"""predictor.background in-process: startup load with backoff, subscriber, reconcile job, and a clean stop."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from sklearn.pipeline import Pipeline

from core.store import ModelStore
from devstack.emulators import Service
from predictor import background
from predictor.app import create_app
from predictor.registry import Registry
from tests.polling import wait_for
from tests.predictor.events_fixtures import publish_model, settings_from_env, subscriptions

pytestmark = pytest.mark.integration

PROJECT, TOPIC = "test-project", "gcs-events"


def make_app(common_env: dict[str, str], pubsub_emulator: Service, store: ModelStore, **overrides: Any) -> Flask:
    settings = settings_from_env(common_env, pubsub_emulator_host=pubsub_emulator.host, **overrides)
    return create_app(settings, store)


def test_start_loads_subscribes_and_stop_deletes_the_subscription(
    common_env: dict[str, str], pubsub_emulator: Service, store: ModelStore, fitted_model: Pipeline
) -> None:
    first = publish_model(store, fitted_model)
    app = make_app(common_env, pubsub_emulator, store, reconcile_interval=300, graceful_timeout=6)
    registry: Registry = app.extensions["registry"]
    state = background.start(app)
    assert background.start(app) is state  # idempotent
    try:
        wait_for(lambda: registry.version == first.version, 10, "the startup load")
        assert registry.history()[0].trigger == "startup"
        assert state.events is not None
        wait_for(lambda: state.events is not None and state.events.connects >= 1, 10, "the subscription")
        assert state.events.subscription in subscriptions(pubsub_emulator.host, PROJECT, TOPIC)

        second = publish_model(store, fitted_model)
        wait_for(lambda: registry.version == second.version, 5, "the swap by notification")
        assert registry.history()[0].trigger == "notification"
        assert state.status()["events"]["connected"]
    finally:
        started = time.monotonic()
        background.stop(app)
        stopped_in = time.monotonic() - started
    print(f"\nbackground.stop took {stopped_in:.2f} s")
    assert stopped_in < 3  # half of GRACEFUL_TIMEOUT=6 is the budget
    assert "background" not in app.extensions
    assert state.events.subscription not in subscriptions(pubsub_emulator.host, PROJECT, TOPIC)
    assert not state.scheduler.running
    background.stop(app)  # a second stop is a no-op


def test_startup_retries_until_a_model_exists_then_the_poll_reconciles(
    common_env: dict[str, str], pubsub_emulator: Service, store: ModelStore, fitted_model: Pipeline
) -> None:
    app = make_app(
        common_env,
        pubsub_emulator,
        store,
        model_events_enabled=False,
        reconcile_interval_without_events=1,
        load_retry_max=1,
    )
    registry: Registry = app.extensions["registry"]
    state = background.start(app)
    try:
        assert state.events is None
        time.sleep(1.5)  # a few empty listings
        assert not registry.ready
        assert state.loader.is_alive()
        first = publish_model(store, fitted_model)
        wait_for(lambda: registry.version == first.version, 4, "a load once a model exists")
        wait_for(lambda: not state.loader.is_alive(), 2, "the startup loader to finish")

        second = publish_model(store, fitted_model)
        wait_for(lambda: registry.version == second.version, 4, "the reconcile poll")
        assert registry.history()[0].trigger == "reconcile"
    finally:
        background.stop(app)
