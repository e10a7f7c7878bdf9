"""The model agent watches itself (core.observe) on the real emulators: its stream metrics move with notifications,
its heartbeat lands in the handover, and an artifact whose notification never arrives is a missed event (counted,
warned, the stream recycled) while the reconcile still serves it."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sklearn.pipeline import Pipeline

from core.store import ModelStore
from devstack import emulators
from devstack.emulators import Service
from predictor.agent.service import Agent, build
from predictor.lifecycle import handover
from tests import keys
from tests.emulator_fixtures import PROJECT
from tests.polling import wait_for
from tests.predictor.agent.subscription_fixtures import publish_model, settings_from_env

pytestmark = pytest.mark.integration


def sample(agent: Agent, name: str, **labels: str) -> float:
    return agent.health.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def start_agent(
    common_env: dict[str, str], pubsub_emulator: Service, store: ModelStore, tmp_path: Path
) -> Iterator[Callable[..., Agent]]:
    started: list[Agent] = []

    def start(on: ModelStore | None = None, **overrides: object) -> Agent:
        values: dict[str, object] = {"reconcile_interval": 0.5, "missed_event_after": 3.0, "agent_stale_after": 4.0}
        settings = settings_from_env(common_env, pubsub_emulator_host=pubsub_emulator.host, **(values | overrides))
        agent = build(settings, tmp_path / f"handover-{len(started)}", on or store)
        started.append(agent)
        agent.start()
        wait_for(lambda: sample(agent, "predictor_agent_subscription_connected") == 1, 30, "the agent's stream")
        return agent

    yield start
    for agent in started:
        agent.stop()


def test_stream_metrics_and_heartbeat_move_with_notifications(
    start_agent, store: ModelStore, fitted_model: Pipeline
) -> None:
    agent: Agent = start_agent(missed_event_after=15.0)
    lineage = publish_model(store, fitted_model)
    offered = lambda: sample(agent, "predictor_agent_messages_total", outcome="offered")  # noqa: E731
    wait_for(lambda: offered() >= 1, 30, "the artifact's notification")
    wait_for(lambda: agent.registry.version == lineage.version, 30, "the agent serving it")
    state = wait_for(lambda: (handover.read_agent(agent.directory) or {}).get("version") == lineage.version
                     and handover.read_agent(agent.directory), 10, "the heartbeat naming it")  # fmt: skip
    assert state["connected"] is True
    assert state["pid"] > 0
    assert state["bucket_newest"] == lineage.version
    assert agent.probe()[0] is True
    wait_for(lambda: agent.health.status()["awaiting_notification"] == 0, 10, "nothing awaiting a notification")
    assert sample(agent, "predictor_agent_missed_events_total") == 0
    assert sample(agent, "predictor_agent_resubscribes_total") == 0
    silence = sample(agent, "predictor_agent_seconds_since_last_message")
    wait_for(lambda: sample(agent, "predictor_agent_seconds_since_last_message") > silence, 10, "silence growing")


def test_an_artifact_whose_notification_never_arrives_is_a_missed_event_that_recycles_the_stream(
    start_agent, store: ModelStore, fitted_model: Pipeline, pubsub_emulator: Service, caplog: pytest.LogCaptureFixture
) -> None:
    silent = f"silent-{uuid.uuid4().hex[:8]}"  # a topic the bucket never notifies: a deaf stream
    emulators.ensure_topic(pubsub_emulator.host, "test-project", silent)
    agent: Agent = start_agent(model_events_topic=silent)
    caplog.set_level(logging.WARNING, logger="core.observe")
    lineage = publish_model(store, fitted_model)
    wait_for(lambda: agent.registry.version == lineage.version, 30, "the reconcile serving it regardless")
    wait_for(lambda: sample(agent, "predictor_agent_missed_events_total") >= 1, 30, "the missed event")
    assert any(lineage.version in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert agent.events is not None
    wait_for(lambda: agent.events.connects >= 2, 30, "a recycled stream")  # type: ignore[union-attr]
    wait_for(lambda: sample(agent, "predictor_agent_resubscribes_total") >= 1, 10, "the resubscribe counted")
    state = wait_for(lambda: (handover.read_agent(agent.directory) or {}).get("missed_events"), 10, "the heartbeat")
    assert state >= 1
    assert sample(agent, "predictor_agent_messages_total", outcome="offered") == 0


@pytest.fixture(scope="module")
def fs_gcs(pubsub_emulator: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    """fake-gcs-server on a filesystem root, as `make run` runs it, notifying a topic of its own."""
    topic = f"fs-{uuid.uuid4().hex[:8]}"
    emulators.ensure_topic(pubsub_emulator.host, PROJECT, topic)
    root = tmp_path_factory.mktemp("fake-gcs-fs")
    target = emulators.PubsubTarget(pubsub_emulator.host, PROJECT, topic)
    service = emulators.start_fake_gcs(emulators.free_port(), root / "data", root / "fake-gcs.log", target)
    try:
        yield service, topic
    finally:
        service.stop()


def test_a_retired_artifact_rewritten_with_a_new_generation_is_not_a_missed_event(
    start_agent, fs_gcs: tuple[Service, str], fitted_model: Pipeline
) -> None:
    gcs, topic = fs_gcs
    bucket = emulators.storage_client(gcs.host, PROJECT).create_bucket(f"fs-{uuid.uuid4().hex[:12]}")
    store = ModelStore(bucket, keys.KEYRING, None)
    agent: Agent = start_agent(store, missed_event_after=2.0, gcs_bucket=bucket.name, model_events_topic=topic)
    old = publish_model(store, fitted_model)
    wait_for(lambda: agent.registry.version == old.version, 30, "the first artifact served")
    new = publish_model(store, fitted_model)
    wait_for(lambda: agent.registry.version == new.version, 30, "the second artifact served")
    name = f"models/model-{old.version}.pkl"
    before = {ref.name: ref.generation for ref in store.list_versions()}
    # the trainer's retirement stamps customTime; the filesystem backend stores that patch as a new generation,
    # and publishes no notification for it
    assert store.retire_older(new.version) == [name]
    assert {ref.name: ref.generation for ref in store.list_versions()}[name] != before[name]
    time.sleep(2.0 + 3 * 0.5)  # past the bound, several reconcile listings later
    assert sample(agent, "predictor_agent_missed_events_total") == 0
    assert agent.events is not None
    assert agent.events.connects == 1
