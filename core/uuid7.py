"""Generated request ids: UUIDv7 (RFC 9562) as 32 lower-case hex digits. Pure: no I/O.

The predictor issues them (predictor.predlog.ids) and judges feedback for an old one `late`; the trainer's feedback
joiner reads an id's issue time to find the prediction log files shipped around it. A client's own id is no UUIDv7
of this form, and has no issue time.
"""

from __future__ import annotations

import os
import re
import time

_MS_BITS, _RANDOM_BITS = 48, 80
_VERSION = (0xF << 76, 0x7 << 76)
_VARIANT = (0x3 << 62, 0x2 << 62)
_UUID_HEX = re.compile(r"[0-9a-f]{32}")


def new(at: float | None = None) -> str:
    """A fresh id: a UUIDv7 (48-bit Unix milliseconds, version 7, variant, 74 random bits), 32 hex digits; issued
    now, or at `at` seconds since the epoch (an id as it was issued then, for replaying traffic)."""
    millis = time.time_ns() // 1_000_000 if at is None else int(at * 1000)
    value = (millis & (1 << _MS_BITS) - 1) << _RANDOM_BITS | int.from_bytes(os.urandom(10))
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
