"""The OpenAPI document: valid OpenAPI 3.0, and true to the app (schemathesis fuzzes every operation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jsonschema
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.internal.conjecture.utils import many
from pydantic import SecretStr
from schemathesis import DataGenerationMethod, GenerationConfig
from schemathesis.checks import ALL_CHECKS
from schemathesis.specs.openapi.definitions import OPENAPI_30
from sklearn.pipeline import Pipeline

from predictor.http import extensions
from predictor.http.app import create_app
from predictor.http.openapi import document
from predictor.settings import PredictorSettings
from tests import keys
from tests.predictor.conftest import ADMIN_TOKEN, install, publish

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # schemathesis 3 imports jsonschema's deprecated names
    # schemathesis' negative strategies call `random` inside strategies, which Hypothesis only warns about
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

fuzzing = pytest.mark.skipif(
    not hasattr(many, "more"),
    reason="hypothesis-jsonschema 0.23.1 (schemathesis) fails on hypothesis >= 6.170.6: pin hypothesis==6.170.5",
)


def fuzz_app(settings: PredictorSettings, model: Pipeline | None) -> Flask:
    """The default 1 MiB body limit: schemathesis counts a 413 for its (large) negative examples as a failure."""
    app = create_app(settings.model_copy(update={"max_body_bytes": 1024 * 1024}))
    if model is not None:
        install(app, model)
    return app


def fuzz(app: Flask, method: str, path: str, checks: Sequence[Any], examples: int = 40, **call: Any) -> None:
    """Positive and negative examples for one documented operation, each sent to the app and checked.

    Derandomized: the same examples on every run. Hypothesis drives schemathesis' strategies directly, which keeps
    the reports readable (the lazy pytest integration hides some errors behind "0 distinct sets of failures").
    """
    config = GenerationConfig(with_security_parameters=False)
    operation = schemathesis.from_wsgi("/openapi.json", app, generation_config=config)[path][method]
    strategy = operation.as_strategy()
    if len(operation.body) or len(operation.query) or len(operation.headers):
        strategy |= operation.as_strategy(data_generation_method=DataGenerationMethod.negative)

    @settings(
        max_examples=examples, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        case.headers = case.headers or {}  # schemathesis' ignored_auth check needs a dict to put a wrong token in
        case.call_and_validate(checks=checks, **call)

    run()


def test_document_is_valid_openapi_3(client) -> None:
    served = client.get("/openapi.json").get_json()
    jsonschema.Draft4Validator(OPENAPI_30).validate(served)
    assert "/admin/pin" in served["paths"]
    assert served["components"]["schemas"]["PredictRequest"]["properties"]["instances"]["maxItems"] == 20


def test_admin_paths_are_absent_without_a_token() -> None:
    doc = document(PredictorSettings.model_validate(keys.settings()))
    jsonschema.Draft4Validator(OPENAPI_30).validate(doc)
    assert not any(path.startswith("/admin") for path in doc["paths"])


def test_every_ref_resolves(client) -> None:
    served = client.get("/openapi.json").get_json()
    refs = set(_refs(served))
    defined = {f"#/components/{kind}/{name}" for kind, items in served["components"].items() for name in items}
    assert refs
    assert refs <= defined


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


SERVER_UP = [check for check in ALL_CHECKS if check.__name__ != "not_a_server_error"]
PUBLIC = [
    (method.upper(), path)
    for path, item in document(PredictorSettings.model_validate(keys.settings()))["paths"].items()
    for method in item
]
ADMIN = [("POST", "/admin/reload"), ("PUT", "/admin/pin"), ("DELETE", "/admin/pin")]


@fuzzing
@pytest.mark.parametrize(("method", "path"), PUBLIC)
def test_ready_app_conforms_to_its_document(offline_settings: PredictorSettings, fitted_model, method, path) -> None:
    fuzz(fuzz_app(offline_settings, fitted_model), method, path, ALL_CHECKS)


@fuzzing
@pytest.mark.parametrize(("method", "path"), PUBLIC)
def test_app_without_a_model_conforms_to_its_document(offline_settings: PredictorSettings, method, path) -> None:
    """503 is the documented answer of the model routes here, so only the 5xx check is left out."""
    fuzz(fuzz_app(offline_settings, None), method, path, SERVER_UP)


@fuzzing
@pytest.mark.integration
@pytest.mark.parametrize(("method", "path"), ADMIN)
def test_admin_routes_conform_to_the_document(live_app: Flask, registry, store, fitted_model, method, path) -> None:
    """With the right token (ignored_auth checks that a missing or wrong one gets 401)."""
    publish(store, fitted_model)
    registry.reconcile("startup")
    fuzz(live_app, method, path, ALL_CHECKS, examples=15, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})


@fuzzing
def test_the_feedback_route_conforms_to_the_document(offline_settings: PredictorSettings, tmp_path) -> None:
    """With the prediction log on (a handover) and the right token (ignored_auth checks that others get 401)."""
    token = "feedback-fuzz-token-0123"
    settings = offline_settings.model_copy(update={
        "handover_dir": str(tmp_path / "handover"), "prediction_log_dir": tmp_path / "spool",
        "feedback_token": SecretStr(token),
    })  # fmt: skip
    app = fuzz_app(settings, None)
    try:
        fuzz(app, "post", "/v1/feedback", ALL_CHECKS, headers={"Authorization": f"Bearer {token}"})
    finally:
        extensions.dataplane(app).feedback_log.close()
        extensions.dataplane(app).log.close()
