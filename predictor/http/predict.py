"""POST /predict (named species and probabilities) and POST /api (the original capstone client's contract)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app

from core.iris import CLASSES
from predictor.http import extensions, inputs, request_body, request_ids
from predictor.http.contract import Contract

bp = Blueprint("predict", __name__)
PREDICT: dict[inputs.Site, str] = {(): "expected an object with 'instances', got {type}"}
"""The reason given for a /predict body that is not an object (the model's own reasons for the rest)."""


def json_response(body: Any, version: str, status: int = 200) -> Response:
    return current_app.response_class(
        json.dumps(body), status, {"X-Model-Version": version}, mimetype="application/json"
    )


@bp.post("/predict")
def predict() -> Response:
    dataplane = extensions.dataplane()
    request_id = request_ids.resolve()
    body = inputs.validate(Contract.build(dataplane.settings.max_batch_size).predict, request_body.read(), PREDICT)
    answer = dataplane.infer(inputs.rows(body["instances"]), request_id=request_id, route="predict")
    predictions = [
        {"species": CLASSES[c], "class_id": c, "probabilities": dict(zip(CLASSES, p, strict=True))}
        for c, p in zip(answer.class_ids, answer.probabilities, strict=True)
    ]
    return json_response({"model_version": answer.version, "predictions": predictions}, answer.version)


@bp.post("/api")
def api() -> Response:
    """The seed contract: ``[5.1, 3.5, 1.4, 0.2]`` -> ``"[0]"`` (a JSON string of iris.target class ids)."""
    dataplane = extensions.dataplane()
    request_id = request_ids.resolve()
    body = inputs.validate(Contract.build(dataplane.settings.max_batch_size).api, request_body.read(True))
    answer = dataplane.infer(body if type(body[0]) is list else [body], request_id=request_id, route="api")
    return json_response(str(answer.class_ids), answer.version)
