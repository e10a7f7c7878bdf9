"""core.unpickle: only scikit-learn / NumPy / SciPy globals; a hostile pickle runs nothing."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from core import unpickle


class Payload:
    """Pickles as a call of `func(*args)`: what a hostile artifact would do."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def _touch(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('pwned')"


def _runstring() -> Any:
    from numpy.testing._private.utils import runstring

    return runstring


@pytest.mark.parametrize(
    "build",
    [
        lambda m: Payload(os.system, f"touch {m}"),
        lambda m: Payload(builtins.eval, _touch(m)),
        lambda m: Payload(builtins.exec, _touch(m)),
        lambda m: Payload(subprocess.call, ["touch", str(m)]),
        lambda m: Payload(_runstring(), _touch(m), {}),
        lambda m: Payload(np.save, str(m), np.zeros(1)),
        lambda m: [1, {"nested": Payload(os.system, f"touch {m}")}],
    ],
    ids=["os.system", "eval", "exec", "subprocess", "numpy.testing.runstring", "numpy.save", "nested"],
)
def test_hostile_pickle_is_refused_and_runs_nothing(build: Any, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    data = pickle.dumps(build(marker))
    with pytest.raises(pickle.UnpicklingError, match="is not allowed in a model artifact"):
        unpickle.loads(data)
    assert not marker.exists()
    assert list(tmp_path.iterdir()) == []


def test_fitted_pipeline_loads_and_predicts_the_same(fitted_model: Pipeline) -> None:
    clone = unpickle.loads(pickle.dumps(fitted_model, protocol=pickle.HIGHEST_PROTOCOL))
    x = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.1, 5.8, 2.2]])
    assert list(clone.predict(x)) == list(fitted_model.predict(x))
    np.testing.assert_array_equal(clone.predict_proba(x), fitted_model.predict_proba(x))


def test_other_sklearn_estimators_load() -> None:
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(np.eye(4), ["a", "b", "a", "b"])
    assert list(unpickle.loads(pickle.dumps(model)).predict(np.eye(4))) == ["a", "b", "a", "b"]


@pytest.mark.parametrize(
    ("module", "name", "ok"),
    [
        ("sklearn.pipeline", "Pipeline", True),
        ("numpy", "dtype", True),
        ("numpy._core.multiarray", "_reconstruct", True),
        ("builtins", "set", True),
        ("builtins", "getattr", False),
        ("builtins", "__import__", False),
        ("numpyevil", "x", False),
        ("sklearnx.y", "x", False),
        ("_codecs_hack", "x", False),
        ("numpy.testing._private.utils", "runstring", False),
        ("numpy", "load", False),
        ("numpy", "memmap", False),
        ("numpy.f2py", "compile", False),
        ("posix", "system", False),
    ],
)
def test_allowed(module: str, name: str, ok: bool) -> None:
    assert unpickle.allowed(module, name) is ok
