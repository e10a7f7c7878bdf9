"""Open Inference Protocol V2 (KServe / MLServer REST): server and model metadata, model readiness, inference.

One input tensor of shape [N, 4] (FEATURES order), datatype FP32 or FP64, ``data`` flat (row-major) or nested;
outputs ``predict`` (INT64 class ids, shape [N]) and ``predict_proba`` (FP64, shape [N, 3], CLASSES order).
Errors on /v2/ routes use the protocol's own body ``{"error": "<message>"}`` (the message names the field).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from core.schema import CLASSES, FEATURES
from predictor import inputs, tensors
from predictor.api import json_response, run_model, serving
from predictor.errors import ModelNotReady, NotFound, bad_field
from predictor.registry import Registry

bp = Blueprint("v2", __name__, url_prefix="/v2")

OUTPUTS = ("predict", "predict_proba")
_REQUEST_KEYS = {"id", "parameters", "inputs", "outputs"}
_TENSOR_KEYS = {"name", "shape", "datatype", "parameters", "data"}


def _registry(model_name: str) -> Registry:
    registry: Registry = current_app.extensions["registry"]
    if model_name != registry.settings.model_name:
        raise NotFound(f"unknown model {model_name[:100]!r}; this server serves {registry.settings.model_name!r}")
    return registry


@bp.get("")
def server_metadata() -> dict[str, Any]:
    return {"name": "iris-predictor", "version": "1.0.0", "extensions": ["binary_tensor_data"]}


@bp.get("/models/<model_name>")
def model_metadata(model_name: str) -> dict[str, Any]:
    registry = _registry(model_name)
    version = registry.version
    return {
        "name": model_name,
        "versions": [version] if version else [],
        "platform": "sklearn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, len(FEATURES)]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(CLASSES)]},
        ],
    }


@bp.get("/models/<model_name>/ready")
def model_ready(model_name: str) -> dict[str, Any]:
    if not _registry(model_name).ready:
        raise ModelNotReady(f"model {model_name} has no verified version loaded yet")
    return {"name": model_name, "ready": True}


@bp.post("/models/<model_name>/infer")
def infer(model_name: str) -> Response:
    registry = _registry(model_name)
    header_length = request.headers.get(tensors.HEADER)
    head, binary = tensors.split(inputs.read_body(any_content_type=header_length is not None), header_length)
    body = inputs.parse_json(head)
    wanted, rows = validate(body, registry.settings.max_batch_size, binary)
    model = serving()
    class_ids, proba = run_model(model, rows)
    version = model.loaded.version
    outputs = {
        "predict": {"name": "predict", "shape": [len(rows)], "datatype": "INT64", "data": class_ids},
        "predict_proba": {
            "name": "predict_proba", "shape": [len(rows), len(CLASSES)], "datatype": "FP64",
            "data": [p for row in proba for p in row],
        },
    }  # fmt: skip
    answer: dict[str, Any] = {"model_name": model_name, "model_version": version}
    if "id" in body:
        answer["id"] = body["id"]
    answer["outputs"] = [outputs[name] for name in wanted]
    request_parameters = body.get("parameters", {})
    binary_outputs = {name for name, params in wanted.items() if tensors.wants_binary(request_parameters, params)}
    if not binary_outputs:
        return json_response(answer, version)
    data, json_length = tensors.encode(answer, binary_outputs)
    headers = {"X-Model-Version": version, tensors.HEADER: str(json_length)}
    return current_app.response_class(data, 200, headers, mimetype="application/octet-stream")


def validate(body: Any, limit: int, binary: bytes = b"") -> tuple[dict[str, dict[str, Any]], inputs.Rows]:
    """An inference request in its JSON form -> (requested outputs and their parameters, validated rows).

    The gRPC server (predictor.grpc) validates its requests through this too, translated to the JSON form.
    """
    if type(body) is not dict:
        raise bad_field("body", "expected an inference request object")
    _only(body, _REQUEST_KEYS, "")
    if "id" in body and type(body["id"]) is not str:
        raise bad_field("id", "expected a string")
    _parameters(body, "")
    return _requested_outputs(body.get("outputs")), _rows(body.get("inputs"), limit, binary)


def _only(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(str(key) for key in obj if key not in allowed)
    if extra:
        raise bad_field(f"{where}{extra[0]}", "unknown field")


def _parameters(obj: dict[str, Any], where: str) -> None:
    """OIP parameters: an object whose values are strings, numbers or booleans."""
    parameters = obj.get("parameters", {})
    if type(parameters) is not dict:
        raise bad_field(f"{where}parameters", "expected an object")
    for key, value in parameters.items():
        if type(value) not in (str, int, float, bool):
            raise bad_field(f"{where}parameters.{key}", "expected a string, number or boolean")


def _requested_outputs(requested: Any) -> dict[str, dict[str, Any]]:
    """Output name -> its parameters, in request order (every output when none are named)."""
    if requested is None:
        return {name: {} for name in OUTPUTS}
    if type(requested) is not list or not requested:
        raise bad_field("outputs", "expected a non-empty list of {'name': ...}")
    names = {}
    for index, item in enumerate(requested):
        if type(item) is not dict or item.get("name") not in OUTPUTS:
            raise bad_field(f"outputs[{index}].name", f"expected one of {', '.join(OUTPUTS)}")
        _only(item, {"name", "parameters"}, f"outputs[{index}].")
        _parameters(item, f"outputs[{index}].")
        names[item["name"]] = item.get("parameters", {})
    return names


def _rows(given: Any, limit: int, binary: bytes) -> inputs.Rows:
    if type(given) is not list or len(given) != 1 or type(given[0]) is not dict:
        raise bad_field("inputs", "expected exactly one input tensor object")
    tensor = given[0]
    _only(tensor, _TENSOR_KEYS, "inputs[0].")
    in_binary = type(tensor.get("parameters")) is dict and "binary_data_size" in tensor["parameters"]
    for key in ("name", "shape", "datatype") if in_binary else ("name", "shape", "datatype", "data"):
        if key not in tensor:
            raise bad_field(f"inputs[0].{key}", "missing field")
    if type(tensor["name"]) is not str:
        raise bad_field("inputs[0].name", "expected a string")
    _parameters(tensor, "inputs[0].")
    if tensor["datatype"] not in ("FP32", "FP64"):
        raise bad_field("inputs[0].datatype", "expected FP32 or FP64")
    count = _batch_size(tensor["shape"], limit)
    if in_binary:
        return _data(tensors.binary_values(tensor, binary, count), count)
    if binary:
        raise bad_field("inputs[0].parameters.binary_data_size", "binary data sent but no input declares its size")
    return _data(tensor["data"], count)


def _batch_size(shape: Any, limit: int) -> int:
    if (
        type(shape) is not list
        or len(shape) != 2
        or any(type(n) is not int for n in shape)
        or shape[1] != len(FEATURES)
    ):
        raise bad_field("inputs[0].shape", f"expected [N, {len(FEATURES)}]")
    if not 1 <= shape[0] <= limit:
        raise bad_field("inputs[0].shape", f"batch size must be 1..{limit} (MAX_BATCH_SIZE)")
    return int(shape[0])


def _data(data: Any, count: int) -> inputs.Rows:
    width = len(FEATURES)
    if type(data) is not list or not data:
        raise bad_field("inputs[0].data", "expected a list of numbers")
    if type(data[0]) is list:
        if len(data) != count:
            raise bad_field("inputs[0].data", f"expected {count} rows to match the shape, got {len(data)}")
        return [_row(row, f"inputs[0].data[{i}]") for i, row in enumerate(data)]
    if len(data) != count * width:
        raise bad_field("inputs[0].data", f"expected {count * width} numbers to match the shape, got {len(data)}")
    return [_row(data[i * width : (i + 1) * width], f"inputs[0].data[{i}]") for i in range(count)]


def _row(row: Any, where: str) -> list[float]:
    if type(row) is not list or len(row) != len(FEATURES):
        raise bad_field(where, f"expected a row of {len(FEATURES)} numbers")
    return [inputs.measurement(value, where, name) for value, name in zip(row, FEATURES, strict=True)]
