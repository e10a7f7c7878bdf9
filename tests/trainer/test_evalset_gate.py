"""The trusted set's gate on fitted models: tolerances per class and overall, the floor, and the compact record."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from core.iris import CLASSES
from core.lineage import Lineage
from core.states import GateReason
from tests import keys
from tests.core.test_signing_layout_lineage import lineage
from trainer import evalset
from trainer.settings import TrainerSettings

SETTINGS = TrainerSettings(**{k.lower(): v for k, v in keys.env().items()})


class Mislabels:
    """A model right on every flower of the trusted set but the first `count[c]` of each class c (called the next
    class)."""

    def __init__(self, trusted: evalset.TrustedSet, count: dict[str, int]) -> None:
        self.trusted, self.wrong = trusted, np.zeros(trusted.rows, dtype=bool)
        for c, n in count.items():
            self.wrong[np.flatnonzero(trusted.labels == c)[:n]] = True

    def predict(self, x: np.ndarray) -> np.ndarray:
        assert x is self.trusted.features
        labels = np.asarray(self.trusted.labels, dtype=object)
        shifted = np.asarray([CLASSES[(CLASSES.index(c) + 1) % 3] for c in labels], dtype=object)
        return np.where(self.wrong, shifted, labels)


@pytest.fixture(scope="module")
def trusted() -> evalset.TrustedSet:
    rows = evalset.iris_rows()
    return evalset.TrustedSet("20260101T000000000000Z", "k", np.asarray([r.values for r in rows]),
                              np.asarray([r.label for r in rows]))  # fmt: skip


def answering(trusted: evalset.TrustedSet, **wrong: int) -> Any:
    return Mislabels(trusted, wrong)


def test_within_tolerance_passes(trusted: evalset.TrustedSet) -> None:
    verdict = evalset.gate(answering(trusted, versicolor=3), answering(trusted), trusted,
                           SETTINGS)  # fmt: skip
    assert verdict.reason is None
    assert verdict.evaluation == {"set": trusted.version, "rows": 150, "accuracy": 0.98,
                                  "recall": {"setosa": 1.0, "versicolor": 0.94, "virginica": 1.0}}  # fmt: skip
    assert verdict.baseline is not None
    assert verdict.baseline["accuracy"] == 1.0


def test_one_class_beyond_the_recall_tolerance_is_refused(trusted: evalset.TrustedSet) -> None:
    verdict = evalset.gate(answering(trusted, virginica=4), answering(trusted), trusted,
                           SETTINGS)  # fmt: skip
    assert verdict.reason is GateReason.EVAL_RECALL_REGRESSION
    assert verdict.message == (
        "eval_recall_regression: virginica recall 0.9200 on trusted set 20260101T000000000000Z regresses from the"
        " serving model's 1.0000 beyond 0.06"
    )
    wider = SETTINGS.model_copy(update={"eval_recall_tolerance": 0.08, "eval_accuracy_tolerance": 0.03})
    assert evalset.gate(answering(trusted, virginica=4), answering(trusted), trusted,
                        wider).reason is None  # fmt: skip


def test_a_regression_spread_over_classes_is_refused_overall(trusted: evalset.TrustedSet) -> None:
    candidate = answering(trusted, setosa=2, versicolor=2, virginica=2)  # 0.04 each, 0.04 overall
    verdict = evalset.gate(candidate, answering(trusted), trusted, SETTINGS)
    assert verdict.reason is GateReason.EVAL_ACCURACY_REGRESSION
    assert "accuracy 0.9600" in (verdict.message or "")


def test_without_a_serving_model_only_the_floor_applies(trusted: evalset.TrustedSet) -> None:
    assert evalset.gate(answering(trusted, versicolor=10), None, trusted, SETTINGS).reason is None
    poor = answering(trusted, versicolor=30)  # accuracy 0.8
    assert evalset.gate(poor, None, trusted, SETTINGS).reason is GateReason.EVAL_ACCURACY_FLOOR


def test_a_real_model_scores_on_the_set(trusted: evalset.TrustedSet, fitted_model: Pipeline) -> None:
    figures = evalset.score(fitted_model, trusted)
    assert figures.accuracy > 0.95
    assert set(figures.recall) == set(CLASSES)


def test_the_evaluation_is_signed_and_artifacts_without_it_still_verify() -> None:
    old = lineage()
    assert "evaluation" not in old.to_metadata()
    assert Lineage.from_metadata(old.to_metadata(), "n") == old
    evaluation = {"set": "20260101T000000000000Z", "rows": 150, "accuracy": 0.98, "recall": {"setosa": 1.0}}
    new = replace(old, evaluation=evaluation).signed_with(keys.KEYRING)
    metadata = new.to_metadata()
    assert (
        metadata["evaluation"] == '{"set":"20260101T000000000000Z","rows":150,"accuracy":0.98,"recall":{"setosa":1.0}}'
    )
    assert Lineage.from_metadata(metadata, "n") == new
    assert new.verifies(keys.READER)
    forged = Lineage.from_metadata(metadata | {"evaluation": metadata["evaluation"].replace("0.98", "0.99")}, "n")
    assert not forged.verifies(keys.READER)
    stripped = {k: v for k, v in metadata.items() if k != "evaluation"}
    assert not Lineage.from_metadata(stripped, "n").verifies(keys.READER)
