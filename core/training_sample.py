"""The training sample a model carries for the web page's petal scatter: up to MAX_POINTS evenly spaced rows of the
data it was fitted on (petal length, petal width, class index), attached by the trainer to the fitted Pipeline as
the attribute ATTRIBUTE, so it is inside the signed artifact.

It is a float32 array of shape (n, 3), which the unpickle allowlist already loads (core.unpickle: 3.6 KB at 300
rows). A model trained before it existed has none. The predictor checks shape and values before serving it
(``read``): a signed artifact is trusted code-free data, not trusted to be well formed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.iris import CLASSES, FEATURES, MAX_CM

ATTRIBUTE = "iris_training_sample_"
"""The fitted Pipeline's attribute that holds the sample (trailing underscore: set by fitting, as scikit-learn's)."""
COLUMNS = ("petal_length", "petal_width")
"""The measurements of each point, in order; the third column is the class index into core.iris.CLASSES."""
MAX_POINTS = 300
"""Most rows a sample holds (a scatter of the whole iris set; 3.6 KB in the artifact)."""


class BadSample(ValueError):
    """A model's training sample is not an array of (petal length, petal width, class index) rows."""


def take(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Up to MAX_POINTS evenly spaced rows of `features` (columns in FEATURES order) with their class names `labels`:
    float32 (n, 3) of petal length, petal width and class index."""
    count = len(labels)
    rows = np.unique(np.linspace(0, count - 1, min(count, MAX_POINTS)).round().astype(np.int64))
    columns = [FEATURES.index(name) for name in COLUMNS]
    classes = [CLASSES.index(str(label)) for label in np.asarray(labels)[rows]]
    sample = np.column_stack([np.asarray(features, dtype=np.float64)[rows][:, columns], classes])
    return sample.astype(np.float32).reshape(-1, len(COLUMNS) + 1)


def attach(model: Any, features: np.ndarray, labels: np.ndarray) -> None:
    """Set `model`'s ATTRIBUTE to the sample of the rows it was fitted on."""
    setattr(model, ATTRIBUTE, take(features, labels))


def read(model: Any) -> list[list[float]] | None:
    """The checked sample of `model` as JSON-ready rows [petal_length, petal_width, class_index], or None when the
    model carries none; BadSample when it is not float rows of in-range measurements and class indices."""
    sample = getattr(model, ATTRIBUTE, None)
    if sample is None:
        return None
    if not isinstance(sample, np.ndarray) or sample.dtype.kind != "f":
        raise BadSample(f"{type(sample).__name__} of {getattr(sample, 'dtype', None)} where float rows belong")
    if sample.ndim != 2 or sample.shape[1] != len(COLUMNS) + 1 or not 0 < sample.shape[0] <= MAX_POINTS:
        raise BadSample(f"shape {sample.shape}, want (1 to {MAX_POINTS}, {len(COLUMNS) + 1})")
    points = sample.astype(np.float64).tolist()
    for number, (length, width, index) in enumerate(points):
        if not all(math.isfinite(v) and 0 <= v <= MAX_CM for v in (length, width)):
            raise BadSample(f"row {number}: measurements {length}, {width} outside 0 to {MAX_CM:g} cm")
        if index not in range(len(CLASSES)):
            raise BadSample(f"row {number}: class index {index} is not one of 0 to {len(CLASSES) - 1}")
    return [[round(length, 4), round(width, 4), int(index)] for length, width, index in points]
