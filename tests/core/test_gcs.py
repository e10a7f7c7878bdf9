"""core.gcs.call: every GCS call gets the retry policy and the request timeout, and client errors become ours."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc

from core import gcs
from core.errors import StoreRefused, StoreUnavailable
from core.settings import CommonSettings


class Recorder:
    """A callable that records its keyword arguments, then raises `error` if given."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error, self.kwargs = error, dict[str, Any]()

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.kwargs = kwargs
        if self.error is not None:
            raise self.error
        return "done"


def test_a_call_gets_the_retry_and_the_request_timeout_unless_it_sets_its_own() -> None:
    retry, call = gcs.retry(CommonSettings()), Recorder()
    assert gcs.call(retry, call, "a", if_generation_match=0) == "done"
    assert call.kwargs == {"retry": retry, "timeout": gcs.REQUEST_TIMEOUT, "if_generation_match": 0}
    gcs.call(None, call, timeout=99)
    assert call.kwargs == {"retry": None, "timeout": 99}


@pytest.mark.parametrize(
    "error",
    [
        gexc.RetryError("deadline", cause=gexc.ServiceUnavailable("down")),
        gexc.ServiceUnavailable("down"),
        gexc.TooManyRequests("slow down"),
        requests.ConnectionError("refused"),
        ConnectionResetError("reset"),
    ],
)
def test_transient_failures_become_store_unavailable(error: BaseException) -> None:
    with pytest.raises(StoreUnavailable, match="GCS unavailable") as caught:
        gcs.call(None, Recorder(error))
    assert caught.value.__cause__ is error
    assert caught.value.status == 503


@pytest.mark.parametrize("error", [gexc.Forbidden("no"), gexc.BadRequest("bad"), gexc.Unauthorized("who")])
def test_refusals_become_store_refused(error: BaseException) -> None:
    with pytest.raises(StoreRefused) as caught:
        gcs.call(None, Recorder(error))
    assert caught.value.__cause__ is error


@pytest.mark.parametrize("error", [gexc.NotFound("gone"), gexc.PreconditionFailed("lost the race")])
def test_answers_pass_through(error: BaseException) -> None:
    with pytest.raises(type(error)):
        gcs.call(None, Recorder(error))


def test_errors_while_streaming_are_mapped_too() -> None:
    with pytest.raises(StoreUnavailable), gcs.errors():
        raise requests.ReadTimeout("stalled mid-read")


def test_an_unreachable_bucket_is_store_unavailable_within_the_deadline() -> None:
    """Nothing listens on port 9: the real client retries for GCS_RETRY_DEADLINE seconds, then gives up."""
    settings = CommonSettings(storage_emulator_host="127.0.0.1:9", gcs_retry_deadline=1.0)
    bucket = gcs.client(settings).bucket("nowhere")
    with pytest.raises(StoreUnavailable):
        gcs.call(gcs.retry(settings), bucket.get_blob, "data/a.csv")
