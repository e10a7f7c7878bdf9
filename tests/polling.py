"""Waiting in tests: poll a condition with a deadline, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import requests

from devstack.emulators import Service

T = TypeVar("T")


def wait_for(
    check: Callable[[], T], timeout: float, what: str, interval: float = 0.1, service: Service | None = None
) -> T:
    """Poll `check` until it returns something truthy and return that; AssertionError naming `what` on timeout.

    Connection errors count as "not yet". With `service`, its death ends the wait at once, and its log tail is
    part of the failure message.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (requests.RequestException, OSError):
            value = None
        if value:
            return value
        died = service is not None and not service.alive()
        if died or time.monotonic() > deadline:
            cause = f"{service.name} exited" if died and service else f"timed out after {timeout:g} s"
            tail = f"\n{service.log_tail()}" if service else ""
            raise AssertionError(f"{cause} waiting for {what}{tail}")
        time.sleep(interval)
