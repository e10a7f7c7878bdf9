"""predictor.agent.drift: the pod's window takes shipped answers of the serving version only, and follows the
reference of each accepted model (no emulator: prediction log lines and gauges in a registry)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from sklearn.datasets import load_iris

from core.drift import Reference
from core.iris import CLASSES, FEATURES
from core.settings import DriftSettings
from predictor.agent.drift import PodDrift
from predictor.lifecycle import handover
from predictor.predlog.record import Answer, Refusal, to_line
from tests.predictor.conftest import installed

SETTINGS = DriftSettings(drift_window_rows=150, drift_min_rows=150)


def with_reference(fitted_model: Any, version: str) -> Any:
    data = load_iris()
    loaded = installed(fitted_model, version)
    loaded.lineage.reference.update(Reference.of(data.data, np.asarray(CLASSES)[data.target]).to_lineage())
    return loaded


def lines(rows: np.ndarray, version: str, refusals: int = 0) -> bytes:
    answers = [to_line(Answer(f"r{i}", 0.0, "v2", version, [row.tolist()], [i % 3], [[1.0, 0.0, 0.0]]))
               for i, row in enumerate(rows)]  # fmt: skip
    refused = [to_line(Refusal(f"x{i}", 0.0, "v2", "bad", 400, version)) for i in range(refusals)]
    return b"".join(answers + refused) + b"not a record\n"


def sample(registry: CollectorRegistry, name: str, feature: str | None = None) -> float | None:
    return registry.get_sample_value(name, {"feature": feature} if feature else {})


def test_only_answers_of_the_serving_version_fill_the_window_and_shifted_rows_are_flagged(fitted_model: Any) -> None:
    registry = CollectorRegistry()
    drift = PodDrift(SETTINGS, registry)
    assert sample(registry, "predictor_drift_window_rows") == 0
    iris = load_iris().data
    assert drift.observe_lines(lines(iris, "v1")) == 0  # no model accepted yet: nothing to compare with
    drift.use(with_reference(fitted_model, "v1"))
    assert drift.observe_lines(lines(iris, "v0", refusals=5)) == 0  # an older version's answers
    assert drift.observe_lines(lines(iris, "v1", refusals=5)) == 150  # refusals and junk lines left out
    assert sample(registry, "predictor_drift_window_rows") == 150
    assert sample(registry, "predictor_drift_detected", "petal_length") == 0
    shifted = iris.copy()
    shifted[:, FEATURES.index("petal_length")] += 1.5
    drift.observe_lines(lines(shifted, "v1"))
    assert sample(registry, "predictor_drift_detected", "petal_length") == 1
    assert sample(registry, "predictor_drift_detected", "sepal_length") == 0


def test_a_model_without_reference_clears_the_verdicts(fitted_model: Any) -> None:
    registry = CollectorRegistry()
    drift = PodDrift(SETTINGS, registry)
    drift.use(with_reference(fitted_model, "v1"))
    shifted = load_iris().data.copy()
    shifted[:, FEATURES.index("petal_length")] += 1.5
    drift.observe_lines(lines(shifted, "v1"))
    assert sample(registry, "predictor_drift_detected", "petal_length") == 1
    drift.use(installed(fitted_model, "v2"))  # trained before reference statistics existed
    assert sample(registry, "predictor_drift_detected", "petal_length") == 0
    score = sample(registry, "predictor_drift_score", "petal_length")
    assert score is not None
    assert math.isnan(score)
    assert drift.result() is None


def test_every_evaluation_is_handed_over_as_a_snapshot(fitted_model: Any, tmp_path: Path) -> None:
    drift = PodDrift(SETTINGS, CollectorRegistry(), tmp_path)
    assert handover.read_drift(tmp_path) is None  # nothing serves yet
    drift.use(with_reference(fitted_model, "v1"))
    first = json.loads(handover.read_drift(tmp_path) or b"")
    assert (first["version"], first["window_rows"]) == ("v1", 0)
    assert first["features"]["petal_length"] == {"score": None, "threshold": 0.25, "drifted": False}
    shifted = load_iris().data.copy()
    shifted[:, FEATURES.index("petal_length")] += 1.5
    drift.observe_lines(lines(shifted, "v1"))
    snapshot = json.loads(handover.read_drift(tmp_path) or b"")
    assert snapshot["window_rows"] == 150
    assert snapshot["features"]["petal_length"]["drifted"] is True
    assert snapshot["features"]["sepal_length"]["drifted"] is False
    assert set(snapshot["features"]) == {*FEATURES, "predicted_class"}
    assert snapshot["updated"].endswith("Z")
    drift.use(installed(fitted_model, "v2"))  # no reference statistics: no features
    assert json.loads(handover.read_drift(tmp_path) or b"").keys() == {"updated", "version", "window_rows"}
