"""Request ids: the client's (V2 body `id`, then the `X-Request-Id` header) when it gives an acceptable one, else a
new one. Pure: no I/O, no framework.

An id is echoed in a response header and written to the prediction log, and feedback names predictions by it, so a
client's id must be 1 to MAX_LENGTH visible ASCII characters (no spaces, no control characters); anything else is
refused with an InvalidRequestId naming where it came from (the transport answers 400 with it), never silently
replaced: the client would not find its own id in the answer. A generated id is a UUIDv7 as 32 hex digits: 74
random bits, so ids cannot be guessed (feedback opened to the public must not be able to label other clients'
predictions), after the millisecond it was issued, so feedback for a generated id knows which date partition of the
log holds its record (core.uuid7: ``new`` makes them, ``issued_at`` reads that time) instead of scanning them all.
"""

from __future__ import annotations

import re

from core import uuid7

HEADER = "X-Request-Id"
"""The HTTP header a client may send its id in, and every HTTP answer carries."""
BODY_FIELD = "id"
"""The Open Inference Protocol V2 request and response field."""
MAX_LENGTH = 128
_ACCEPTABLE = re.compile(f"[!-~]{{1,{MAX_LENGTH}}}")


class InvalidRequestId(ValueError):
    """A client's id the log cannot hold; `source` is BODY_FIELD or HEADER."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


def check(value: object, source: str) -> str:
    """`value` if it is an acceptable id, else InvalidRequestId naming `source`."""
    if not isinstance(value, str):
        raise InvalidRequestId(source, "expected a string")
    if _ACCEPTABLE.fullmatch(value) is None:
        raise InvalidRequestId(source, f"expected 1 to {MAX_LENGTH} visible ASCII characters")
    return value


def resolve(body_id: object = None, header_id: str | None = None) -> str:
    """The request's id: the V2 body's `id`, else the `X-Request-Id` header, else a new one.

    None and an empty header mean "not given" (proxies send empty headers); an empty body `id` is refused.
    """
    if body_id is not None:
        return check(body_id, BODY_FIELD)
    if header_id:
        return check(header_id, HEADER)
    return uuid7.new()
