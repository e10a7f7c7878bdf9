"""predictor_agent_behind_bucket against fake-gcs-server: the agent's registry against its last listing of models/.

In process: the agent as ``python -m predictor`` builds it (service.build), on this test's bucket with signed
artifacts, handing over into `tmp_path`; its threads are not started, the test runs its reconciles, admin decisions
and heartbeats one by one. A handover file name taken by a directory makes staging one artifact fail (as a full or
broken disk would): the agent cannot serve it, but has not refused it either.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.pipeline import Pipeline

from core import layout
from core.lineage import Lineage
from core.store import ModelStore
from predictor.agent import service
from predictor.agent.service import Agent
from predictor.lifecycle.handover import artifact_file
from predictor.settings import PredictorSettings
from tests.predictor.conftest import publish
from tests.predictor.lifecycle.test_registry import tampered

pytestmark = pytest.mark.integration


@pytest.fixture
def agent(predictor_settings: PredictorSettings, store: ModelStore, tmp_path: Path) -> Iterator[Agent]:
    agent = service.build(predictor_settings.model_copy(update={"handover_dir": str(tmp_path)}), tmp_path, store)
    yield agent
    agent.stop()


def behind(agent: Agent) -> float | None:
    """The gauge after one heartbeat of the agent."""
    agent.tick()
    return agent.registry.metrics.registry.get_sample_value("predictor_agent_behind_bucket")


def blocked(store: ModelStore, lineage: Lineage, handover: Path) -> Path:
    """Make staging `lineage`'s artifact in the handover fail; the obstacle, to remove later."""
    obstacle = handover / artifact_file(store.ref(layout.model_object(lineage.version)))
    (obstacle / "in-the-way").mkdir(parents=True)
    return obstacle


def test_a_refused_newest_artifact_is_not_ahead_but_one_the_agent_cannot_serve_is(
    agent: Agent, store: ModelStore, fitted_model: Pipeline, tmp_path: Path
) -> None:
    assert behind(agent) == 0  # nothing listed yet
    old = publish(store, fitted_model)
    agent.registry.reconcile()
    assert (agent.registry.version, behind(agent)) == (old.version, 0)

    forged = tampered(store, fitted_model, "bad_signature")
    record = agent.registry.reconcile()
    assert record is not None
    assert (record.outcome, record.reason, agent.registry.version) == ("rejected", "bad_signature", old.version)
    assert layout.model_version(forged) > old.version
    assert behind(agent) == 0

    new = publish(store, fitted_model)
    obstacle = blocked(store, new, tmp_path)
    forged_again = tampered(store, fitted_model, "unsigned")  # the newest artifact of all is refused again
    record = agent.registry.reconcile()
    assert record is not None
    assert (record.outcome, agent.registry.version) == ("failed", old.version)
    assert [ref.name for ref in agent.registry.store.list_versions()][-2:] == [layout.model_object(new.version),
                                                                              forged_again]  # fmt: skip
    assert behind(agent) == 1

    shutil.rmtree(obstacle)
    agent.registry.reconcile()
    assert (agent.registry.version, behind(agent)) == (new.version, 0)


def test_a_pinned_pod_is_not_behind(agent: Agent, store: ModelStore, fitted_model: Pipeline, tmp_path: Path) -> None:
    assert agent.aspired is not None
    old, middle = publish(store, fitted_model), publish(store, fitted_model)
    agent.registry.reconcile()
    decided = agent.aspired.decide({"action": "pin", "version": old.version})
    assert (decided["version"], decided["pinned"]) == (old.version, old.version)
    newest = publish(store, fitted_model)
    obstacle = blocked(store, newest, tmp_path)
    assert agent.registry.reconcile() is None  # pinned: the listing sees two newer artifacts, loads neither
    assert behind(agent) == 0

    decided = agent.aspired.decide({"action": "unpin"})
    assert (decided["version"], decided["pinned"]) == (middle.version, None)  # the newest could not be staged
    assert behind(agent) == 1

    shutil.rmtree(obstacle)
    agent.aspired.decide({"action": "reload"})
    assert (agent.registry.version, behind(agent)) == (newest.version, 0)


def test_a_pod_pinned_from_the_start_is_not_behind_even_before_its_pin_serves(
    predictor_settings: PredictorSettings, store: ModelStore, fitted_model: Pipeline, tmp_path: Path
) -> None:
    """PINNED_MODEL_VERSION names a version the agent cannot serve yet: the pod is broken (not ready), not behind."""
    old, newer = publish(store, fitted_model), publish(store, fitted_model)
    blocked(store, old, tmp_path)
    settings = predictor_settings.model_copy(
        update={"handover_dir": str(tmp_path), "pinned_model_version": old.version}
    )
    agent = service.build(settings, tmp_path, store)
    try:
        record = agent.registry.reconcile()
        assert record is not None
        assert (record.outcome, agent.registry.version, agent.registry.pinned) == ("failed", None, old.version)
        assert newer.version > old.version
        assert behind(agent) == 0
    finally:
        agent.stop()
