"""The OpenAPI document: valid OpenAPI 3.0, and true to the app (schemathesis fuzzes every operation)."""

from __future__ import annotations

import jsonschema
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis.internal.conjecture.utils import many
from schemathesis import DataGenerationMethod, GenerationConfig
from schemathesis.checks import ALL_CHECKS
from schemathesis.specs.openapi.definitions import OPENAPI_30
from sklearn.pipeline import Pipeline

from predictor.app import create_app
from predictor.openapi import document
from predictor.settings import PredictorSettings
from tests.predictor.conftest import ADMIN_TOKEN, installed, publish

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

fuzzing = pytest.mark.skipif(
    not hasattr(many, "more"),
    reason="hypothesis-jsonschema 0.23.1 (schemathesis) fails on hypothesis >= 6.170.6: pin hypothesis==6.170.5",
)


@pytest.fixture
def fuzzed_app(offline_settings: PredictorSettings, fitted_model: Pipeline, request: pytest.FixtureRequest) -> Flask:
    """The default 1 MiB body limit: schemathesis counts a 413 for its (large) negative examples as a failure."""
    app = create_app(offline_settings.model_copy(update={"max_body_bytes": 1024 * 1024}))
    if request.param == "ready":
        app.extensions["registry"].current = installed(fitted_model)
    return app


@pytest.fixture
def api_schema(fuzzed_app: Flask) -> schemathesis.BaseSchema:
    return schemathesis.from_wsgi("/openapi.json", fuzzed_app)


def test_document_is_valid_openapi_3(client) -> None:
    served = client.get("/openapi.json").get_json()
    jsonschema.Draft4Validator(OPENAPI_30).validate(served)
    assert "/admin/pin" in served["paths"]
    assert served["components"]["schemas"]["PredictRequest"]["properties"]["instances"]["maxItems"] == 20


def test_admin_paths_are_absent_without_a_token() -> None:
    doc = document(PredictorSettings(model_signing_key="k"))
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


schema = schemathesis.from_pytest_fixture("api_schema", data_generation_methods=DataGenerationMethod.all())
live_schema = schemathesis.from_pytest_fixture(
    "live_api_schema",
    data_generation_methods=DataGenerationMethod.all(),
    generation_config=GenerationConfig(with_security_parameters=False),
)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
SERVER_UP = [check for check in ALL_CHECKS if check.__name__ != "not_a_server_error"]


@fuzzing
@pytest.mark.parametrize("fuzzed_app", ["ready"], indirect=True)
@schema.exclude(path_regex="^/admin").parametrize()
@FUZZ
def test_ready_app_conforms_to_its_document(case) -> None:
    case.call_and_validate(checks=ALL_CHECKS)


@fuzzing
@pytest.mark.parametrize("fuzzed_app", ["not_ready"], indirect=True)
@schema.exclude(path_regex="^/admin").parametrize()
@FUZZ
def test_app_without_a_model_conforms_to_its_document(case) -> None:
    """503 is the documented answer of the model routes here, so only the 5xx check is left out."""
    case.call_and_validate(checks=SERVER_UP)


@pytest.fixture
def live_api_schema(live_app: Flask, registry, store, fitted_model) -> schemathesis.BaseSchema:
    publish(store, fitted_model)
    registry.reconcile("startup")
    return schemathesis.from_wsgi("/openapi.json", live_app)


@fuzzing
@pytest.mark.integration
@live_schema.include(path_regex="^/admin").parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_admin_routes_conform_to_the_document(case) -> None:
    """With the right token (ignored_auth checks that a missing or wrong one gets 401)."""
    case.headers = case.headers or {}  # schemathesis' ignored_auth check needs a dict to put a wrong token in
    case.call_and_validate(checks=ALL_CHECKS, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
