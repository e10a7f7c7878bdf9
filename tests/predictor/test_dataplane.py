"""The transport-neutral data plane: what REST and gRPC both answer with, without either transport."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from core.iris import CLASSES, EXAMPLES
from predictor.dataplane import DataPlane
from predictor.errors import ModelNotReady, NotFound
from tests.predictor.conftest import VERSION, install


def test_before_a_model_loads(dataplane: DataPlane) -> None:
    assert (dataplane.live(), dataplane.ready(), dataplane.model_ready("iris")) == (True, False, False)
    assert dataplane.model_metadata("iris")["versions"] == []
    with pytest.raises(ModelNotReady, match="no verified model"):
        dataplane.infer([list(EXAMPLES["setosa"])])


def test_infer_answers_with_one_model_and_counts_the_predictions(dataplane: DataPlane, fitted_model: Pipeline) -> None:
    install(dataplane, fitted_model)
    rows = [list(EXAMPLES["setosa"]), list(EXAMPLES["virginica"]), list(EXAMPLES["virginica"])]
    answer = dataplane.infer(rows)
    assert (answer.version, answer.class_ids) == (VERSION, [0, 2, 2])
    np.testing.assert_allclose(answer.probabilities, fitted_model.predict_proba(np.array(rows)))
    counted = dataplane.metrics.registry.get_sample_value
    assert counted("predictor_predictions_total", {"species": CLASSES[2]}) == 2.0
    assert dataplane.ready()
    assert dataplane.model_metadata("iris")["versions"] == [VERSION]


def test_an_other_model_name_is_not_found(dataplane: DataPlane) -> None:
    for call in (dataplane.model_metadata, dataplane.model_ready, dataplane.check_model):
        with pytest.raises(NotFound, match="unknown model 'tulip'; this server serves 'iris'"):
            call("tulip")
    assert dataplane.server_metadata() == {
        "name": "iris-predictor", "version": "1.0.0", "extensions": ["binary_tensor_data"],
    }  # fmt: skip
