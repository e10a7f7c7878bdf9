"""POST /v1/feedback: true labels for logged predictions, which the joiner turns into training data.

Feedback is training data, so it needs its own bearer token (FEEDBACK_TOKEN or FEEDBACK_TOKEN_FILE; 401 with
``WWW-Authenticate`` without it); with neither configured the route answers 404 (like the admin routes without
ADMIN_TOKEN) unless FEEDBACK_PUBLIC=true opens it to anyone. The body is one item ``{"id", "label", "row"?}`` or
``{"feedback": [items]}`` (predictor.http.contract: 400 naming the field, 413, 415 as on every route). Each item gets
its verdict at once (predictor.predlog.feedback): 202 when at least one was accepted, 503 (Retry-After) when none was
and some could not be queued for now, else 422; the body lists every item's verdict in request order.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response

from predictor.errors import NotFound
from predictor.http import bearer, contract, extensions, inputs, request_body
from predictor.http.predict import json_response
from predictor.predlog import ids
from predictor.predlog.feedback import ACCEPTED, UNAVAILABLE, Item

bp = Blueprint("feedback", __name__, url_prefix="/v1")
ID_REASON = f"expected a prediction's request id: 1 to {ids.MAX_LENGTH} visible ASCII characters"
ROW_REASON = f"expected an integer 0..{contract.MAX_ROW} (the instance's index in its prediction's batch)"
ITEM_REASON = 'expected a feedback item {{"id", "label", "row"}}'  # a format string (field_errors)
RETRY_AFTER_S = 5
DISABLED = "feedback is disabled: no FEEDBACK_TOKEN or FEEDBACK_TOKEN_FILE is configured and FEEDBACK_PUBLIC is false"


def sites(limit: int) -> dict[inputs.Site, str]:
    """The reasons given for the feedback fields (the contract's own for labels and missing or unknown fields)."""
    return {
        ("id",): ID_REASON, ("feedback", "*", "id"): ID_REASON, ("row",): ROW_REASON,
        ("feedback", "*", "row"): ROW_REASON, ("feedback", "*"): ITEM_REASON,
        ("feedback",): f"expected a list of 1 to {limit} feedback items (FEEDBACK_MAX_ITEMS)",
    }  # fmt: skip


@bp.before_request
def authorize() -> None:
    settings = extensions.settings()
    if settings.feedback_public:
        return
    expected = settings.feedback_secret()
    if expected is None:
        raise NotFound(DISABLED)
    bearer.check(expected, "feedback")


@bp.post("/feedback")
def feedback() -> Response:
    """Labels for predictions by request id and row; a verdict per item (see the module)."""
    received_at = time.time()
    dataplane = extensions.dataplane()
    limit = dataplane.settings.feedback_max_items
    body = inputs.validate(contract.feedback(limit), request_body.read(), sites(limit))
    entries = body.get("feedback", [body])
    verdicts = dataplane.feedback([Item(e["id"], e.get("row", 0), e["label"]) for e in entries], received_at)
    accepted = sum(v.status == ACCEPTED for v in verdicts)
    status = 202 if accepted else 503 if any(v.status == UNAVAILABLE for v in verdicts) else 422
    answer = {"accepted": accepted, "results": [v.as_dict() for v in verdicts]}
    response = json_response(answer, dataplane.registry.version or "none", status)
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response
