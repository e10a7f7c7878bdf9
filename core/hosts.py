"""Which `Host` headers a server answers: a web page that rebinds its own DNS name to 127.0.0.1 reaches a loopback
server with its own name in `Host`, so a server that answers only its loopback names cannot be read that way.

ALLOWED_HOSTS is a comma-separated list: `*` (any Host: production, where the Gateway and the load balancer front the
pods and Kubernetes probes send the pod's IP), or names, each either `name` (any port) or `name:port`; IPv6 addresses
in brackets (`[::1]`). Matching ignores case; a request without a Host header matches only `*`.
"""

from __future__ import annotations

import re

from core.errors import ServiceError

ANY = "*"
_ENTRY = re.compile(r"^(?:[a-z0-9_.-]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$")


class HostNotAllowed(ServiceError):
    """The request's Host header names no server this process answers as (ALLOWED_HOSTS)."""

    status = 400
    code = "host_not_allowed"


def parse(text: str) -> frozenset[str]:
    """The entries of an ALLOWED_HOSTS value; ValueError names a malformed one."""
    entries = frozenset(e.strip().lower() for e in text.split(",") if e.strip())
    bad = sorted(e for e in entries if e != ANY and not _ENTRY.match(e))
    if bad or not entries:
        raise ValueError(f"not a host or host:port: {', '.join(bad) or 'empty list'} (use {ANY!r} for any Host)")
    return entries


def _name(host: str) -> str:
    """`host` without its numeric port (`[::1]:80` -> `[::1]`, `a:80` -> `a`); anything else unchanged."""
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and (name.endswith("]") or ":" not in name):
        return name
    return host


def allowed(host: str | None, entries: frozenset[str]) -> bool:
    """Whether a request with this Host header is answered."""
    if ANY in entries:
        return True
    if not host:
        return False
    host = host.strip().lower()
    return host in entries or _name(host) in entries


def check(host: str | None, entries: frozenset[str]) -> None:
    """Raise HostNotAllowed unless `host` is allowed."""
    if not allowed(host, entries):
        raise HostNotAllowed(f"Host {host!r} is not served here (ALLOWED_HOSTS)", {"host": host})
