"""core.unpickle: only the exact globals of the trainer's pipeline; a hostile pickle runs nothing."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from core import unpickle
from core.iris import CLASSES
from trainer.model import build


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


def test_an_object_dtype_array_is_refused(fitted_model: Pipeline) -> None:
    """A pipeline fitted on object labels pickles an object array: refused, where `<U10` labels load."""
    iris = load_iris()
    model = build().fit(iris.data, np.asarray(CLASSES, dtype=object)[iris.target])
    with pytest.raises(pickle.UnpicklingError, match="object dtype"):
        unpickle.loads(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    assert fitted_model[-1].classes_.dtype.kind == "U"


def test_an_artifact_over_the_size_cap_is_refused_unread(fitted_model: Pipeline) -> None:
    data = pickle.dumps(fitted_model, protocol=pickle.HIGHEST_PROTOCOL)
    assert unpickle.loads(data, unpickle.Limits(max_bytes=len(data))) is not None
    with pytest.raises(pickle.UnpicklingError, match="MODEL_MAX_BYTES"):
        unpickle.loads(data, unpickle.Limits(max_bytes=len(data) - 1))


def test_an_array_over_the_allocation_cap_is_refused(fitted_model: Pipeline) -> None:
    data = pickle.dumps(fitted_model, protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(pickle.UnpicklingError, match="MODEL_MAX_ARRAY_BYTES"):
        unpickle.loads(data, unpickle.Limits(max_array_bytes=16))  # the 3x4 coefficients are 96 bytes


HUGE = 2**26
"""Elements of the crafted arrays: 512 MiB of object references (calloc'd by NumPy: resident once anything walks
them, e.g. on use or in a copy)."""


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _text(value: str) -> bytes:
    return b"U" + bytes([len(value)]) + value.encode()


def _array_state(shape: int, dtype: bytes, raw: bytes) -> bytes:
    """BUILD of an empty base array with (1, (shape,), dtype, False, raw)."""
    return b"(K\x01J" + shape.to_bytes(4, "little") + b"\x85" + dtype + b"\x89C" + bytes([len(raw)]) + raw + b"tb"


def _dtype(code: str) -> bytes:
    return _global("numpy", "dtype") + _text(code) + b"\x89\x88\x87R"


CRAFTED = {
    # _reconstruct(ndarray, (HUGE,), "O"): the base array itself is the allocation (65 bytes of pickle)
    "object-reconstruct": b"\x80\x02" + _global("numpy.core.multiarray", "_reconstruct") + _global("numpy", "ndarray")
    + b"J" + HUGE.to_bytes(4, "little") + b"\x85" + _text("O") + b"\x87R.",
    "float-reconstruct": b"\x80\x02" + _global("numpy._core.multiarray", "_reconstruct") + _global("numpy", "ndarray")
    + b"J" + HUGE.to_bytes(4, "little") + b"\x85" + _text("f8") + b"\x87R.",
    "object-state": b"\x80\x02" + _global("numpy._core.multiarray", "_reconstruct") + _global("numpy", "ndarray")
    + b"K\x00\x85" + _text("b") + b"\x87R" + _array_state(HUGE, _dtype("O8"), b"") + b".",
    "short-data-state": b"\x80\x02" + _global("numpy._core.multiarray", "_reconstruct") + _global("numpy", "ndarray")
    + b"K\x00\x85" + _text("b") + b"\x87R" + _array_state(HUGE, _dtype("f8"), b"12345678") + b".",
    "ndarray-call": b"\x80\x02" + _global("numpy", "ndarray") + b"J" + HUGE.to_bytes(4, "little") + b"\x85"
    + _text("O") + b"\x86R.",
    "dtype-object-flags": b"\x80\x02" + _dtype("V8") + b"(K\x03U\x01|NNNK\x08K\x01K\x3ftb.",
}  # fmt: skip

_MEASURE = """
import io, pickle, resource, sys
from core import unpickle
data = open(sys.argv[1], "rb").read()
load = unpickle.loads if sys.argv[2] == "checked" else lambda d: pickle.Unpickler(io.BytesIO(d)).load()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load(data)
    outcome = "loaded"
except pickle.UnpicklingError as e:
    outcome = f"refused: {e}"
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
print(outcome)
"""


def peak_growth(data: bytes, tmp_path: Path, loader: str = "checked") -> tuple[int, str]:
    """MiB the peak RSS of a fresh process grew by while loading `data`, and what became of it."""
    path = tmp_path / "crafted.pkl"
    path.write_bytes(data)
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), loader],
        capture_output=True, text=True, cwd=root, timeout=60, check=True,
    ).stdout.splitlines()  # fmt: skip
    return int(out[0]), out[1]


@pytest.mark.parametrize("name", list(CRAFTED))
def test_a_crafted_allocation_is_refused_before_memory_grows(name: str, tmp_path: Path) -> None:
    """Peak RSS of a process loading each crafted pickle stays within 32 MiB of what it was before."""
    grown_mib, outcome = peak_growth(CRAFTED[name], tmp_path)
    assert outcome.startswith("refused: model artifact:"), outcome
    assert grown_mib < 32, (name, grown_mib)


MEMO_BOMB = b"\x80\x02Nr" + (2**25).to_bytes(4, "little") + b"."
"""LONG_BINPUT at index 2**25: 9 bytes; the C unpickler grows its memo array to 2**26 cleared slots (512 MiB)."""


def test_a_huge_memo_index_costs_nothing(tmp_path: Path) -> None:
    grown_mib, outcome = peak_growth(MEMO_BOMB, tmp_path)
    assert (outcome, grown_mib < 32) == ("loaded", True), grown_mib


def test_the_object_array_pickle_is_tiny_and_real() -> None:
    """The crafted bytes do what they claim under plain pickle (checked on a small size: 2**10 references)."""
    data = CRAFTED["object-reconstruct"]
    assert len(data) < 100
    small = data.replace(HUGE.to_bytes(4, "little"), (2**10).to_bytes(4, "little"))
    array = pickle.loads(small)
    assert (array.dtype, array.shape) == (np.dtype("O"), (2**10,))
