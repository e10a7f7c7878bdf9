"""GET /openapi.json: the OpenAPI 3 document of the HTTP API."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

bp = Blueprint("openapi", __name__)


def document(settings: Any) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "Iris predictor", "version": "1.0.0"}, "paths": {}}


@bp.get("/openapi.json")
def openapi() -> dict[str, Any]:
    return document(current_app.extensions["settings"])
