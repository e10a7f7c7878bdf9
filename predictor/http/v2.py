"""Open Inference Protocol V2 (KServe / MLServer REST): server and model metadata, model readiness, inference.

One input tensor of shape [N, 4] (FEATURES order), datatype FP32 or FP64, ``data`` flat (row-major) or nested;
outputs ``predict`` (INT64 class ids, shape [N]) and ``predict_proba`` (FP64, shape [N, 3], CLASSES order).
Errors on /v2/ routes use the protocol's own body ``{"error": "<message>"}`` (the message names the field).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pydantic_core
from flask import Blueprint, Response, current_app, request

from core.iris import CLASSES
from predictor import infer_request
from predictor.errors import BadRequest, ModelNotReady
from predictor.http import binary, extensions, request_body, request_ids
from predictor.http.predict import json_response

bp = Blueprint("v2", __name__, url_prefix="/v2")


@bp.get("")
def server_metadata() -> dict[str, Any]:
    return extensions.dataplane().server_metadata()


@bp.get("/models/<model_name>")
def model_metadata(model_name: str) -> dict[str, Any]:
    return extensions.dataplane().model_metadata(model_name)


@bp.get("/models/<model_name>/ready")
def model_ready(model_name: str) -> dict[str, Any]:
    if not extensions.dataplane().model_ready(model_name):
        raise ModelNotReady(f"model {model_name} has no verified version loaded yet")
    return {"name": model_name, "ready": True}


@bp.post("/models/<model_name>/infer")
def infer(model_name: str) -> Response:
    dataplane = extensions.dataplane()
    dataplane.check_model(model_name)
    header_length = request.headers.get(binary.HEADER)
    head, binary_data = binary.split(request_body.read(any_content_type=header_length is not None), header_length)
    try:
        body, wanted, rows = infer_request.checked(head, dataplane.settings.max_batch_size, binary_data)
    except BadRequest:
        with contextlib.suppress(ValueError, LookupError, TypeError):
            request_ids.adopt((pydantic_core.from_json(head) if isinstance(head, bytes) else head)["id"])
        raise
    request_id = request_ids.resolve(body.get("id"))
    answer = dataplane.infer(rows, request_id=request_id, route="v2")
    version = answer.version
    outputs = {
        "predict": {"name": "predict", "shape": [len(rows)], "datatype": "INT64", "data": answer.class_ids},
        "predict_proba": {
            "name": "predict_proba", "shape": [len(rows), len(CLASSES)], "datatype": "FP64",
            "data": [p for row in answer.probabilities for p in row],
        },
    }  # fmt: skip
    reply: dict[str, Any] = {"model_name": model_name, "model_version": version, "id": request_id}
    reply["outputs"] = [outputs[name] for name in wanted]
    request_parameters = body.get("parameters", {})
    binary_outputs = {name for name, params in wanted.items() if binary.wants_binary(request_parameters, params)}
    if not binary_outputs:
        return json_response(reply, version)
    data, json_length = binary.encode(reply, binary_outputs)
    headers = {"X-Model-Version": version, binary.HEADER: str(json_length)}
    return current_app.response_class(data, 200, headers, mimetype="application/octet-stream")
