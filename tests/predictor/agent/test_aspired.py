"""Pin, unpin and reload decided once per pod by the agent: a worker hands the request over, every worker follows.

In process: the agent on this test's bucket (fake-gcs-server) handing over into `tmp_path`, and two worker apps as
``python -m predictor`` builds them, each following the handover in its own thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sklearn.pipeline import Pipeline

from core.store import ModelStore
from predictor.agent import service
from predictor.agent.aspired import AspiredVersions
from predictor.agent.service import Agent
from predictor.http import extensions
from predictor.http.app import create_app
from predictor.lifecycle import handover
from predictor.lifecycle.handover import Pointer
from predictor.settings import PredictorSettings
from tests.polling import wait_for
from tests.predictor.conftest import Admin, publish


@pytest.fixture
def pod_settings(predictor_settings: PredictorSettings, tmp_path: Path) -> PredictorSettings:
    """The agent's startup load retries every half second (the models are published once it runs) and nothing
    else reconciles: only the admin calls change what the pod serves."""
    return predictor_settings.model_copy(
        update={"handover_dir": str(tmp_path), "reconcile_interval_without_events": 300, "load_retry_max": 0.5}
    )


@pytest.fixture
def workers(pod_settings: PredictorSettings, store: ModelStore) -> Iterator[list[Flask]]:
    """Two worker apps of one pod, following its handover."""
    apps = [create_app(pod_settings, store, pod_workers=2) for _ in range(2)]
    followers = [extensions.follower(app) for app in apps]
    for follower in followers:
        assert follower is not None
        follower.start()
    yield apps
    for follower in followers:
        assert follower is not None
        follower.stop()


@pytest.fixture
def agent(pod_settings: PredictorSettings, store: ModelStore, tmp_path: Path) -> Iterator[Agent]:
    agent = service.build(pod_settings, tmp_path, store)
    agent.start()
    yield agent
    agent.stop()


def served(apps: list[Flask]) -> list[tuple[str | None, str | None]]:
    return [(extensions.registry(app).version, extensions.registry(app).pinned) for app in apps]


@pytest.mark.integration
def test_a_pin_through_one_worker_is_the_pods(
    store: ModelStore, fitted_model: Pipeline, tmp_path: Path, workers: list[Flask], agent: Agent
) -> None:
    old, new = publish(store, fitted_model), publish(store, fitted_model)
    wait_for(lambda: served(workers) == [(new.version, None)] * 2, 10, "both workers serving the newest")
    admin = Admin(workers[0].test_client())

    pinned = admin.pin(old.version)
    assert pinned.status_code == 200
    assert (pinned.get_json()["model_version"], pinned.get_json()["pinned"]) == (old.version, old.version)
    assert (pinned.get_json()["record"]["outcome"], pinned.headers["X-Model-Version"]) == ("swapped", old.version)
    assert (agent.registry.version, agent.registry.pinned) == (old.version, old.version)
    pointer = Pointer.read(tmp_path)
    assert pointer is not None
    assert (pointer.ref.version, pointer.pinned, pointer.trigger) == (old.version, old.version, "admin")
    wait_for(lambda: served(workers) == [(old.version, old.version)] * 2, 5, "the other worker following the pin")
    assert handover.worker_versions(tmp_path) == {os.getpid(): old.version}  # in process: both apps share a pid
    again = admin.pin(old.version).get_json()["record"]
    assert (again["outcome"], again["reason"]) == ("ignored", "already_serving")  # idempotent

    missing = admin.pin("20200101T000000000000Z")
    assert (missing.status_code, missing.get_json()["record"]["reason"]) == (422, "not_found")
    assert served(workers) == [(old.version, old.version)] * 2  # the pin holds

    newest = publish(store, fitted_model)
    reloaded = Admin(workers[1].test_client()).reload().get_json()
    assert (reloaded["model_version"], reloaded["pinned"], reloaded["record"]) == (old.version, old.version, None)

    unpinned = Admin(workers[1].test_client()).unpin()
    assert (unpinned.status_code, unpinned.get_json()["model_version"]) == (200, newest.version)
    assert unpinned.get_json()["pinned"] is None
    wait_for(lambda: served(workers) == [(newest.version, None)] * 2, 5, "both workers back on the newest")
    assert admin.reload().get_json()["record"] is None  # nothing newer: idempotent
    info = workers[0].test_client().get("/v1/model").get_json()
    assert (info["model_version"], info["pinned"], info["behind"]) == (newest.version, None, False)


@pytest.mark.integration
def test_an_unpin_with_nothing_newer_still_reaches_every_worker(
    store: ModelStore, fitted_model: Pipeline, workers: list[Flask], agent: Agent
) -> None:
    """Pinning the version already served changes no artifact: the agent points again so the workers learn the pin,
    and learn its end the same way."""
    only = publish(store, fitted_model)
    wait_for(lambda: served(workers) == [(only.version, None)] * 2, 10, "both workers serving it")
    admin = Admin(workers[0].test_client())
    assert admin.pin(only.version).get_json()["pinned"] == only.version
    wait_for(lambda: served(workers) == [(only.version, only.version)] * 2, 5, "the pin in both workers")
    assert admin.unpin().get_json()["pinned"] is None
    wait_for(lambda: served(workers) == [(only.version, None)] * 2, 5, "the unpin in both workers")


def test_without_an_agent_a_pin_is_a_clear_503(workers: list[Flask]) -> None:
    response = Admin(workers[0].test_client()).pin("20260101T000000000000Z")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "agent_unavailable"


def test_an_agent_that_does_not_decide_is_a_504_and_the_request_is_withdrawn(
    workers: list[Flask], tmp_path: Path
) -> None:
    handover.write_agent(tmp_path, {"at": time.time(), "version": None})  # alive, but never decides
    follower = extensions.follower(workers[0])
    assert follower is not None
    follower.decision_timeout = 0.3
    response = Admin(workers[0].test_client()).reload()
    assert response.status_code == 504
    assert response.get_json()["error"]["code"] == "decision_timeout"
    assert "withdrawn" in response.get_json()["error"]["message"]
    assert handover.requests(tmp_path) == []  # nothing left for an agent that comes back later


def test_the_agent_answers_a_malformed_request_with_400(
    pod_settings: PredictorSettings, store: ModelStore, tmp_path: Path
) -> None:
    agent = service.build(pod_settings, tmp_path, store)  # not started: decided by hand
    aspired = agent.aspired
    assert isinstance(aspired, AspiredVersions)
    for request in ({"action": "pin", "version": "latest"}, {"action": "drop"}, None):
        decision = aspired.decide(request)
        assert (decision["error"]["status"], decision["error"]["code"]) == (400, "bad_request")
    handover.ask(tmp_path, {"action": "pin", "version": "../../etc"})
    assert aspired.poll() == 1
    assert agent.registry.pinned is None
