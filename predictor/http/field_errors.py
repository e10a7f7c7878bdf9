"""How a body the contract's models refused is reported: a 400 naming the field (``instances[3].petal_width``) with
the reason this API has always given, for the first problem in reading order.

Reading order: outer problems before inner ones, then by position; at one level a missing field, then an unknown one,
then a wrong value; a row's length before its values. A location pattern (indices as "*", union tags left out) can
carry its own reason (`sites`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic_core
from pydantic import ValidationError

from core.iris import FEATURES, MAX_CM
from predictor.errors import BadRequest, bad_field
from predictor.http.contract import BATCH, CUSTOM_ERRORS, NAMED, ROW, SINGLE, TAGS, VALUE

Site = tuple[str, ...]

_ORDER = {name: i for i, name in enumerate((*FEATURES, "instances", "id", "parameters", "outputs", "inputs", "name",
                                            "datatype", "shape", "data", "version"))}  # fmt: skip
_MEASUREMENT = {
    "finite_number": "not a finite number",
    "greater_than_equal": "negative measurement",
    "less_than_equal": f"larger than {MAX_CM:g} cm",
}
_BATCH = {
    "list_type": "expected a list of instances, got {type}",
    "too_short": "empty batch",
    "too_long": "batch of {actual_length} exceeds MAX_BATCH_SIZE {max_length}",
}
_BY_TYPE = {
    "too_short": f"expected {len(FEATURES)} measurements, got {{actual_length}}",
    "too_long": f"expected {len(FEATURES)} measurements, got {{actual_length}}",
    "list_type": f"expected a list of {len(FEATURES)} numbers, got {{type}}",
    "float_type": "expected a number, got {type}",
    "instance_kind": f"expected an object of features or a list of {len(FEATURES)} numbers, got {{type}}",
}


def bad_request(error: ValidationError, body: bytes | Any, sites: Mapping[Site, str]) -> BadRequest:
    details: list[Any] = list(error.errors(include_url=False))
    malformed = next((str(d["msg"]) for d in details if d["type"] == "json_invalid"), None)
    if malformed is None and isinstance(body, bytes):
        try:  # NaN and Infinity parse as numbers for the model, but they are not JSON
            body = pydantic_core.from_json(body, allow_inf_nan=False)
        except ValueError as e:
            malformed = str(e)
    if malformed is not None:
        return BadRequest(f"malformed JSON: {malformed}", {"field": "body", "reason": "malformed JSON"})
    first = min(details + _row_lengths(details, body), key=_reading_order)
    field, site = _field(first["loc"])
    return bad_field(field, _reason(first, site, sites))


def _row_lengths(details: list[Any], body: Any) -> list[dict[str, Any]]:
    """A row's length is checked before its values (pydantic reports only the values when both are wrong)."""
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for detail in details:
        loc, value = detail["loc"], body
        for index, part in enumerate(loc[:-1]):
            if part not in TAGS:
                value = value[part] if type(value) in (list, dict) and _has(value, part) else None
            row = part in (ROW, SINGLE) or (type(part) is int and loc[index - 1 : index] == (BATCH,))
            if row and type(value) is list and len(value) != len(FEATURES):
                kind = "too_short" if len(value) < len(FEATURES) else "too_long"
                found[loc[: index + 1]] = {"type": kind, "loc": loc[: index + 1], "input": value,
                                           "ctx": {"actual_length": len(value)}}  # fmt: skip
                break
    return list(found.values())


def _has(container: Any, key: Any) -> bool:
    return key in container if type(container) is dict else type(key) is int and 0 <= key < len(container)


def _reading_order(detail: Any) -> tuple[Any, ...]:
    """Outer problems first, then by position; at one level missing, then unknown, then wrong values."""
    loc = [part for part in detail["loc"] if part not in TAGS]
    rank = {"missing": 0, "extra_forbidden": 1}.get(detail["type"], 2)
    if detail["type"] == "list_type" and detail["loc"][:1] == (BATCH,):  # /api: every row a list, then the rows
        rank = 1
    key = [(2, part, "") if type(part) is int else (2, _ORDER.get(str(part), 99), str(part)) for part in loc]
    return (*key[:-1], (rank, *key[-1][1:])) if key else ()


def _field(loc: tuple[int | str, ...]) -> tuple[str, Site]:
    """`instances[3].petal_width` and its site ("instances", "*", "petal_width") from a pydantic location.

    A position inside a row is the feature's name; one number of a flat V2 tensor is named by its row and feature.
    """
    parts: list[str] = []
    site: list[str] = []
    before: tuple[Any, Any] = (None, None)
    for part in loc:
        if part == VALUE and type(before[1]) is int:
            row, feature = divmod(int(before[1]), len(FEATURES))
            parts[-1:], site[-1:] = [f"[{row}]", f".{FEATURES[feature]}"], ["*", FEATURES[feature]]
        elif type(part) is int and (before[1] in (ROW, SINGLE) or (type(before[1]) is int and before[0] == BATCH)):
            name = FEATURES[part] if 0 <= part < len(FEATURES) else str(part)
            parts.append(f".{name}")
            site.append(name)
        elif type(part) is int:
            parts.append(f"[{part}]")
            site.append("*")
        elif part not in TAGS:
            parts.append(f".{part}" if parts else str(part))
            site.append(str(part))
        before = (before[1], part)
    text = "".join(parts)
    return (text if text[:1].isalpha() else f"body{text}"), tuple(site)


def _reason(detail: Any, site: Site, sites: Mapping[Site, str]) -> str:
    kind, loc = detail["type"], detail["loc"]
    ctx = {**detail.get("ctx", {}), "type": _json_type(detail["input"])}
    if kind in CUSTOM_ERRORS:
        return str(detail["msg"])
    if kind in ("missing", "extra_forbidden"):
        return ("missing " if kind == "missing" else "unknown ") + ("feature" if NAMED in loc else "field")
    if site in sites:
        return sites[site].format(**ctx)
    if kind in _MEASUREMENT:
        return _MEASUREMENT[kind]
    if kind in _BATCH and (site[-1:] == ("instances",) or loc[-1:] == (BATCH,)):
        return _BATCH[kind].format(**ctx)
    if kind in _BY_TYPE:
        return _BY_TYPE[kind].format(**ctx)
    return str(detail.get("msg", "invalid value")).lower()


def _json_type(value: Any) -> str:
    names = {bool: "boolean", str: "string", dict: "object", list: "array", type(None): "null"}
    return names.get(type(value), "number")
