"""Google Cloud Storage: client construction, and the one wrapper every GCS call of the project goes through.

`call` gives a call the retry policy (google-api-core's, bounded by GCS_RETRY_DEADLINE) and the per-request timeout,
and turns the client's errors into the project's: StoreUnavailable once the retries are exhausted or the service
cannot be reached, StoreRefused for a refusal retrying cannot fix. NotFound and PreconditionFailed pass through:
they are answers the callers act on (a missing object, a create-only write that lost).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import requests
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from core.errors import StoreRefused, StoreUnavailable
from core.settings import CommonSettings

T = TypeVar("T")

REQUEST_TIMEOUT = (5.0, 30.0)
"""(connect, read) seconds for one HTTP request to GCS."""


def client(settings: CommonSettings) -> storage.Client:
    """A storage client for the real service, or for the emulator when STORAGE_EMULATOR_HOST is set."""
    return client_for(settings.google_cloud_project, settings.storage_emulator_host)


def client_for(project: str, emulator_host: str | None) -> storage.Client:
    """A storage client for `project`: on the emulator at `emulator_host` (anonymous), else the real service."""
    if not emulator_host:
        return storage.Client(project=project)
    endpoint = emulator_host if emulator_host.startswith("http") else f"http://{emulator_host}"
    return storage.Client(
        project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )


def retry(settings: CommonSettings) -> Retry:
    """google-api-core's retry for transient errors, bounded by GCS_RETRY_DEADLINE seconds."""
    return DEFAULT_RETRY.with_timeout(settings.gcs_retry_deadline).with_delay(initial=0.2, maximum=5.0)


ANSWERS = (gexc.NotFound, gexc.PreconditionFailed)
"""Client errors that are answers, not failures: callers catch them."""
TRANSIENT = (gexc.RetryError, gexc.ServerError, gexc.TooManyRequests, requests.RequestException, ConnectionError,
             auth_exceptions.TransportError)  # fmt: skip
"""What is left of a transient failure once the retry policy gave up (or that it does not retry)."""


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Client errors raised in the block become StoreUnavailable or StoreRefused, except the ANSWERS (for reads that
    fail while streaming, after the call that opened them returned)."""
    try:
        yield
    except ANSWERS:
        raise
    except TRANSIENT as e:
        raise StoreUnavailable(f"GCS unavailable: {e}") from e
    except gexc.GoogleAPIError as e:
        raise StoreRefused(f"GCS refused the request: {e}") from e


def call(retry: Retry | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` with `retry` and the request timeout (unless the call sets its own), under errors()."""
    kwargs.setdefault("timeout", REQUEST_TIMEOUT)
    with errors():
        return fn(*args, retry=retry, **kwargs)


def listed(bucket: storage.Bucket, **kwargs: Any) -> list[storage.Blob]:
    """Every object of a listing: its pages are fetched while iterating, so `call(retry, listed, bucket, ...)` covers
    them all."""
    return list(bucket.client.list_blobs(bucket, **kwargs))
