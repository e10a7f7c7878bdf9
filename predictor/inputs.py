"""Reading and validating prediction inputs with plain Python (this is the hot path: no pydantic, no pandas).

Every rule failure raises a 400 whose details name the field, e.g. ``instances[3].petal_width``.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from flask import request

from core.schema import FEATURES, check_measurement
from predictor.errors import BadRequest, UnsupportedMediaType, bad_field

Rows = list[list[float]]


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number JSON allows")


def read_json(any_content_type: bool = False) -> Any:
    """The request body parsed as strict JSON (no NaN/Infinity); 413 past MAX_BODY_BYTES.

    A body with no Content-Type is read as JSON (the Triton and KServe clients send none); a declared non-JSON type is
    415 unless `any_content_type` (the seed's /api read its body as JSON whatever the client declared).
    """
    return parse_json(read_body(any_content_type))


def read_body(any_content_type: bool = False) -> bytes:
    """The raw request body (415 and 413 as read_json)."""
    mimetype = request.mimetype
    if not (any_content_type or _json_or_undeclared(mimetype)):
        raise UnsupportedMediaType(f"expected Content-Type application/json, got {mimetype!r}")
    data = request.get_data(cache=False)
    if request.content_length is None and len(data) >= (request.max_content_length or len(data) + 1):
        request.stream.read(1)  # chunked body cut at the limit: werkzeug raises 413 if anything is left
    return data


def parse_json(data: bytes) -> Any:
    """Strict JSON (no NaN/Infinity); a 400 naming the body otherwise."""
    try:
        return json.loads(data, parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:
        raise BadRequest(f"malformed JSON: {e}", {"field": "body", "reason": "malformed JSON"}) from e


def _json_or_undeclared(mimetype: str) -> bool:
    return mimetype in ("", "application/json") or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def measurement(value: Any, where: str, feature: str) -> float:
    """One measurement in cm: a JSON number (not a boolean), finite, 0 <= value <= MAX_CM."""
    kind = type(value)
    if kind is float:
        number = value
    elif kind is int:
        try:
            number = float(value)
        except OverflowError:
            number = float("inf") if value > 0 else float("-inf")
    else:
        raise bad_field(f"{where}.{feature}", f"expected a number, got {_json_type(value)}")
    problem = check_measurement(number)
    if problem:
        raise bad_field(f"{where}.{feature}", problem)
    return number


def instance(item: Any, where: str) -> list[float]:
    """An object with exactly the four named features, or a list of four numbers in FEATURES order."""
    if type(item) is dict:
        if len(item) != len(FEATURES) or any(name not in item for name in FEATURES):
            missing = [name for name in FEATURES if name not in item]
            extra = sorted(str(key) for key in item if key not in FEATURES)
            if missing:
                raise bad_field(f"{where}.{missing[0]}", "missing feature")
            raise bad_field(f"{where}.{extra[0]}", "unknown feature")
        return [measurement(item[name], where, name) for name in FEATURES]
    if type(item) is list:
        if len(item) != len(FEATURES):
            raise bad_field(where, f"expected {len(FEATURES)} measurements, got {len(item)}")
        return [measurement(value, where, name) for value, name in zip(item, FEATURES, strict=True)]
    raise bad_field(
        where, f"expected an object of features or a list of {len(FEATURES)} numbers, got {_json_type(item)}"
    )


def batch(items: Any, where: str, limit: int) -> Rows:
    """A non-empty list of at most `limit` instances."""
    if type(items) is not list:
        raise bad_field(where, f"expected a list of instances, got {_json_type(items)}")
    if not items:
        raise bad_field(where, "empty batch")
    if len(items) > limit:
        raise bad_field(where, f"batch of {len(items)} exceeds MAX_BATCH_SIZE {limit}")
    return [instance(item, f"{where}[{index}]") for index, item in enumerate(items)]


def predict_body(body: Any, limit: int) -> Rows:
    """POST /predict: ``{"instances": [...]}`` and nothing else."""
    if type(body) is not dict:
        raise bad_field("body", f"expected an object with 'instances', got {_json_type(body)}")
    if "instances" not in body:
        raise bad_field("instances", "missing field")
    extra = sorted(str(key) for key in body if key != "instances")
    if extra:
        raise bad_field(extra[0], "unknown field")
    return batch(body["instances"], "instances", limit)


def api_body(body: Any, limit: int) -> Rows:
    """POST /api: a bare list of four numbers, or a list of such lists."""
    if type(body) is list and body and type(body[0]) is list:
        return [instance(item, f"body[{index}]") for index, item in enumerate(_limited(body, limit))]
    if type(body) is not list:
        raise bad_field("body", f"expected a list of {len(FEATURES)} numbers or a list of such lists")
    if len(body) != len(FEATURES):
        raise bad_field("body", f"expected {len(FEATURES)} measurements, got {len(body)}")
    return [instance(body, "body")]


def _limited(items: list[Any], limit: int) -> list[Any]:
    if len(items) > limit:
        raise bad_field("body", f"batch of {len(items)} exceeds MAX_BATCH_SIZE {limit}")
    for index, item in enumerate(items):
        if type(item) is not list:
            raise bad_field(f"body[{index}]", f"expected a list of {len(FEATURES)} numbers, got {_json_type(item)}")
    return items


def _json_type(value: Any) -> str:
    names = {bool: "boolean", str: "string", dict: "object", list: "array", type(None): "null"}
    return names.get(type(value), "number")
