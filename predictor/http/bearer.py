"""Bearer tokens on HTTP routes: the admin routes' (ADMIN_TOKEN) and feedback's (FEEDBACK_TOKEN), compared in
constant time."""

from __future__ import annotations

import hmac

from flask import request

from predictor.errors import Unauthorized


def check(expected: bytes, realm: str) -> None:
    """401 (with `WWW-Authenticate: Bearer realm="<realm>"`) unless the request carries `Bearer <expected>`."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        error = Unauthorized("missing or wrong bearer token")
        error.realm = realm
        raise error
