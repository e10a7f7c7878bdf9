"""The estimator, its evaluation on held-out data and the quality gate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from core import training_sample
from core.iris import CLASSES
from trainer.data import Dataset
from trainer.settings import TrainerSettings


class InsufficientData(ValueError):
    """The data set cannot train a model of every species."""


@dataclass
class Evaluated:
    """A fitted model, its metrics and the held-out split it was scored on."""

    model: Pipeline
    metrics: dict[str, float]
    x_test: np.ndarray
    y_test: np.ndarray
    predicted: np.ndarray
    """The model's predictions for x_test (scored once, reused by the gate)."""


def build() -> Pipeline:
    """Standardized features into a multinomial logistic regression."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def held_out(features: np.ndarray, fraction: float, salt: int) -> np.ndarray:
    """Which rows are test rows: a hash of each row's measurements decides, so a row never changes side.

    Every model trained with the same fraction and salt has therefore never seen any of today's test rows, however
    the data grew in between, and identical measurements always fall on the same side.
    """
    h = np.full(len(features), np.uint64(salt & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    for column in np.ascontiguousarray(features, dtype=np.float64).view(np.uint64).T:
        h = (h ^ column) + _MIX[0]  # splitmix64 finaliser per column
        h = (h ^ (h >> np.uint64(30))) * _MIX[1]
        h = (h ^ (h >> np.uint64(27))) * _MIX[2]
        h ^= h >> np.uint64(31)
    return (h >> np.uint64(11)).astype(np.float64) < fraction * 2.0**53


def fit_and_evaluate(dataset: Dataset, settings: TrainerSettings) -> Evaluated:
    """Fit on the rows outside held_out() and score on the held-out ones; the metrics carry the gate's floor
    (`accuracy_floor`, signed with the rest, so live accuracy can be shown against it)."""
    test = held_out(dataset.features, settings.test_fraction, settings.split_salt_value())
    x_train, x_test = dataset.features[~test], dataset.features[test]
    y_train, y_test = dataset.labels[~test], dataset.labels[test]
    counts = {c: (int(np.count_nonzero(y_train == c)), int(np.count_nonzero(y_test == c))) for c in CLASSES}
    if min(min(pair) for pair in counts.values()) < 1:
        raise InsufficientData(f"every species needs training and held-out rows, have (train, test) {counts}")
    with threadpool_limits(limits=1, user_api="blas"):  # 4 features: threaded BLAS only adds contention
        model = build().fit(x_train, y_train)
    training_sample.attach(model, x_train, y_train)  # signed with it: the page's petal scatter
    predicted = model.predict(x_test)
    metrics = {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "f1_macro": float(f1_score(y_test, predicted, average="macro")),
        "train_rows": float(len(y_train)),
        "test_rows": float(len(y_test)),
        "accuracy_floor": float(settings.accuracy_floor),
    }
    return Evaluated(model, metrics, x_test, y_test, predicted)


def gate(candidate: Evaluated, current: Any | None, settings: TrainerSettings) -> str | None:
    """Why the candidate must not be published, or None when it passes."""
    accuracy = candidate.metrics["accuracy"]
    if accuracy < settings.accuracy_floor:
        rows = len(candidate.y_test)
        right = int(np.sum(candidate.predicted == candidate.y_test))
        p_value = floor_p(right, rows, settings.accuracy_floor)
        candidate.metrics["floor_p_value"] = p_value
        if p_value <= settings.floor_significance:
            return (
                f"accuracy {accuracy:.4f} below floor {settings.accuracy_floor}"
                f" ({right} of {rows} held-out rows right; p={p_value:.3g})"
            )
    if current is None:
        return None
    current_right = current.predict(candidate.x_test) == candidate.y_test
    candidate_right = candidate.predicted == candidate.y_test
    baseline = float(np.mean(current_right))
    candidate.metrics["baseline_accuracy"] = baseline
    worse, better = int(np.sum(current_right & ~candidate_right)), int(np.sum(candidate_right & ~current_right))
    p_value = mcnemar_p(worse, better)
    if accuracy < baseline - settings.regression_tolerance and p_value <= settings.regression_significance:
        return (
            f"accuracy {accuracy:.4f} regresses from current {baseline:.4f} beyond {settings.regression_tolerance}"
            f" (wrong on {worse} held-out rows the current model gets right, right on {better}; p={p_value:.3g})"
        )
    return None


def floor_p(right: int, rows: int, floor: float) -> float:
    """One-sided exact binomial p-value that a model right on `right` of `rows` held-out rows is below `floor`."""
    if rows == 0:
        return 1.0
    return float(binomtest(right, rows, floor, alternative="less").pvalue)


def mcnemar_p(worse: int, better: int) -> float:
    """One-sided exact McNemar p-value that the candidate is worse, from the rows on which the two models disagree."""
    if worse + better == 0:
        return 1.0
    return float(binomtest(worse, worse + better, 0.5, alternative="greater").pvalue)
