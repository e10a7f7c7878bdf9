"""Reading request bodies and validating them with the contract's models (predictor.http.contract).

Validation runs on the JSON bytes in one pass (pydantic-core); only a failure costs more. Every failure raises a 400
whose details name the field, e.g. ``instances[3].petal_width`` (predictor.http.field_errors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, TypeVar

from flask import request
from pydantic import TypeAdapter, ValidationError

from core.iris import FEATURES
from predictor.errors import UnsupportedMediaType
from predictor.http import field_errors
from predictor.http.field_errors import Site

T = TypeVar("T")
Rows = Sequence[Sequence[float]]
__all__ = ["Rows", "Site", "read_body", "rows", "validate"]


_features = itemgetter(*FEATURES)


def read_body(any_content_type: bool = False) -> bytes:
    """The raw request body; 413 past MAX_BODY_BYTES.

    A body with no Content-Type is read as JSON (the Triton and KServe clients send none); a declared non-JSON type is
    415 unless `any_content_type` (the seed's /api read its body as JSON whatever the client declared).
    """
    mimetype = request.mimetype
    if not (any_content_type or _json_or_undeclared(mimetype)):
        raise UnsupportedMediaType(f"expected Content-Type application/json, got {mimetype!r}")
    data = request.get_data(cache=False)
    if request.content_length is None and len(data) >= (request.max_content_length or len(data) + 1):
        request.stream.read(1)  # chunked body cut at the limit: werkzeug raises 413 if anything is left
    return data


def _json_or_undeclared(mimetype: str) -> bool:
    return mimetype in ("", "application/json") or (mimetype.startswith("application/") and mimetype.endswith("+json"))


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
