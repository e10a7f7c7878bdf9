"""The errors a request can meet in any transport (subclasses of core.errors.ServiceError, each with its HTTP status).

The Flask app renders them as JSON (predictor.http.errors); the gRPC server maps the status to a gRPC code.
"""

from __future__ import annotations

from core.errors import ServiceError


class BadRequest(ServiceError):
    """The request body is malformed or a value breaks the schema; `details` names the field."""

    status = 400
    code = "bad_request"


class Unauthorized(ServiceError):
    """Missing or wrong bearer token on an admin or feedback route; `realm` names which (WWW-Authenticate)."""

    status = 401
    code = "unauthorized"
    realm = "admin"


class NotFound(ServiceError):
    """No such route, model or artifact."""

    status = 404
    code = "not_found"


class NoTrainingSample(NotFound):
    """The serving model carries no training sample (trained before models had one), or not a well-formed one."""

    code = "no_training_sample"


class PayloadTooLarge(ServiceError):
    """The body is larger than MAX_BODY_BYTES."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    """The body is not declared as JSON."""

    status = 415
    code = "unsupported_media_type"


class ModelNotReady(ServiceError):
    """No verified model is loaded yet."""

    status = 503
    code = "model_not_ready"


class AgentUnavailable(ServiceError):
    """The pod's model agent is down (no fresh heartbeat): nobody can decide a pin or reload now."""

    status = 503
    code = "agent_unavailable"


class DecisionTimeout(ServiceError):
    """The agent did not decide in time, or this process did not come to serve its decision in time."""

    status = 504
    code = "decision_timeout"


def bad_field(field: str, reason: str) -> BadRequest:
    """A 400 naming the offending field, e.g. ``instances[3].petal_width``."""
    return BadRequest(f"{field}: {reason}", {"field": field, "reason": reason})
