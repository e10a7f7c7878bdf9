"""The one handler that renders every error as JSON (the errors themselves are predictor.errors).

Most routes answer ``{"error": {"code", "message", "details"}}``; the Open Inference Protocol routes under ``/v2/``
answer the protocol's own ``{"error": "<message>"}``. No response ever carries a traceback. A refused prediction
request is recorded in the prediction log (predictor.http.request_ids).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from core.errors import ServiceError
from predictor.errors import BadRequest, NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from predictor.http import request_ids

log = logging.getLogger(__name__)


_BY_STATUS: dict[int, type[ServiceError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def from_http(error: HTTPException) -> ServiceError:
    """The ServiceError equivalent of a werkzeug HTTP exception (404, 405, 413 ...)."""
    status = error.code or 500
    cls = _BY_STATUS.get(status)
    converted = (cls or ServiceError)(error.description or error.name)
    if cls is None:
        converted.status, converted.code = status, error.name.lower().replace(" ", "_")
    return converted


def to_response(error: Exception) -> Response:
    """The one error handler: any exception becomes a JSON response with the matching status."""
    if isinstance(error, ServiceError):
        converted = error
    elif isinstance(error, HTTPException):
        converted = from_http(error)
    else:
        log.exception("unhandled error on %s %s", request.method, request.path)
        converted = ServiceError("internal server error")
    request_ids.refused(converted.message, converted.status)
    body: dict[str, Any] = {"error": converted.message} if request.path.startswith("/v2/") else converted.as_dict()
    response = current_app.response_class(json.dumps(body), converted.status, mimetype="application/json")
    if isinstance(error, HTTPException) and "Allow" in (headers := dict(error.get_headers())):
        response.headers["Allow"] = headers["Allow"]
    if converted.status == 401:
        response.headers["WWW-Authenticate"] = f'Bearer realm="{getattr(converted, "realm", "admin")}"'
    return response


def register(app: Flask) -> None:
    app.register_error_handler(Exception, to_response)
