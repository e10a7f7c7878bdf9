"""Request ids: the client's (V2 body `id`, then the `X-Request-Id` header) when it gives an acceptable one, else a
new one. Pure: no I/O, no framework.

An id is echoed in a response header and written to the prediction log, and feedback names predictions by it, so a
client's id must be 1 to MAX_LENGTH visible ASCII characters (no spaces, no control characters); anything else is
refused with an InvalidRequestId naming where it came from (the transport answers 400 with it), never silently
replaced: the client would not find its own id in the answer. A generated id is a UUIDv7 as 32 hex digits: 74
random bits, so ids cannot be guessed (feedback opened to the public must not be able to label other clients'
predictions), after the millisecond it was issued, so feedback for a generated id knows which date partition of the
log holds its record (``issued_at``) instead of scanning them all.
"""

from __future__ import annotations

import os
import re
import time

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


_MS_BITS, _RANDOM_BITS = 48, 80
_VERSION = (0xF << 76, 0x7 << 76)
_VARIANT = (0x3 << 62, 0x2 << 62)
_UUID_HEX = re.compile(r"[0-9a-f]{32}")


def new_id() -> str:
    """A fresh id: a UUIDv7 (RFC 9562: 48-bit Unix milliseconds, version 7, variant, 74 random bits), 32 hex digits."""
    value = (time.time_ns() // 1_000_000 & (1 << _MS_BITS) - 1) << _RANDOM_BITS | int.from_bytes(os.urandom(10))
    value = value & ~_VERSION[0] | _VERSION[1]
    return f"{value & ~_VARIANT[0] | _VARIANT[1]:032x}"


def issued_at(request_id: str) -> float | None:
    """When a UUIDv7 id (a generated one) was issued, in seconds since the epoch; None for any other id."""
    if _UUID_HEX.fullmatch(request_id) is None:
        return None
    value = int(request_id, 16)
    if value & _VERSION[0] != _VERSION[1] or value & _VARIANT[0] != _VARIANT[1]:
        return None
    return (value >> _RANDOM_BITS) / 1000


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
    return new_id()
