"""The verified NumPy shortcut agrees with scikit-learn's predict_proba, and unknown models keep their own method."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from core.iris import CLASSES, MAX_CM
from predictor import fastpath

IRIS = load_iris()
LABELS = np.asarray(CLASSES)[IRIS.target]


def fitted(*steps) -> Pipeline:
    return make_pipeline(*steps).fit(IRIS.data, LABELS)


@settings(max_examples=200, deadline=None)
@given(x=arrays(np.float64, st.tuples(st.integers(1, 50), st.just(4)), elements=st.floats(0, MAX_CM)))
def test_shortcut_matches_predict_proba(fitted_model: Pipeline, x: np.ndarray) -> None:
    proba = fastpath.compile_proba(fitted_model)
    assert proba.__qualname__ == "_scaled_logistic.<locals>.proba"
    np.testing.assert_allclose(proba(x), fitted_model.predict_proba(x), rtol=1e-9, atol=1e-12)


def test_the_input_array_is_not_modified(fitted_model: Pipeline) -> None:
    x = np.array([[5.1, 3.5, 1.4, 0.2]])
    fastpath.compile_proba(fitted_model)(x)
    assert x.tolist() == [[5.1, 3.5, 1.4, 0.2]]


def test_bare_logistic_regression_and_no_centering_get_the_shortcut() -> None:
    for model in (
        fitted(LogisticRegression(max_iter=1000)),
        fitted(StandardScaler(with_mean=False), LogisticRegression(max_iter=1000)),
    ):
        assert fastpath.compile_proba(model).__qualname__.startswith("_scaled_logistic")


def test_other_models_keep_their_own_predict_proba() -> None:
    for model in (
        fitted(DecisionTreeClassifier(random_state=0)),
        fitted(MinMaxScaler(), LogisticRegression(max_iter=1000)),
        fitted(StandardScaler(), StandardScaler(), LogisticRegression(max_iter=1000)),
    ):
        proba = fastpath.compile_proba(model)
        assert proba.__qualname__ == "_sklearn.<locals>.proba"
        np.testing.assert_array_equal(proba(IRIS.data[:5]), model.predict_proba(IRIS.data[:5]))


def test_a_model_the_shortcut_would_get_wrong_is_not_shortcut() -> None:
    """The load-time comparison, not the structure check, catches a model whose own answers differ."""
    model = LogisticRegression(max_iter=1000).fit(IRIS.data, LABELS)
    original = model.predict_proba
    model.predict_proba = lambda x: original(x)[:, ::-1]
    assert fastpath.compile_proba(model).__qualname__ == "_sklearn.<locals>.proba"
