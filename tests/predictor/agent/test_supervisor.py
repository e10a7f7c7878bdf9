"""`python -m predictor` restarts a crashed model agent: SIGKILL it, /v1/model and /metrics show it down meanwhile,
it comes back, and a model published while it was dead is served by every worker shortly after."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sklearn.pipeline import Pipeline

from core.lineage import Lineage
from core.store import ModelStore
from devstack.emulators import Service
from tests.polling import wait_for
from tests.predictor.conftest import publish
from tests.predictor.test_server import _wait_until_every_worker_serves, serving

pytestmark = pytest.mark.integration


@pytest.fixture
def served(store: ModelStore, fitted_model: Pipeline) -> Lineage:
    return publish(store, fitted_model)


@pytest.fixture
def server(common_env: dict[str, str], pubsub_emulator: Service, served: Lineage, tmp_path: Path) -> Iterator[Service]:
    env = {**common_env, "PUBSUB_EMULATOR_HOST": pubsub_emulator.host, "AGENT_STALE_AFTER": "2"}
    with serving(env, served, tmp_path) as service:
        yield service


def model_info(server: Service) -> dict[str, Any]:
    info: dict[str, Any] = requests.get(f"{server.url}/v1/model", timeout=2).json()
    return info


def test_a_killed_agent_is_shown_down_restarted_and_catches_up(
    server: Service, store: ModelStore, fitted_model: Pipeline
) -> None:
    first = wait_for(
        lambda: (info := model_info(server))["agent"]["alive"] and not info["degraded"] and info,
        30, "a live, subscribed agent", service=server,
    )  # fmt: skip
    assert first["behind"] is False
    pid = first["agent"]["pid"]
    os.kill(pid, signal.SIGKILL)
    newer = publish(store, fitted_model)  # lands while no agent listens
    down = wait_for(lambda: not (info := model_info(server))["agent"]["alive"] and info, 20, "the agent shown down")
    assert any("model agent down" in reason for reason in down["degraded"])
    assert requests.get(f"{server.url}/v2/health/ready", timeout=2).status_code == 200  # still serves the old model
    back = wait_for(
        lambda: (info := model_info(server))["agent"]["alive"] and info["agent"]["pid"] != pid and info,
        30, "the restarted agent", service=server,
    )  # fmt: skip
    assert back["agent"]["pid"] != pid
    _wait_until_every_worker_serves(server, newer.version)
    caught_up = wait_for(lambda: (info := model_info(server))["degraded"] == [] and info, 10, "no degradation")
    assert (caught_up["model_version"], caught_up["behind"]) == (newer.version, False)
    metrics = requests.get(f"{server.url}/metrics", timeout=2).text
    assert "predictor_agent_up 1.0" in metrics
    assert "predictor_workers_behind 0.0" in metrics
    assert "predictor_agent_subscription_connected" in metrics
    assert f"model agent (pid {pid}) exited" in server.log_path.read_text()
