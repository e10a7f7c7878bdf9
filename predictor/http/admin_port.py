"""``/admin/*`` and ``/metrics`` answer only on ADMIN_PORT, a listener reachable inside the pod and the cluster.

With ADMIN_PORT set, gunicorn binds it next to PORT (predictor/gunicorn_conf.py) and every request for an admin or
metrics route that arrived on another listener gets 404, as if the route did not exist. gunicorn sets SERVER_PORT to
the port of the listener that accepted the connection (never from the Host header), so a client cannot choose it.
Unset (a single-port development run), those routes share PORT.
"""

from __future__ import annotations

from flask import Flask, request

from predictor.errors import NotFound
from predictor.http import extensions

PRIVATE = ("/admin", "/metrics")


def private(path: str) -> bool:
    """True for the admin and metrics routes (and anything below them)."""
    return any(path == prefix or path.startswith(prefix + "/") for prefix in PRIVATE)


def register(app: Flask) -> None:
    """Refuse private routes on every listener but ADMIN_PORT (when one is configured)."""
    admin_port = extensions.settings(app).admin_port
    if admin_port is None:
        return

    @app.before_request
    def only_on_admin_port() -> None:
        if private(request.path) and request.environ.get("SERVER_PORT") != str(admin_port):
            raise NotFound("not served on this port")
