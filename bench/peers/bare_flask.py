"""The baseline peer: a bare Flask app that only unpickles one model and calls ``model.predict``.

Run under gunicorn from its own virtualenv (``bench/.venvs/bare-flask``), ``BENCH_MODEL_PATH`` naming the pickle:
``gunicorn -w 2 'bare_flask:create_app()'``. Same request and response shape as the predictor's ``POST /predict``:
``{"instances": [[5.1, 3.5, 1.4, 0.2]]}`` -> ``{"predictions": ["setosa"]}``. No validation, no metrics, no logging.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask, request


def create_app(model_path: str | None = None) -> Flask:
    app = Flask(__name__)
    path = Path(model_path or os.environ["BENCH_MODEL_PATH"])
    app.extensions["model"] = pickle.loads(path.read_bytes())

    @app.post("/predict")
    def predict() -> dict[str, Any]:
        instances = np.asarray(request.get_json()["instances"], dtype=np.float64)
        return {"predictions": app.extensions["model"].predict(instances).tolist()}

    @app.get("/health")
    def health() -> str:
        return "ok"

    return app
