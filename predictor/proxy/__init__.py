"""The nginx front of a predictor pod: its settings and its configuration, rendered from one template.

gunicorn reads a request on one of its few threads, so a client that trickles its header or body one byte a second
holds that thread for as long as it likes: 2 x workers x threads such clients stall a pod, probes included. nginx
reads every request whole (header and body timeouts, body size limit) before passing it on, and takes every answer
whole, so gunicorn's threads only ever see complete requests and fast readers. Its public server never forwards
``/admin/*`` or ``/metrics``: a second server on PROXY_ADMIN_PORT fronts the predictor's ADMIN_PORT listener
(on loopback) for the probes, Prometheus and the token-guarded admin calls, with the same header and body limits, so
clients trickling bytes to the admin port cannot take gunicorn's threads either. With WORKER_SOCKETS_DIR, nginx
balances requests over one socket per gunicorn worker (predictor.workers) instead of leaving it to an accept race.

``python -m predictor.proxy --upstream HOST:PORT`` prints the configuration (k8s/base/proxy/nginx.conf is its output
for the pod); the local stack renders it into its state folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jinja2
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.settings import AbsolutePath

TEMPLATE = "nginx.conf.j2"


class ProxySettings(BaseSettings):
    """One nginx in front of one predictor (environment variables of `python -m predictor.proxy`)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    proxy_listen_host: str = "0.0.0.0"
    """Address nginx listens on for public traffic: all interfaces in a pod; the local stack sets 127.0.0.1."""
    proxy_port: int = Field(8080, ge=1, le=65535)
    """Public port nginx listens on (the pod's `http` port; the local stack uses PORT)."""
    proxy_health_port: int = Field(8079, ge=1, le=65535)
    """Port of nginx's own liveness answer (`/healthz`), which never waits for the predictor."""
    proxy_admin_port: int = Field(9090, ge=1, le=65535)
    """Port nginx listens on in front of the predictor's ADMIN_PORT (probes, Prometheus, `/admin/*`), same limits; the
    local stack uses STACK_ADMIN_PORT."""
    proxy_runtime_dir: AbsolutePath = Path("/tmp")  # noqa: S108 - the pod's own emptyDir
    """Writable folder for nginx's pid file and the temporary files of large bodies (made absolute: nginx would read a
    relative one against its prefix); the local stack uses `.stack/proxy`."""
    proxy_header_timeout: int = Field(10, ge=1)
    """Seconds a client gets to send a whole request header; slower ones are dropped (408)."""
    proxy_body_timeout: int = Field(10, ge=1)
    """Seconds allowed between two reads of a request body; a longer pause drops the request (408)."""
    proxy_send_timeout: int = Field(10, ge=1)
    """Seconds allowed between two writes of an answer to a client that does not read it."""
    proxy_keepalive_timeout: int = Field(620, ge=1)
    """Seconds an idle client connection stays open (above the Google load balancer's 600 s, so it closes first)."""
    proxy_read_timeout: int = Field(60, ge=1)
    """Seconds nginx waits for the predictor's answer; then it answers 503."""
    proxy_workers: int = Field(1, ge=1)
    """nginx worker processes (one event loop each)."""
    proxy_worker_connections: int = Field(4096, ge=64)
    """Connections one nginx worker holds at most (clients and predictor together)."""


def render(
    settings: ProxySettings,
    upstream: str,
    max_body_bytes: int,
    admin_upstream: str | None = None,
    worker_sockets: Sequence[Path] = (),
) -> str:
    """nginx.conf for `settings`, passing complete requests of at most `max_body_bytes` to `upstream` (host:port).

    With `admin_upstream` (the predictor's ADMIN_PORT listener, host:port) nginx fronts it on PROXY_ADMIN_PORT; with
    `worker_sockets` public requests go to the worker with the fewest in flight, `upstream` only when none answers.
    """
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - an nginx configuration, not HTML
    )
    template = environment.get_template(TEMPLATE)
    settings = settings.model_copy(update={"proxy_runtime_dir": settings.proxy_runtime_dir.absolute()})
    return template.render(
        proxy=settings,
        upstream=upstream,
        max_body_bytes=max_body_bytes,
        admin_upstream=admin_upstream,
        worker_sockets=[str(path) for path in worker_sockets],
    )
