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
