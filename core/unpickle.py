"""Unpickling restricted to the modules a scikit-learn model needs (defence in depth after signature checks)."""

from __future__ import annotations

import io
import pickle
from typing import Any

_ALLOWED_PACKAGES = ("sklearn", "numpy", "scipy", "collections")
_ALLOWED_MODULES = {"copyreg", "_codecs"}
_ALLOWED_BUILTINS = {"slice", "set", "frozenset", "complex", "bytearray", "range", "object"}
_DENIED_PARTS = {"testing", "_testing", "tests", "conftest", "f2py", "distutils", "_pytesttester"}
"""Module path segments never needed by a model (e.g. numpy.testing's `runstring` executes code)."""
_DENIED_NAMES = {"load", "loadtxt", "genfromtxt", "fromfile", "fromregex", "memmap", "save", "savez", "savetxt"}
"""File I/O entry points a crafted pickle could call."""


def allowed(module: str, name: str) -> bool:
    """Whether a model artifact may reference the global `module.name`."""
    if module == "builtins":
        return name in _ALLOWED_BUILTINS
    parts = module.split(".")
    if parts[0] not in _ALLOWED_PACKAGES and module not in _ALLOWED_MODULES:
        return False
    return not _DENIED_PARTS.intersection(parts) and name.split(".")[0] not in _DENIED_NAMES


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if allowed(module, name):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a model artifact")


def loads(data: bytes) -> Any:
    """Unpickle `data`, refusing globals outside scikit-learn, NumPy and SciPy."""
    return _Unpickler(io.BytesIO(data)).load()
