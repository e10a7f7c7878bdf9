"""Cloud Function entry point: `on_upload` receives the bucket's `google.cloud.storage.object.v1.finalized` events.

Deployed with `--entry-point=on_upload`; see functions/README.md for packaging with the shared `core` package.
"""

from __future__ import annotations

import functools

import functions_framework
from cloudevents.http import CloudEvent
from google.cloud import storage

from core import gcs, logs
from core.settings import load
from functions import ingest
from functions.settings import FunctionSettings


@functools.cache
def _client(settings: FunctionSettings) -> storage.Client:
    """One storage client per process and configuration, reused across invocations."""
    return gcs.client(settings)


@functools.cache
def _setup_logging(level: str) -> None:
    logs.setup(level)


@functions_framework.cloud_event
def on_upload(cloud_event: CloudEvent) -> None:
    """Ingest the uploaded object; GCS errors outlasting the client's retries propagate, so the event is redelivered."""
    settings = load(FunctionSettings)
    _setup_logging(settings.log_level)
    ingest.handle(_client(settings), cloud_event.data or {}, settings)
