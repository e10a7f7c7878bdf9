"""Cloud Function entry point: `ingest_upload` receives the bucket's `google.cloud.storage.object.v1.finalized` events.

Deployed with `--entry-point=ingest_upload`; see functions/README.md for packaging with the shared `core` package.
"""

from __future__ import annotations

import functools
import json

import flask
import functions_framework
from cloudevents.http import CloudEvent
from google.cloud import storage

from core import gcs, hosts, logs
from core.settings import load
from functions import ingest
from functions.settings import IngestSettings


@functools.cache
def _client(settings: IngestSettings) -> storage.Client:
    """One storage client per process and configuration, reused across invocations."""
    return gcs.client(settings)


@functools.cache
def _setup_logging(level: str) -> None:
    logs.setup(level)


def _refuse_unknown_hosts(app: flask.Flask, entries: frozenset[str]) -> None:
    """Answer 400 in the project's error format to a request whose Host is not in ALLOWED_HOSTS."""

    @app.before_request
    def known_host() -> flask.Response | None:
        try:
            hosts.check(flask.request.headers.get("Host"), entries)
        except hosts.HostNotAllowed as e:
            return flask.Response(json.dumps(e.as_dict()), e.status, mimetype="application/json")
        return None


if flask.has_app_context():  # functions-framework imports this module inside its app's context
    _entries = load(IngestSettings).host_entries
    if hosts.ANY not in _entries:
        _refuse_unknown_hosts(flask.current_app, _entries)


@functions_framework.cloud_event
def ingest_upload(cloud_event: CloudEvent) -> None:
    """Ingest the uploaded object; GCS errors outlasting the client's retries propagate, so the event is redelivered."""
    settings = load(IngestSettings)
    _setup_logging(settings.log_level)
    ingest.handle(_client(settings), cloud_event.data or {}, settings)
