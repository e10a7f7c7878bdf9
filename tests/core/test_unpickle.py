"""core.unpickle: only the exact globals of the trainer's pipeline; a hostile pickle runs nothing."""

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


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_every_protocol_of_the_trainers_pipeline_loads(fitted_model: Pipeline, protocol: int) -> None:
    clone = unpickle.loads(pickle.dumps(fitted_model, protocol=protocol))
    np.testing.assert_array_equal(clone.predict_proba(np.eye(4)), fitted_model.predict_proba(np.eye(4)))


def test_other_estimators_are_refused() -> None:
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(np.eye(4), ["a", "b", "a", "b"])
    with pytest.raises(pickle.UnpicklingError, match="RandomForestClassifier is not allowed"):
        unpickle.loads(pickle.dumps(model))


def _stack_global(module: str, name: str, *args: str) -> bytes:
    """A protocol-4 pickle calling `module.name(*args)`, with a dotted name as STACK_GLOBAL allows."""

    def text(value: str) -> bytes:
        raw = value.encode()
        return pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw

    call = b"".join(text(a) for a in args)
    return b"\x80\x04" + text(module) + text(name) + pickle.STACK_GLOBAL + pickle.MARK + call + pickle.TUPLE + b"R."


def test_a_dotted_name_through_an_allowed_package_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    data = _stack_global("sklearn", "os.system", f"touch {marker}")
    with pytest.raises(pickle.UnpicklingError, match=r"global sklearn\.os\.system is not allowed"):
        unpickle.loads(data)
    assert not marker.exists()


def test_the_dotted_name_pickle_would_run_without_the_allowlist(tmp_path: Path) -> None:
    """The hostile bytes above are real: plain pickle executes them (so the refusal is what protects us)."""
    marker = tmp_path / "marker"
    pickle.loads(_stack_global("sklearn", "os.system", f"touch {marker}"))
    assert marker.exists()


@pytest.mark.parametrize(
    ("module", "name", "ok"),
    [
        ("sklearn.pipeline", "Pipeline", True),
        ("numpy", "dtype", True),
        ("numpy._core.multiarray", "_reconstruct", True),
        ("sklearn.preprocessing._data", "StandardScaler", True),
        ("sklearn", "os.system", False),
        ("sklearn.pipeline", "Pipeline.__init__.__globals__", False),
        ("scipy.stats._distn_infrastructure", "rv_continuous_frozen", False),
        ("scipy.stats._continuous_distns", "norm_gen", False),
        ("sklearn.utils", "Bunch", False),
        ("collections", "OrderedDict", False),
        ("copyreg", "_reconstructor", False),
        ("builtins", "set", False),
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
