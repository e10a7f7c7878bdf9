"""The estimator, its evaluation on held-out data and the quality gate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from core.schema import CLASSES
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


def build() -> Pipeline:
    """Standardized features into a multinomial logistic regression."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def fit_and_evaluate(dataset: Dataset, settings: TrainerSettings) -> Evaluated:
    """Fit on a stratified split and score on the held-out part."""
    counts = {c: int(np.count_nonzero(dataset.labels == c)) for c in CLASSES}
    if min(counts.values()) < 2:
        raise InsufficientData(f"every species needs at least 2 valid rows, have {counts}")
    x_train, x_test, y_train, y_test = train_test_split(
        dataset.features, dataset.labels, test_size=settings.test_fraction,
        stratify=dataset.labels, random_state=settings.random_seed,
    )  # fmt: skip
    with threadpool_limits(limits=1, user_api="blas"):  # 4 features: threaded BLAS only adds contention
        model = build().fit(x_train, y_train)
    predicted = model.predict(x_test)
    metrics = {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "f1_macro": float(f1_score(y_test, predicted, average="macro")),
        "train_rows": float(len(y_train)),
        "test_rows": float(len(y_test)),
    }
    return Evaluated(model, metrics, x_test, y_test)


def gate(candidate: Evaluated, current: Any | None, settings: TrainerSettings) -> str | None:
    """Why the candidate must not be published, or None when it passes."""
    accuracy = candidate.metrics["accuracy"]
    if accuracy < settings.accuracy_floor:
        return f"accuracy {accuracy:.4f} below floor {settings.accuracy_floor}"
    if current is None:
        return None
    baseline = float(accuracy_score(candidate.y_test, current.predict(candidate.x_test)))
    candidate.metrics["baseline_accuracy"] = baseline
    if accuracy < baseline - settings.regression_tolerance:
        return f"accuracy {accuracy:.4f} regresses from current {baseline:.4f} beyond {settings.regression_tolerance}"
    return None
