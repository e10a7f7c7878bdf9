"""Admin routes behind a bearer token: reload (reconcile now), pin and unpin a model version.

Every call acts on the one gunicorn worker that receives it: a pin is per worker process. Both calls are idempotent,
so repeating them until every worker answered is safe; for a fleet-wide pin in Kubernetes set PINNED_MODEL_VERSION
in the Deployment instead. With no ADMIN_TOKEN configured every /admin route answers 404.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, request

from core.states import SwapOutcome, SwapTrigger
from predictor import extensions, inputs
from predictor.api import json_response
from predictor.contract import Contract
from predictor.errors import BadRequest, NotFound, Unauthorized
from predictor.registry import Registry, SwapRecord

bp = Blueprint("admin", __name__, url_prefix="/admin")
PIN_REASONS: dict[inputs.Site, str] = {("version",): "not a model version like 20261127T093817123456Z"}
WRONG_SHAPE = 'expected {"version": "<model version>"}'


@bp.before_request
def authorize() -> None:
    settings = extensions.settings()
    if settings.admin_token is None:
        raise NotFound("admin routes are disabled (no ADMIN_TOKEN configured)")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = settings.admin_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        raise Unauthorized("missing or wrong bearer token")


def _answer(registry: Registry, record: SwapRecord | None, status: int = 200) -> Response:
    body: dict[str, Any] = {
        "model_version": registry.version,
        "pinned": registry.pinned,
        "record": record.as_dict() if record else None,
    }
    return json_response(body, registry.version or "none", status)


@bp.post("/reload")
def reload() -> Response:
    """List models/ now and swap to the newest valid version (or the pinned one)."""
    registry = extensions.registry()
    return _answer(registry, registry.reconcile(SwapTrigger.ADMIN))


@bp.put("/pin")
def pin() -> Response:
    """Pin ``{"version": "<version>"}``: load it if needed; 422 (pin unchanged) if that artifact is rejected."""
    registry = extensions.registry()
    pin_request = Contract.build(registry.settings.max_batch_size).pin
    try:
        version = inputs.validate(pin_request, inputs.read_body(), PIN_REASONS)["version"]
    except BadRequest as e:
        if e.details.get("reason") != PIN_REASONS[("version",)]:  # any other shape is one answer, as it always was
            raise BadRequest(WRONG_SHAPE, {"field": "body", "reason": "wrong shape"}) from e
        raise
    record = registry.pin(version)
    return _answer(registry, record, 422 if record.outcome in (SwapOutcome.REJECTED, SwapOutcome.FAILED) else 200)


@bp.delete("/pin")
def unpin() -> Response:
    """Drop the pin (no-op when none) and catch up with the newest valid version."""
    registry = extensions.registry()
    return _answer(registry, registry.unpin())
