"""GET /openapi.json: the OpenAPI 3 document of the HTTP API, built from the running settings.

Every schema is generated from the models: the request bodies' from those that validate them (predictor.http.contract),
the answers' from predictor.http.responses; this module lays out the paths.

Limits (batch size, body size, model name) come from the settings, and the admin paths appear only when an admin
token is configured (otherwise they answer 404 like any unknown path), the feedback path only when a feedback token
is configured or FEEDBACK_PUBLIC (its bearer security then dropped). Every status listed is one the route really
returns; tests fuzz the document against the app with schemathesis.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from pydantic import TypeAdapter

from core.training_sample import MAX_POINTS
from predictor.http import contract as contracts
from predictor.http import extensions, responses
from predictor.http.contract import Contract
from predictor.settings import PredictorSettings

bp = Blueprint("openapi", __name__)

JSON = "application/json"
SCHEMAS = "#/components/schemas/"
HEADERS = {
    "X-Model-Version": {"$ref": "#/components/headers/ModelVersion"},
    "X-Request-Id": {"$ref": "#/components/headers/RequestId"},
}
ERROR_TEXT = {
    400: "Malformed JSON or a value that breaks the schema; `details.field` names it.",
    401: "Missing or wrong bearer token.",
    413: "Body larger than MAX_BODY_BYTES.",
    415: "Content-Type is not JSON.",
    422: "The artifact of that version was rejected (the pin is unchanged).",
    404: "The serving model carries no training sample (`no_training_sample`): it was trained before models had one.",
    503: "No verified model is loaded yet (or the bucket, or the pod's model agent, is unreachable).",
    504: "The pod's model agent did not decide in time, or this worker did not serve its decision in time.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"{SCHEMAS}{name}"}


def _response(description: str, schema: dict[str, Any], media: str = JSON) -> dict[str, Any]:
    return {"description": description, "headers": HEADERS, "content": {media: {"schema": schema}}}


def _errors(*codes: int, v2: bool = False) -> dict[str, Any]:
    return {str(code): _response(ERROR_TEXT[code], _ref("V2Error" if v2 else "Error")) for code in codes}


def _operation(summary: str, ok: dict[str, Any], body: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {"200": ok, **more.pop("errors", {})}, **more}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    return operation


def _prediction(summary: str, answer: str, model: str, v2: bool = False) -> dict[str, Any]:
    """A prediction route: POST `<model>Request`, answered by `<model>Response`, refused like every prediction
    (malformed or too large a body, not JSON, no model yet)."""
    ok = _response(answer, _ref(f"{model}Response"))
    return {"post": _operation(summary, ok, _ref(f"{model}Request"), errors=_errors(400, 413, 415, 503, v2=v2))}


def schemas(settings: PredictorSettings) -> dict[str, Any]:
    """Every component schema, generated from the models: the requests' (predictor.http.contract, which validate
    them) and the answers' (predictor.http.responses)."""
    contract = Contract.build(settings.max_batch_size)
    bodies: dict[str, TypeAdapter[Any]] = {
        "PredictRequest": contract.predict, "ApiRequest": contract.api, "InferRequest": contract.infer,
        "PinRequest": contract.pin, "FeedbackRequest": contracts.feedback(settings.feedback_max_items),
        **responses.adapters(),
    }  # fmt: skip
    refs, found = TypeAdapter.json_schemas(
        [(name, "validation", adapter) for name, adapter in bodies.items()],
        ref_template=f"{SCHEMAS}{{model}}",
        schema_generator=responses.OpenAPI30,
    )
    generated: dict[str, Any] = found.get("$defs", {})
    for (name, _), schema in refs.items():
        if schema.get("$ref") != f"{SCHEMAS}{name}":
            generated[name] = schema
    return generated


