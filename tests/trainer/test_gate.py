"""The quality gate's floor on held-out rows: a shortfall rejects only when it is significant (a few dozen held-out
rows make 0.88 one unlucky row away from 0.91), and every salt of the seeded iris data publishes a first model."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.datasets import load_iris

from tests import keys
from trainer.model import Evaluated, build, floor_p, gate, held_out
from trainer.settings import TrainerSettings

SETTINGS = TrainerSettings(gcs_bucket="iris-gate", **keys.settings())


def evaluated(right: int, rows: int) -> Evaluated:
    y_test = np.zeros(rows, dtype=np.int64)
    predicted = np.where(np.arange(rows) < right, 0, 1)
    accuracy = right / rows
    return Evaluated(build(), {"accuracy": accuracy}, np.zeros((rows, 4)), y_test, predicted)


@pytest.mark.parametrize(
    ("right", "rows", "rejected"), [(30, 34, False), (28, 34, False), (27, 34, True), (0, 34, True)]
)
def test_a_shortfall_rejects_only_when_significant(right: int, rows: int, rejected: bool) -> None:
    candidate = evaluated(right, rows)
    reason = gate(candidate, None, SETTINGS)
    assert (reason is not None) is rejected
    assert candidate.metrics["floor_p_value"] == pytest.approx(floor_p(right, rows, 0.9))
    if rejected:
        assert reason is not None
        assert reason.startswith("accuracy ")
        assert f"({right} of {rows} held-out rows right; p=" in reason


def test_significance_1_rejects_every_shortfall_and_meeting_the_floor_needs_no_test() -> None:
    strict = SETTINGS.model_copy(update={"floor_significance": 1.0})
    assert gate(evaluated(30, 34), None, strict) is not None
    met = evaluated(31, 34)
    assert gate(met, None, strict) is None
    assert "floor_p_value" not in met.metrics
    assert floor_p(33, 34, 1.0) == 0.0  # a floor of 1.0: one wrong row is proof


def test_the_seeded_iris_data_passes_the_floor_for_every_salt() -> None:
    """`make run` makes a random salt per stack; the first model must not depend on the salt's luck."""
    features, labels = load_iris(return_X_y=True)
    rng = random.Random(0)
    for _ in range(60):
        test = held_out(features, SETTINGS.test_fraction, rng.getrandbits(64))
        model = build().fit(features[~test], labels[~test])
        predicted = model.predict(features[test])
        candidate = Evaluated(model, {"accuracy": float(np.mean(predicted == labels[test]))}, features[test],
                              labels[test], predicted)  # fmt: skip
        assert gate(candidate, None, SETTINGS) is None, candidate.metrics
