"""Admin routes behind a bearer token: reload (reconcile now), pin and unpin a model version, once per pod.

Under gunicorn (a handover) a worker decides nothing itself: it hands the request to the pod's model agent
(``Follower.ask``, predictor.lifecycle.follower), which decides once for the pod and points every serving process at
the outcome; the route answers once this worker serves the decided version, 503 if the agent is down, 504 if the
decision or the swap takes longer than DECISION_TIMEOUT_S. Without a handover (a test client) the process is its own
pod and the routes act on its registry directly. PINNED_MODEL_VERSION pins the pod from the start. Every call is
idempotent. With no ADMIN_TOKEN configured every /admin route answers 404.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from core.errors import ServiceError
from core.states import SwapOutcome, SwapTrigger
from predictor.errors import BadRequest, NotFound
from predictor.http import bearer, extensions, inputs, request_body
from predictor.http.contract import Contract
from predictor.http.predict import json_response
from predictor.lifecycle.registry import SwapRecord

bp = Blueprint("admin", __name__, url_prefix="/admin")
PIN_REASONS: dict[inputs.Site, str] = {("version",): "not a model version like 20261127T093817123456Z"}
WRONG_SHAPE = 'expected {"version": "<model version>"}'
FAILED = (SwapOutcome.REJECTED, SwapOutcome.FAILED)


class AgentError(ServiceError):
    """The agent's decision was an error (its status and code are the agent's)."""


@bp.before_request
def authorize() -> None:
    settings = extensions.settings()
    if settings.admin_token is None:
        raise NotFound("admin routes are disabled (no ADMIN_TOKEN configured)")
    bearer.check(settings.admin_token.get_secret_value().encode(), "admin")


def _decide(action: str, version: str | None = None) -> Response:
    """The pod's agent decides (under gunicorn), else this process's registry; the answer either way."""
    registry, follower = extensions.registry(), extensions.follower()
    if follower is None:
        if action == "pin":
            record: SwapRecord | None = registry.pin(str(version))
        elif action == "unpin":
            record = registry.unpin()
        else:
            record = registry.reconcile(SwapTrigger.ADMIN)
        answer = record.as_dict() if record else None
    else:
        decision = follower.ask(action, version)
        if "error" in decision:
            error = AgentError(str(decision["error"].get("message")))
            error.status, error.code = int(decision["error"].get("status", 500)), str(decision["error"].get("code"))
            raise error
        answer = decision.get("record")
    body: dict[str, Any] = {"model_version": registry.version, "pinned": registry.pinned, "record": answer}
    status = 422 if action == "pin" and answer and answer.get("outcome") in FAILED else 200
    return json_response(body, registry.version or "none", status)


@bp.post("/reload")
def reload() -> Response:
    """Re-read models/ now (the pod's agent lists the bucket) and swap to the newest valid version (or the pin)."""
    return _decide("reload")


@bp.put("/pin")
def pin() -> Response:
    """Pin ``{"version": "<version>"}``: load it if needed; 422 (pin unchanged) if that artifact is rejected."""
    pin_request = Contract.build(extensions.settings().max_batch_size).pin
    try:
        version = inputs.validate(pin_request, request_body.read(), PIN_REASONS)["version"]
    except BadRequest as e:
        if e.details.get("reason") != PIN_REASONS[("version",)]:  # any other shape is one answer, as it always was
            raise BadRequest(WRONG_SHAPE, {"field": "body", "reason": "wrong shape"}) from e
        raise
    return _decide("pin", version)


@bp.delete("/pin")
def unpin() -> Response:
    """Drop the pin (no-op when none) and catch up with the newest valid version."""
    return _decide("unpin")
