"""Request ids over HTTP: every answer carries ``X-Request-Id``; the prediction routes record under it.

Before each request the id is the client's ``X-Request-Id`` when acceptable, else a new one (predictor.predlog.ids),
so even a 404 or a refused body answers with an id. A prediction route then resolves its own id (``resolve``: the V2
body's ``id`` first, then the header), and an unacceptable client id is a 400 naming the field (``id`` or
``X-Request-Id``): a client must find its own id in the answer, never a silently replaced one. The error handler
records refusals of the prediction routes (``refused``) in the prediction log under the request's id.
"""

from __future__ import annotations

import contextlib

from flask import Flask, Response, g, request

from core import uuid7
from predictor.errors import bad_field
from predictor.http import extensions
from predictor.predlog import ids

ROUTES = {"predict.predict": "predict", "predict.api": "api", "v2.infer": "v2"}
"""The prediction endpoints and the route name their records carry."""


def resolve(body_id: object = None) -> str:
    """The prediction request's id (the V2 body's `id`, else the header, else a new one), kept for its answer; a
    400 naming the field when the client's id cannot be used."""
    try:
        g.request_id = ids.resolve(body_id, request.headers.get(ids.HEADER))
    except ids.InvalidRequestId as e:
        raise bad_field(e.source, e.message) from e
    return str(g.request_id)


def adopt(body_id: object) -> None:
    """A refused body's `id`, if acceptable, becomes the id its refusal answers and is recorded under."""
    with contextlib.suppress(ids.InvalidRequestId):
        g.request_id = ids.check(body_id, ids.BODY_FIELD)


def current() -> str:
    """The id this request answers with."""
    found = g.get("request_id")
    if found is None:
        found = g.request_id = uuid7.new()
    return str(found)


def refused(message: str, status: int) -> None:
    """Record the refusal of a prediction request (no-op on every other route)."""
    route = ROUTES.get(request.endpoint or "")
    if route is not None:
        extensions.dataplane().refused(current(), route, message, status)


def register(app: Flask) -> None:
    @app.before_request
    def provisional_id() -> None:
        header = request.headers.get(ids.HEADER)
        try:
            g.request_id = ids.check(header, ids.HEADER) if header else uuid7.new()
        except ids.InvalidRequestId:
            g.request_id = uuid7.new()

    @app.after_request
    def stamp(response: Response) -> Response:
        response.headers[ids.HEADER] = current()
        return response
