"""nginx in front of a local predictor, as in the pod: started from the rendered configuration, stopped by PID.

Used by ``make run``, the slow-client fault checks and the benchmark's pod layout. nginx is Debian's
(``apt-get install nginx``; ``.ci/run`` installs it when missing). Run as root (CI containers), its workers would
switch to ``nobody``, who cannot reach the runtime folder; they stay with the user who started it instead, like
every other process of the stack.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from devstack.emulators import LOOPBACK, Service, _http_ok, _wait_ready, spawn
from predictor import workers
from predictor.proxy import ProxySettings, render
from predictor.settings import PredictorSettings


def nginx_binary() -> str | None:
    """nginx from PATH or Debian's /usr/sbin (often not on a user's PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def worker_sockets(env: dict[str, str]) -> list[Path]:
    """The worker sockets of a predictor started with `env` (WORKER_SOCKETS_DIR, WEB_CONCURRENCY); none when unset."""
    directory = env.get("WORKER_SOCKETS_DIR")
    if not directory:
        return []
    default = PredictorSettings.model_fields["web_concurrency"].default
    return workers.socket_paths(directory, int(env.get("WEB_CONCURRENCY", default)))


def start_proxy(
    settings: ProxySettings,
    upstream: str,
    max_body_bytes: int,
    log_path: Path,
    admin_upstream: str | None = None,
    sockets: list[Path] | None = None,
) -> Service | None:
    """nginx with `settings` in front of `upstream` (host:port), once it answers; None when nginx is missing.

    With `admin_upstream` it also fronts the predictor's ADMIN_PORT on PROXY_ADMIN_PORT; with `sockets` (the
    workers' own, `worker_sockets`) it balances public requests over them.
    """
    exe = nginx_binary()
    if exe is None:
        return None
    runtime = settings.proxy_runtime_dir.absolute()  # nginx's prefix; render() writes it absolute as well
    runtime.mkdir(parents=True, exist_ok=True)
    config = runtime / "nginx.conf"
    config.write_text(render(settings, upstream, max_body_bytes, admin_upstream, sockets or []))
    directives = "daemon off; master_process on;"
    if os.geteuid() == 0:
        directives += " user root root;"
    cmd = [exe, "-c", str(config), "-p", str(runtime), "-e", "stderr", "-g", directives]
    service = spawn("proxy", cmd, settings.proxy_port, log_path)
    health = f"http://{LOOPBACK}:{settings.proxy_health_port}/healthz"
    return _wait_ready(service, lambda: _http_ok(health))
