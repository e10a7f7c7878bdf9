"""Check 7: the HTTP API fuzzed from its own OpenAPI document (schemathesis, every check) against a running pod.

Positive and negative examples for every documented operation; admin operations carry a wrong bearer token, so
they are exercised (401 must be documented) without pinning or reloading the pod under the other checks.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import DataGenerationMethod
from schemathesis.checks import ALL_CHECKS
from schemathesis.exceptions import SkipTest
from schemathesis.internal.result import Ok

from tests.faults.report import Row
from tests.faults.stack import Pod

pytestmark = [
    pytest.mark.faults,
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated:DeprecationWarning"),  # schemathesis 3
]
MAX_EXAMPLES = 25
"""Per operation and generation method."""
METHODS = (DataGenerationMethod.positive, DataGenerationMethod.negative)


@dataclass
class Tally:
    """Requests sent, requests gunicorn refused as malformed HTTP, and check failures."""

    sent: int = 0
    refused: int = 0
    failures: list[str] = field(default_factory=list)


def malformed_http(response: requests.Response) -> bool:
    """gunicorn's own HTML 400 for a header value with control characters (invalid HTTP, RFC 9110 5.5): the request
    never reaches the app, so the app's OpenAPI document cannot describe the answer."""
    kind = response.headers.get("Content-Type", "")
    return response.status_code == 400 and kind.startswith("text/html") and "Invalid HTTP Header" in response.text


def fuzz(operation: Any, method: DataGenerationMethod, pod: Pod, session: requests.Session, tally: Tally) -> None:
    """Send one operation's examples and validate every response with every check; failures are collected."""
    headers = {"Authorization": "Bearer wrong-token"} if operation.path.startswith("/admin") else None

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=operation.as_strategy(data_generation_method=method))
    def run(case: Any) -> None:
        tally.sent += 1
        response = case.call(base_url=pod.url, session=session, headers=headers)
        if malformed_http(response):
            tally.refused += 1
            return
        try:
            case.validate_response(response, checks=ALL_CHECKS, headers=headers)
        except AssertionError as e:  # schemathesis' CheckFailed: keep going, report them all
            tally.failures.append(f"{operation.method.upper()} {operation.path} ({method.name}): {str(e)[:400]}")

    with contextlib.suppress(SkipTest):  # nothing to make negative (no parameters, no body)
        run()


def test_api_matches_its_openapi_document(pods: list[Pod], row: Row) -> None:
    pod = pods[0]
    version = pod.model()["model_version"]
    schema = schemathesis.from_uri(pod.url + "/openapi.json", base_url=pod.url)
    results = list(schema.get_all_operations())
    assert [r for r in results if not isinstance(r, Ok)] == [], "the document has operations schemathesis cannot read"
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    tally = Tally()
    with requests.Session() as session:
        for operation in operations:
            for method in METHODS:
                fuzz(operation, method, pod, session, tally)
    row.add_load(tally.sent, len(tally.failures), [version])
    row.note(f"{len(operations)} operations x {len(METHODS)} methods, up to {MAX_EXAMPLES} examples each; "
             f"checks: {', '.join(c.__name__ for c in ALL_CHECKS)}; {tally.refused} negative requests with control "
             "characters in a header value refused by gunicorn (HTML 400) before reaching the app")  # fmt: skip
    assert len(operations) >= 10
    assert tally.failures == []
    assert pod.served() == {version}
