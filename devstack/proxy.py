"""nginx in front of a local predictor, as in the pod: started from the rendered configuration, stopped by PID.

Used by ``make run`` and the slow-client fault checks. nginx is Debian's (``apt-get install nginx``; ``.ci/run``
installs it when missing). Run as root (CI containers), its workers would switch to ``nobody``, who cannot reach
the runtime folder; they stay with the user who started it instead, like every other process of the stack.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from devstack.emulators import LOOPBACK, Service, _http_ok, _wait_ready, spawn
from predictor.proxy import ProxySettings, render


def nginx_binary() -> str | None:
    """nginx from PATH or Debian's /usr/sbin (often not on a user's PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def start_proxy(settings: ProxySettings, upstream: str, max_body_bytes: int, log_path: Path) -> Service | None:
    """nginx with `settings` in front of `upstream` (host:port), once it answers; None when nginx is missing."""
    exe = nginx_binary()
    if exe is None:
        return None
    runtime = settings.proxy_runtime_dir.absolute()  # nginx's prefix; render() writes it absolute as well
    runtime.mkdir(parents=True, exist_ok=True)
    config = runtime / "nginx.conf"
    config.write_text(render(settings, upstream, max_body_bytes))
    directives = "daemon off; master_process on;"
    if os.geteuid() == 0:
        directives += " user root root;"
    cmd = [exe, "-c", str(config), "-p", str(runtime), "-e", "stderr", "-g", directives]
    service = spawn("proxy", cmd, settings.proxy_port, log_path)
    health = f"http://{LOOPBACK}:{settings.proxy_health_port}/healthz"
    return _wait_ready(service, lambda: _http_ok(health))
