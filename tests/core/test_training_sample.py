"""core.training_sample: evenly spaced rows of the training data, signed with the model, checked before serving."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.datasets import load_iris

from core import training_sample, unpickle
from core.iris import CLASSES, FEATURES
from trainer.model import build


def iris() -> tuple[np.ndarray, np.ndarray]:
    data = load_iris()
    return data.data, np.asarray(CLASSES)[data.target]


def test_all_rows_of_a_small_set_as_petal_length_width_and_class_index() -> None:
    features, labels = iris()
    sample = training_sample.take(features, labels)
    assert sample.dtype == np.float32
    assert sample.shape == (150, 3)
    petals = [FEATURES.index("petal_length"), FEATURES.index("petal_width")]
    np.testing.assert_allclose(sample[:, :2], features[:, petals].astype(np.float32))
    assert [CLASSES[int(i)] for i in sample[:, 2]] == labels.tolist()


def test_a_large_set_gives_max_points_evenly_spaced_from_first_to_last() -> None:
    _features, labels = iris()
    rows = np.arange(1000, dtype=np.float64)
    big = np.column_stack([rows, rows, rows / 100, rows / 1000])
    sample = training_sample.take(big, np.resize(labels, 1000))
    assert sample.shape == (training_sample.MAX_POINTS, 3)
    taken = np.round(sample[:, 0].astype(np.float64) * 100).astype(int)
    assert (taken[0], taken[-1]) == (0, 999)
    assert set(np.diff(taken)) <= {3, 4}  # 999 / 299 = 3.34 apart, none twice


def test_no_rows_give_an_empty_sample() -> None:
    assert training_sample.take(np.zeros((0, 4)), np.asarray([], dtype=str)).shape == (0, 3)


def test_read_gives_json_rows_and_none_without_a_sample() -> None:
    features, labels = iris()
    model = SimpleNamespace()
    assert training_sample.read(model) is None
    training_sample.attach(model, features, labels)
    points = training_sample.read(model)
    assert points is not None
    assert len(points) == 150
    assert points[0] == [1.4, 0.2, 0]
    assert points[-1] == [5.1, 1.8, 2]
    assert all(type(p[2]) is int for p in points)


BAD = {
    "a list": [[1.0, 0.2, 0.0]],
    "integers": np.asarray([[1, 0, 0]]),
    "objects": np.asarray([[1.0, 0.2, 0]], dtype=object),
    "one column too few": np.zeros((3, 2), np.float32),
    "flat": np.zeros(3, np.float32),
    "empty": np.zeros((0, 3), np.float32),
    "too many rows": np.zeros((training_sample.MAX_POINTS + 1, 3), np.float32),
    "NaN": np.asarray([[np.nan, 0.2, 0]], np.float32),
    "negative": np.asarray([[1.4, -0.2, 0]], np.float32),
    "a metre": np.asarray([[101, 0.2, 0]], np.float32),
    "class 3": np.asarray([[1.4, 0.2, 3]], np.float32),
    "class 0.5": np.asarray([[1.4, 0.2, 0.5]], np.float32),
}


@pytest.mark.parametrize("value", BAD.values(), ids=BAD.keys())
def test_read_refuses_what_is_not_a_sample(value: object) -> None:
    with pytest.raises(training_sample.BadSample):
        training_sample.read(SimpleNamespace(**{training_sample.ATTRIBUTE: value}))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_pipeline_with_its_sample_passes_the_unpickle_allowlist(protocol: int) -> None:
    features, labels = iris()
    model = build().fit(features, labels)
    training_sample.attach(model, features, labels)
    loaded = unpickle.loads(pickle.dumps(model, protocol=protocol))
    assert training_sample.read(loaded) == training_sample.read(model)
    assert loaded.predict(features[:1]).tolist() == ["setosa"]
