"""``python -m predictor``: the pod's composition root: the model agent and the app under gunicorn, with
predictor/gunicorn_conf.py's settings and hooks; each worker builds its app with pod-wide readiness."""

from __future__ import annotations

import importlib
import os
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication


class Server(BaseApplication):
    """gunicorn with the settings of ``predictor.gunicorn_conf``; each worker calls ``create_app``."""

    def load_config(self) -> None:
        conf = importlib.import_module("predictor.gunicorn_conf")
        for key, value in vars(conf).items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from predictor.http.app import create_app

        return create_app(pod_workers=self.cfg.workers)


def main() -> None:
    # Before prometheus_client is imported anywhere: its multiprocess mode is chosen at import time.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="predictor-metrics-")
    os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "true")
    Server().run()


if __name__ == "__main__":
    main()
