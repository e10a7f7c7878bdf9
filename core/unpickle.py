"""Unpickling restricted to the modules a scikit-learn model needs (defence in depth after signature checks)."""

from __future__ import annotations

import io
import pickle
from typing import Any

_ALLOWED_PREFIXES = ("sklearn.", "numpy", "scipy.", "collections", "copyreg", "_codecs")
_ALLOWED_BUILTINS = {"slice", "set", "frozenset", "complex", "bytearray", "range", "object"}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in _ALLOWED_BUILTINS:
            return super().find_class(module, name)
        if module.startswith(_ALLOWED_PREFIXES) or module in {"numpy", "scipy"}:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a model artifact")


def loads(data: bytes) -> Any:
    """Unpickle `data`, refusing globals outside scikit-learn, NumPy and SciPy."""
    return _Unpickler(io.BytesIO(data)).load()
