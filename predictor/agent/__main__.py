"""``python -m predictor.agent``: run the pod's model agent until SIGTERM or SIGINT."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path


def main() -> int:
    from core import logs
    from core.settings import load
    from predictor.metrics import name_files_as_agent

    name_files_as_agent()  # before predictor.agent.service creates any metric
    from predictor.agent.service import build
    from predictor.settings import PredictorSettings

    settings = load(PredictorSettings)
    logs.setup(settings.log_level)
    if not settings.handover_dir:
        print(
            "configuration error: HANDOVER_DIR: the model agent needs the directory it hands models over in",
            file=sys.stderr,
        )
        return 2
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    agent = build(settings, Path(settings.handover_dir))
    agent.start()
    if settings.agent_health_port is not None:
        from core import observe

        observe.serve(
            settings.admin_bind_host, settings.agent_health_port, agent.probe, agent.health.registry, "model-agent"
        )
    parent = os.getppid()
    while not stopping.wait(1.0):
        if os.getppid() != parent:  # the gunicorn master that started us is gone
            break
    agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
