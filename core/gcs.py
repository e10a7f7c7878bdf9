"""Google Cloud Storage client construction and the retry policy every caller uses."""

from __future__ import annotations

from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from core.settings import CommonSettings

REQUEST_TIMEOUT = (5.0, 30.0)
"""(connect, read) seconds for one HTTP request to GCS."""


def client(settings: CommonSettings) -> storage.Client:
    """A storage client for the real service, or for the emulator when STORAGE_EMULATOR_HOST is set."""
    host = settings.storage_emulator_host
    if not host:
        return storage.Client(project=settings.google_cloud_project)
    endpoint = host if host.startswith("http") else f"http://{host}"
    return storage.Client(
        project=settings.google_cloud_project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
    )


def retry(settings: CommonSettings) -> Retry:
    """google-api-core's retry for transient errors, bounded by GCS_RETRY_DEADLINE seconds."""
    return DEFAULT_RETRY.with_timeout(settings.gcs_retry_deadline).with_delay(initial=0.2, maximum=5.0)
