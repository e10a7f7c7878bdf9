"""POST /predict (named species and probabilities) and POST /api (the original capstone client's contract)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import sklearn
from flask import Blueprint, Response, current_app

from core.schema import CLASSES
from core.store import LoadedModel
from predictor import inputs
from predictor.errors import ModelNotReady
from predictor.registry import Registry

bp = Blueprint("api", __name__)


def serving() -> LoadedModel:
    """The model that answers this request (read once: a concurrent swap does not split a batch)."""
    current = current_app.extensions["registry"].current
    if current is None:
        raise ModelNotReady("no verified model is loaded yet; retry shortly")
    return current


def run_model(loaded: LoadedModel, rows: inputs.Rows) -> tuple[list[int], list[list[float]]]:
    """Class ids and probabilities from one predict_proba call.

    The column order of predict_proba is ``model.classes_``, which the store's load checks equal CLASSES, so the
    argmax column is the schema's class id. Finiteness was validated already, so sklearn skips that check.
    """
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        proba = loaded.model.predict_proba(np.array(rows, dtype=np.float64))
    class_ids: list[int] = proba.argmax(axis=1).tolist()
    current_app.extensions["metrics"].count_predictions(class_ids)
    return class_ids, proba.tolist()


def json_response(body: Any, version: str, status: int = 200) -> Response:
    return current_app.response_class(
        json.dumps(body), status, {"X-Model-Version": version}, mimetype="application/json"
    )


@bp.post("/predict")
def predict() -> Response:
    registry: Registry = current_app.extensions["registry"]
    rows = inputs.predict_body(inputs.read_json(), registry.settings.max_batch_size)
    loaded = serving()
    class_ids, proba = run_model(loaded, rows)
    predictions = [
        {"species": CLASSES[c], "class_id": c, "probabilities": dict(zip(CLASSES, p, strict=True))}
        for c, p in zip(class_ids, proba, strict=True)
    ]
    return json_response({"model_version": loaded.version, "predictions": predictions}, loaded.version)


@bp.post("/api")
def api() -> Response:
    """The seed contract: ``[5.1, 3.5, 1.4, 0.2]`` -> ``"[0]"`` (a JSON string of iris.target class ids)."""
    registry: Registry = current_app.extensions["registry"]
    rows = inputs.api_body(inputs.read_json(), registry.settings.max_batch_size)
    loaded = serving()
    class_ids, _ = run_model(loaded, rows)
    return json_response(str(class_ids), loaded.version)
