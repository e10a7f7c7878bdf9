"""Unpickling restricted to the exact globals of the trainer's model (defence in depth after signature checks).

Only ``(module, name)`` pairs listed here reach ``pickle``: the three scikit-learn classes of the trainer's pipeline
and the NumPy constructors their fitted arrays pickle to (protocols 2 to 5, and NumPy 1.x module names). None of them
runs code from its pickled state. The trainer loads every artifact through ``loads`` before it publishes, so a model
that needs anything else fails at publish time, never in a predictor.

Memory is bounded too, since a pickle names the sizes it allocates: an artifact larger than ``Limits.max_bytes`` is
refused unread, and NumPy is reached only through checked stand-ins that refuse object dtypes (an object array is
allocated and filled with references at once: 51 bytes of pickle could ask for gigabytes) and any array larger than
``Limits.max_array_bytes``. ``numpy.ndarray`` itself is never callable from a pickle. The pure-Python unpickler is
used (a model pickle is about 5 KB with its training sample: 0.26 ms): its memo is a dict, where the C unpickler's is an
array a single ``LONG_BINPUT`` index makes gigabytes long (9 bytes: 512 MiB cleared, measured).
"""

from __future__ import annotations

import io
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

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

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Size caps while loading an artifact (MODEL_MAX_BYTES, MODEL_MAX_ARRAY_BYTES)."""

    max_bytes: int = MiB
    """Largest artifact read at all (the trainer's is about 5 KB)."""
    max_array_bytes: int = 16 * MiB
    """Largest single array an artifact may allocate."""


def allowed(module: str, name: str) -> bool:
    """Whether a model artifact may reference the global `module.name`."""
    return (module, name) in ALLOWED


class _ArrayType:
    """Stands for ``numpy.ndarray`` in a pickle: only `_reconstruct` accepts it; calling it fails."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise _refuse("calling numpy.ndarray refused")


_ARRAY_TYPE = _ArrayType()


def _refuse(message: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(f"model artifact: {message}")


class _Checks:
    """The NumPy stand-ins find_class hands out, checking dtypes and sizes against the limits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def dtype(self, value: Any) -> np.dtype[Any]:
        """A dtype that holds no object references and fits an array (any other value raises)."""
        if not isinstance(value, np.dtype):
            raise _refuse(f"{type(value).__name__} where a dtype belongs")
        if value.hasobject:
            raise _refuse(f"object dtype {value} refused")
        if value.itemsize > self.limits.max_array_bytes:
            raise _refuse(f"dtype {value} of {value.itemsize} bytes per item refused")
        return value

    def size(self, shape: Any, dtype: np.dtype[Any]) -> int:
        """Bytes of an array of `shape` and `dtype`, within max_array_bytes."""
        dims = shape if isinstance(shape, tuple) else (shape,)
        if not all(type(d) is int and d >= 0 for d in dims):
            raise _refuse(f"array shape {shape!r} refused")
        size = math.prod(dims) * dtype.itemsize
        if size > self.limits.max_array_bytes:
            raise _refuse(f"array of {size} bytes refused (MODEL_MAX_ARRAY_BYTES={self.limits.max_array_bytes})")
        return size

    def new_dtype(self, obj: Any, align: bool = False, copy: bool = False) -> np.dtype[Any]:
        """``numpy.dtype``: always a copy (a pickle's state must never reach a shared builtin dtype)."""
        del copy
        return self.dtype(np.dtype(obj, bool(align), True))

    def reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray[Any, Any]:
        """``_reconstruct``: an empty base array (its state comes with BUILD, checked in _Unpickler.load_build)."""
        if subtype is not _ARRAY_TYPE:
            raise _refuse("_reconstruct of anything but numpy.ndarray refused")
        checked = self.dtype(np.dtype(dtype))
        self.size(shape, checked)
        array: np.ndarray[Any, Any] = _REAL["_reconstruct"](np.ndarray, shape, checked)
        return array

    def scalar(self, dtype: Any, *args: Any) -> Any:
        """``scalar``: a NumPy scalar from its bytes."""
        checked = self.dtype(dtype)
        if args and not isinstance(args[0], bytes):
            raise _refuse("a scalar's value must be bytes")
        return _REAL["scalar"](checked, *args)

    def frombuffer(self, buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray[Any, Any]:
        """``_frombuffer`` (protocol 5): a view of bytes the pickle holds, of exactly their size."""
        checked = self.dtype(np.dtype(dtype))
        size = self.size(shape, checked)
        if not isinstance(buffer, (bytes, bytearray)) or len(buffer) != size:
            raise _refuse(f"array buffer does not hold {size} bytes")
        array: np.ndarray[Any, Any] = _REAL["_frombuffer"](buffer, checked, shape, order)
        return array

    def array_state(self, state: Any) -> None:
        """An ndarray's BUILD state: (version,) shape, dtype, is_fortran, raw bytes of exactly the array's size."""
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _refuse("array state refused")
        shape, dtype, _fortran, raw = state[-4:]
        size = self.size(shape, self.dtype(dtype))
        if not isinstance(raw, (bytes, bytearray)) or len(raw) != size:
            raise _refuse(f"array data does not hold {size} bytes")

    @staticmethod
    def encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        """``_codecs.encode``, as protocol 2 pickles bytes: latin-1 text to bytes, nothing else."""
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise _refuse(f"_codecs.encode with {encoding!r} refused")
        return text.encode("latin-1")


def _numpy_real() -> dict[str, Callable[..., Any]]:
    from numpy._core import multiarray, numeric

    return {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar, "_frombuffer": numeric._frombuffer}  # type: ignore[attr-defined]


_REAL = _numpy_real()
_DTYPE_OBJECT_FLAGS = 0x01 | 0x04
"""NPY_ITEM_REFCOUNT|HASOBJECT and NPY_ITEM_IS_POINTER: flags a dtype's pickled state must not set."""


class _Unpickler(pickle._Unpickler):
    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)

    def __init__(self, data: bytes, limits: Limits) -> None:
        super().__init__(io.BytesIO(data))
        self.checks = _Checks(limits)
        self.stand_ins: dict[str, Any] = {
            "dtype": self.checks.new_dtype,
            "ndarray": _ARRAY_TYPE,
            "_reconstruct": self.checks.reconstruct,
            "scalar": self.checks.scalar,
            "_frombuffer": self.checks.frombuffer,
            "encode": self.checks.encode,
        }
        """By name: every allowed global of these names is NumPy's (or _codecs.encode)."""

    def find_class(self, module: str, name: str) -> Any:
        if not allowed(module, name):
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a model artifact")
        stand_in = self.stand_ins.get(name)
        return stand_in if stand_in is not None else super().find_class(module, name)

    def load_build(self) -> None:
        """BUILD, with an array's state checked before NumPy sees it, and a dtype's state never adding objects."""
        stack: list[Any] = self.stack  # type: ignore[attr-defined]
        state, inst = stack[-1], stack[-2]
        if isinstance(inst, np.ndarray):
            self.checks.array_state(state)
        elif isinstance(inst, np.dtype):
            flags = state[7] if isinstance(state, tuple) and len(state) > 7 else 0
            if not isinstance(flags, int) or flags & _DTYPE_OBJECT_FLAGS:
                raise _refuse("dtype state with object flags refused")
        elif isinstance(inst, _ArrayType):
            raise _refuse("state for numpy.ndarray itself refused")
        super().load_build()  # type: ignore[misc]
        if isinstance(inst, np.dtype):
            self.checks.dtype(inst)

    dispatch[pickle.BUILD[0]] = load_build


def loads(data: bytes, limits: Limits | None = None) -> Any:
    """Unpickle `data`, refusing every global outside ALLOWED, object dtypes and anything over `limits`."""
    limits = limits or Limits()
    if len(data) > limits.max_bytes:
        raise _refuse(f"{len(data)} bytes refused (MODEL_MAX_BYTES={limits.max_bytes})")
    return _Unpickler(data, limits).load()
