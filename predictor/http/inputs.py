"""Validating request bodies with the contract's models (predictor.http.contract), in any transport (no Flask here:
the gRPC server validates through it too; reading an HTTP body is predictor.http.request_body).

Validation runs on the JSON bytes in one pass (pydantic-core); only a failure costs more. Every failure raises a 400
whose details name the field, e.g. ``instances[3].petal_width`` (predictor.http.field_errors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from core.iris import FEATURES
from predictor.http import field_errors
from predictor.http.field_errors import Site

T = TypeVar("T")
Rows = Sequence[Sequence[float]]
__all__ = ["Rows", "Site", "rows", "validate"]


_features = itemgetter(*FEATURES)


def validate(adapter: TypeAdapter[T], body: bytes | Any, sites: Mapping[Site, str] | None = None, **context: Any) -> T:
    """`body` (JSON bytes, or a value already in JSON form) validated by `adapter`; a 400 naming the first offending
    field otherwise. `sites` gives the reason for any error at a location pattern (indices as "*", tags left out);
    `context` is the validation context (`max_batch_size` for a V2 tensor's shape)."""
    try:
        if isinstance(body, bytes):
            return adapter.validate_json(body, context=context)
        return adapter.validate_python(body, context=context)
    except ValidationError as e:
        raise field_errors.bad_request(e, body, sites or {}) from e


def rows(instances: list[Any]) -> Rows:
    """Validated instances (lists, or objects of features) as rows in FEATURES order."""
    return [_features(item) if type(item) is dict else item for item in instances]
