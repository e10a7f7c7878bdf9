"""Reading the body of the current Flask request: JSON (or undeclared) only, and never past MAX_BODY_BYTES."""

from __future__ import annotations

from flask import request

from predictor.errors import UnsupportedMediaType


def read(any_content_type: bool = False) -> bytes:
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
