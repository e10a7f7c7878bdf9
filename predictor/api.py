"""POST /predict (named species and probabilities) and POST /api (the original capstone client's contract)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from flask import Blueprint, Response, current_app

from core.iris import CLASSES
from predictor import extensions, inputs
from predictor.contract import Contract
from predictor.errors import ModelNotReady
from predictor.registry import Serving

bp = Blueprint("api", __name__)
PREDICT: dict[inputs.Site, str] = {(): "expected an object with 'instances', got {type}"}
"""The reason given for a /predict body that is not an object (the model's own reasons for the rest)."""


def serving() -> Serving:
    """The model that answers this request (read once: a concurrent swap does not split a batch)."""
    current: Serving | None = extensions.registry().serving
    if current is None:
        raise ModelNotReady("no verified model is loaded yet; retry shortly")
    return current


def run_model(model: Serving, rows: inputs.Rows) -> tuple[list[int], list[list[float]]]:
    """Class ids and probabilities from one predict_proba call (the verified fast path when there is one).

    The column order of predict_proba is ``model.classes_``, which the store's load checks equal CLASSES, so the
    argmax column is the schema's class id.
    """
    proba = model.predict_proba(np.array(rows, dtype=np.float64))
    class_ids: list[int] = proba.argmax(axis=1).tolist()
    extensions.metrics().count_predictions(class_ids)
    return class_ids, proba.tolist()


def json_response(body: Any, version: str, status: int = 200) -> Response:
    return current_app.response_class(
        json.dumps(body), status, {"X-Model-Version": version}, mimetype="application/json"
    )


@bp.post("/predict")
def predict() -> Response:
    registry = extensions.registry()
    body = inputs.validate(Contract.build(registry.settings.max_batch_size).predict, inputs.read_body(), PREDICT)
    rows = inputs.rows(body["instances"])
    model = serving()
    class_ids, proba = run_model(model, rows)
    version = model.loaded.version
    predictions = [
        {"species": CLASSES[c], "class_id": c, "probabilities": dict(zip(CLASSES, p, strict=True))}
        for c, p in zip(class_ids, proba, strict=True)
    ]
    return json_response({"model_version": version, "predictions": predictions}, version)


@bp.post("/api")
def api() -> Response:
    """The seed contract: ``[5.1, 3.5, 1.4, 0.2]`` -> ``"[0]"`` (a JSON string of iris.target class ids)."""
    registry = extensions.registry()
    body = inputs.validate(Contract.build(registry.settings.max_batch_size).api, inputs.read_body(True))
    rows = body if type(body[0]) is list else [body]
    model = serving()
    class_ids, _ = run_model(model, rows)
    return json_response(str(class_ids), model.loaded.version)