def paths(settings: PredictorSettings) -> dict[str, Any]:
    name = settings.model_name
    any_object = {"type": "object"}
    ready_errors = {"503": _response(ERROR_TEXT[503], _ref("Error"))}
    v2_ready_errors = {"503": _response(ERROR_TEXT[503], _ref("V2Error"))}
    live = _operation("Liveness", _response("The process is up.", {"type": "object", "required": ["live"]}))
    ready_ok = _response(
        "A verified model is loaded (under gunicorn: in every worker of the pod).",
        {
            "type": "object",
            "required": ["ready"],
            "properties": {
                "ready": {"type": "boolean"},
                "ready_workers": {"type": "integer", "description": "Workers of this pod serving a model."},
                "workers": {"type": "integer", "description": "Workers gunicorn runs in this pod."},
            },
        },
    )
    found: dict[str, Any] = {
        "/predict": _prediction(
            "Predict species with probabilities",
            "One prediction per instance, all by the same model.",
            "Predict",
        ),
        "/api": _prediction(
            "Original client contract: measurements in, class ids out as a JSON string",
            "Class ids (0 setosa, 1 versicolor, 2 virginica).",
            "Api",
        ),
        "/v2": {"get": _operation("Server metadata (OIP V2)", _response("Server metadata.", any_object))},
        "/v2/health/live": {"get": live},
        "/healthz": {"get": live},
        "/v2/health/ready": {"get": _operation("Readiness (OIP V2)", ready_ok, errors=v2_ready_errors)},
        "/readyz": {"get": _operation("Readiness", ready_ok, errors=ready_errors)},
        f"/v2/models/{name}": {"get": _operation("Model metadata (OIP V2)", _response("Model metadata.", any_object))},
        f"/v2/models/{name}/ready": {
            "get": _operation("Model readiness (OIP V2)", _response("Ready.", any_object), errors=v2_ready_errors)
        },
        f"/v2/models/{name}/infer": _prediction(
            "Inference (OIP V2); errors are {'error': message}",
            "predict (INT64 class ids) and predict_proba (FP64 [N, 3]).",
            "Infer",
            v2=True,
        ),
        "/v1/model": {
            "get": _operation("Serving model, lineage and swap history", _response("Model.", _ref("ModelInfo")))
        },
        "/v1/model/monitoring": {
            "get": _operation(
                "Live accuracy per model version (from feedback) and the pod's drift figures",
                _response(
                    "What the pod's model agent last read and evaluated; null parts: none yet.", _ref("Monitoring")
                ),
            )
        },
        "/v1/model/training-sample": {
            "get": _operation(
                "Rows of the serving model's training data: petal length and width (cm) and class index",
                _response(f"Up to {MAX_POINTS} evenly spaced rows the model was fitted on.", _ref("TrainingSample")),
                errors=_errors(404, 503),
            )
        },
        "/metrics": {
            "get": _operation(
                "Prometheus metrics of every worker", _response("Exposition.", {"type": "string"}, "text/plain")
            )
        },
        "/openapi.json": {"get": _operation("This document", _response("OpenAPI 3 document.", any_object))},
    }
    if settings.admin_token is not None:
        found.update(admin_paths())
    if settings.feedback_public or settings.feedback_secret() is not None:
        found.update(feedback_paths(settings))
    return found


def feedback_paths(settings: PredictorSettings) -> dict[str, Any]:
    verdicts = _ref("FeedbackResponse")
    operation = _operation(
        "True labels for logged predictions (one item or a batch); a verdict per item",
        _response("", verdicts),
        _ref("FeedbackRequest"),
        errors={
            **_errors(400, 413, 415),
            "422": _response("No item was accepted (each result says why: sampled_out, late, duplicate, not_logged).",
                             verdicts),
            "503": _response("No item was accepted and some could not be queued for now (full feedback queue or "
                             "spool): send those again after Retry-After seconds.", verdicts),
        },
    )  # fmt: skip
    accepted = {**operation["responses"].pop("200"), "description": "At least one item was accepted (queued)."}
    operation["responses"] = {"202": accepted, **operation["responses"]}
    if not settings.feedback_public:
        operation["security"] = [{"bearer": []}]
        operation["responses"].update(_errors(401))
    return {"/v1/feedback": {"post": operation}}


def admin_paths() -> dict[str, Any]:
    result = _response("What the worker serves now (the pod's decision) and what this call did.", _ref("AdminResult"))
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    rejected = {"422": {**result, "description": ERROR_TEXT[422]}}
    return {
        "/admin/reload": {
            "post": _operation(
                "Reconcile now (the pod's model agent decides)",
                result,
                security=security,
                errors=_errors(401, 503, 504),
            )
        },
        "/admin/pin": {
            "put": _operation(
                "Pin a version for the pod (its model agent decides; PINNED_MODEL_VERSION pins from the start)",
                result,
                _ref("PinRequest"),
                security=security,
                errors={**_errors(400, 401, 413, 415, 503, 504), **rejected},
            ),
            "delete": _operation(
                "Unpin and catch up (the pod)", result, security=security, errors=_errors(401, 503, 504)
            ),
        },
    }


def document(settings: PredictorSettings) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Iris predictor",
            "version": "1.0.0",
            "description": "Iris species predictions from the newest verified model, hot-swapped without downtime. "
            "Every response carries X-Model-Version and X-Request-Id (the client's X-Request-Id, or the V2 body's "
            "`id`, when acceptable: 1 to 128 visible ASCII characters; else a new one). On the prediction routes an "
            "unacceptable client id is a 400 naming `X-Request-Id` or `id`.",
        },
        "paths": paths(settings),
        "components": {
            "schemas": schemas(settings),
            "headers": {
                "ModelVersion": {
                    "description": "Version of the model that answered (or serves now); 'none' before the first load.",
                    "required": True,
                    "schema": {"type": "string"},
                },
                "RequestId": {
                    "description": "The request's id, under which the prediction log records it (feedback names it).",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                },
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@bp.get("/openapi.json")
def openapi() -> dict[str, Any]:
    return document(extensions.settings())
