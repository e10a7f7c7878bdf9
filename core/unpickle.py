"""Unpickling restricted to the exact globals of the trainer's model (defence in depth after signature checks).

Only ``(module, name)`` pairs listed here reach ``pickle``: the three scikit-learn classes of the trainer's pipeline
and the NumPy constructors their fitted arrays pickle to (protocols 2 to 5, and NumPy 1.x module names). None of them
runs code from its pickled state. The trainer loads every artifact through ``loads`` before it publishes, so a model
that needs anything else fails at publish time, never in a predictor.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("sklearn.pipeline", "Pipeline"),
        ("sklearn.preprocessing._data", "StandardScaler"),
        ("sklearn.linear_model._logistic", "LogisticRegression"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }
)
"""Every global a model artifact may reference, matched exactly (no prefixes, no dotted names)."""


def allowed(module: str, name: str) -> bool:
    """Whether a model artifact may reference the global `module.name`."""
    return (module, name) in ALLOWED


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if allowed(module, name):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a model artifact")


def loads(data: bytes) -> Any:
    """Unpickle `data`, refusing every global outside ALLOWED."""
    return _Unpickler(io.BytesIO(data)).load()
