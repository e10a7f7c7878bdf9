"""The model agent and a serving process in-process: startup load, notification, handover, poll, clean stops."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from sklearn.pipeline import Pipeline

from core.store import ModelStore
from devstack.emulators import Service
from predictor.agent import service
from predictor.grpc.__main__ import compose
from predictor.http import extensions
from predictor.http.app import create_app
from predictor.lifecycle import handover
from predictor.lifecycle.follower import Follower
from predictor.lifecycle.registry import Registry
from predictor.settings import PredictorSettings
from tests.polling import wait_for
from tests.predictor.agent.subscription_fixtures import publish_model, settings_from_env, subscriptions

pytestmark = pytest.mark.integration

PROJECT, TOPIC = "test-project", "gcs-events"


def settings_for(common_env: dict[str, str], pubsub: Service, directory: Path, **overrides: Any) -> PredictorSettings:
    return settings_from_env(common_env, pubsub_emulator_host=pubsub.host, handover_dir=str(directory), **overrides)


def worker(settings: PredictorSettings, store: ModelStore, pod_workers: int | None = None) -> tuple[Follower, Registry]:
    """A gunicorn worker's follower and registry, as create_app wires them."""
    follower = extensions.follower(create_app(settings, store, pod_workers=pod_workers))
    assert follower is not None
    return follower, follower.registry


def test_agent_subscribes_hands_over_and_stops_deleting_the_subscription(
    common_env: dict[str, str], pubsub_emulator: Service, store: ModelStore, fitted_model: Pipeline, tmp_path: Path
) -> None:
    first = publish_model(store, fitted_model)
    settings = settings_for(common_env, pubsub_emulator, tmp_path, reconcile_interval=300, graceful_timeout=6)
    agent = service.build(settings, tmp_path, store)
    agent.start()
    follower, registry = worker(settings, store, pod_workers=1)  # as python -m predictor builds it
    follower.start()
    thread = follower.thread
    follower.start()
    assert follower.thread is thread  # idempotent
    try:
        wait_for(lambda: registry.version == first.version, 10, "the worker's startup load")
        assert registry.history()[0].trigger == "startup"
        assert agent.registry.history()[0].trigger == "startup"
        assert (tmp_path / "workers" / str(os.getpid())).read_text() == first.version
        assert agent.events is not None
        wait_for(lambda: agent.events is not None and agent.events.connects >= 1, 10, "the subscription")
        assert agent.events.subscription in subscriptions(pubsub_emulator.host, PROJECT, TOPIC)

        second = publish_model(store, fitted_model)
        wait_for(lambda: registry.version == second.version, 5, "the worker's swap by notification")
        assert [r.trigger for r in registry.history()] == ["notification", "startup"]
        assert agent.status()["events"]["connected"]
        assert handover.worker_versions(tmp_path) == {os.getpid(): second.version}
    finally:
        follower.stop()
        started = time.monotonic()
        agent.stop()
        stopped_in = time.monotonic() - started
    print(f"\nagent.stop took {stopped_in:.2f} s")
    assert stopped_in < 3  # half of GRACEFUL_TIMEOUT=6 is the budget
    assert not follower.thread or not follower.thread.is_alive()
    assert agent.events.subscription not in subscriptions(pubsub_emulator.host, PROJECT, TOPIC)
    assert not agent.scheduler.running
    follower.stop()  # a second stop is a no-op


def test_startup_retries_until_a_model_exists_then_the_poll_reconciles(
    common_env: dict[str, str], pubsub_emulator: Service, store: ModelStore, fitted_model: Pipeline, tmp_path: Path
) -> None:
    settings = settings_for(
        common_env, pubsub_emulator, tmp_path,
        model_events_enabled=False, reconcile_interval_without_events=1, load_retry_max=1,
    )  # fmt: skip
    agent = service.build(settings, tmp_path, store)
    agent.start()
    follower, registry = worker(settings, store)
    follower.start()
    try:
        assert agent.events is None
        time.sleep(1.5)  # a few empty listings
        assert not registry.ready
        assert agent.loader.is_alive()
        first = publish_model(store, fitted_model)
        wait_for(lambda: registry.version == first.version, 4, "a load once a model exists")
        wait_for(lambda: not agent.loader.is_alive(), 2, "the startup loader to finish")

        second = publish_model(store, fitted_model)
        wait_for(lambda: registry.version == second.version, 4, "the reconcile poll")
        assert registry.history()[0].trigger == "reconcile"
    finally:
        follower.stop()
        agent.stop()


def test_a_process_without_a_pod_agent_runs_its_own(
    common_env: dict[str, str], pubsub_emulator: Service, store: ModelStore, fitted_model: Pipeline
) -> None:
    """No HANDOVER_DIR (the gRPC server started on its own): it hands over to itself, and stops its agent."""
    first = publish_model(store, fitted_model)
    settings = settings_from_env(common_env, pubsub_emulator_host=pubsub_emulator.host, reconcile_interval=300)
    process = compose(settings, store)
    own_agent, follower, registry = process.own_agent, process.follower, process.dataplane.registry
    assert own_agent is not None
    assert follower.registry is registry
    assert own_agent.directory == follower.directory  # a private folder of its own
    assert follower.own_agent
    own_agent.start()
    follower.start()
    try:
        wait_for(lambda: registry.version == first.version, 10, "the startup load")
        events = own_agent.events
        wait_for(lambda: events is not None and events.connects >= 1, 10, "the subscription")
        second = publish_model(store, fitted_model)
        wait_for(lambda: registry.version == second.version, 5, "the swap by notification")
    finally:
        follower.stop()
        own_agent.stop()
    assert events is not None
    assert events.subscription not in subscriptions(pubsub_emulator.host, PROJECT, TOPIC)
