"""ALLOWED_HOSTS on every route of the predictor (core.hosts): a request with another Host header gets 400 in the
project's error format before any route runs. With the default `*` nothing is installed."""

from __future__ import annotations

from flask import Flask, request

from core import hosts
from predictor.http import extensions


def register(app: Flask) -> None:
    """Refuse requests whose Host is not in ALLOWED_HOSTS (nginx passes the client's Host through unchanged)."""
    entries = extensions.settings(app).host_entries
    if hosts.ANY in entries:
        return

    @app.before_request
    def known_host() -> None:
        hosts.check(request.headers.get("Host"), entries)
