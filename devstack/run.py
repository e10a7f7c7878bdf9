"""`make run`: the whole system on loopback with the real wire protocols.

fake-gcs-server (filesystem backend, publishing OBJECT_FINALIZE to the Pub/Sub emulator), the Pub/Sub emulator,
the trainer (once, then on every data/ notification, and on TRAIN_SCHEDULE as the safety net), the predictor behind
nginx as in the pod (nginx on PORT, gunicorn on STACK_PREDICTOR_PORT, admin and metrics on STACK_ADMIN_PORT, all on
loopback), the ingest function under functions-framework and the bridge that delivers `incoming/` events to it.
Ctrl-C stops every child by PID, newest first.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.settings import load
from devstack import emulators, keys, proxy
from devstack.emulators import PubsubTarget, Service
from predictor.proxy import ProxySettings
from predictor.settings import PredictorSettings


class StackSettings(BaseSettings):
    """Ports, names and the state folder of the local stack (environment variables)."""

    model_config = SettingsConfigDict(extra="ignore")

    stack_dir: Path = Path(".stack")
    """Git-ignored folder: bucket contents (survive restarts), keys, logs."""
    stack_gcs_port: int = Field(4443, ge=1, le=65535)
    """fake-gcs-server port."""
    stack_pubsub_port: int = Field(emulators.BROWSER_BLOCKED_PORTS[-1], ge=1, le=65535)
    """Pub/Sub emulator port: by default one browsers refuse, as the emulator answers any web page's CORS request."""
    port: int = Field(8080, ge=1, le=65535)
    """Port of the web page and the API (nginx in front of the predictor; the predictor itself without nginx)."""
    stack_predictor_port: int = Field(8090, ge=1, le=65535)
    """gunicorn's port behind nginx."""
    stack_admin_port: int = Field(9090, ge=1, le=65535)
    """The admin port: /admin/*, /metrics and the probes (nginx in front of the predictor's, or the predictor's)."""
    stack_predictor_admin_port: int = Field(9091, ge=1, le=65535)
    """gunicorn's ADMIN_PORT behind nginx."""
    stack_function_port: int = Field(8081, ge=1, le=65535)
    """functions-framework port of the ingest function."""
    stack_grpc_port: int = Field(8082, ge=1, le=65535)
    """gRPC port of the predictor (GRPC_PORT of `python -m predictor.grpc`)."""
    google_cloud_project: str = "local-project"
    """Project id used by the emulators."""
    gcs_bucket: str = "iris-models"
    """The bucket created in fake-gcs-server."""
    model_events_topic: str = "model-events"
    """Topic fake-gcs-server publishes notifications to."""
    train_schedule: str = "*/30 * * * *"
    """Cron schedule of the local safety-net trainer loop (new data trains at once through the watcher)."""


def secret_file(path: Path) -> Path:
    """Create a random secret in `path` once (mode 600) and return the path."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path


def child_env(config: StackSettings, gcs: Service, pubsub: Service | None) -> dict[str, str]:
    """Environment every project process of the stack runs with."""
    env = {k: v for k, v in os.environ.items() if k not in {"PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"}}
    env |= {
        "GOOGLE_CLOUD_PROJECT": config.google_cloud_project,
        "GCS_BUCKET": config.gcs_bucket,
        "STORAGE_EMULATOR_HOST": gcs.host,
        "MODEL_EVENTS_TOPIC": config.model_events_topic,
        "DATA_EVENTS_TOPIC": config.model_events_topic,  # fake-gcs-server publishes every object to one topic
        **keys.env(config.stack_dir / "keys"),  # the trainer reads the private key, the predictor the public one
        "ADMIN_TOKEN": secret_file(config.stack_dir / "admin.token").read_text(),
        "TRAIN_SCHEDULE": config.train_schedule,
        "PORT": str(config.stack_predictor_port if proxy.nginx_binary() else config.port),
        "GRPC_PORT": str(config.stack_grpc_port),
        "HANDOVER_DIR": str(config.stack_dir / "handover"),  # the gRPC server follows the predictor's model agent
        "BIND_HOST": "127.0.0.1",
        "ADMIN_PORT": str(config.stack_predictor_admin_port if proxy.nginx_binary() else config.stack_admin_port),
        "ADMIN_BIND_HOST": "127.0.0.1",
        "WORKER_SOCKETS_DIR": str((config.stack_dir / "sockets").resolve()),  # nginx balances over the workers
    }
    if pubsub is not None:
        env["PUBSUB_EMULATOR_HOST"] = pubsub.host
    else:
        env["MODEL_EVENTS_ENABLED"] = "false"
    return env


def write_env_file(config: StackSettings, env: dict[str, str]) -> Path:
    """`.stack/env`: `source` it to run `python -m trainer` etc. against the local stack."""
    keys = [k for k in env if k not in os.environ or os.environ[k] != env[k]]
    path = config.stack_dir / "env"
    path.write_text("".join(f"export {k}={env[k]!r}\n" for k in sorted(keys) if k != "ADMIN_TOKEN"))
    return path


class Stack:
    """The children of `make run`, started in order and stopped newest first, by PID."""

    def __init__(self, config: StackSettings) -> None:
        self.config = config
        self.children: list[Service] = []
        self.logs = config.stack_dir / "logs"

    def start_emulators(self) -> tuple[Service, Service | None]:
        cfg = self.config
        pubsub = emulators.start_pubsub_emulator(cfg.stack_pubsub_port, self.logs / "pubsub.log")
        target = None
        if pubsub is None:
            print("Pub/Sub emulator not installed: running without events (the predictor's reconcile poll covers it)")
        else:
            self.children.append(pubsub)
            emulators.ensure_topic(pubsub.host, cfg.google_cloud_project, cfg.model_events_topic)
            target = PubsubTarget(pubsub.host, cfg.google_cloud_project, cfg.model_events_topic)
        root = (cfg.stack_dir / "gcs").resolve()
        root.mkdir(parents=True, exist_ok=True)
        gcs, upstream = emulators.start_guarded_fake_gcs(cfg.stack_gcs_port, root, self.logs, target)
        self.children += [upstream, gcs]  # stopped newest first: the guard, then fake-gcs-server
        emulators.ensure_bucket(gcs.host, cfg.google_cloud_project, cfg.gcs_bucket)
        return gcs, pubsub

    def spawn(self, name: str, cmd: list[str], env: dict[str, str], port: int = 0) -> Service:
        service = emulators.spawn(name, cmd, port, self.logs / f"{name}.log", env)
        self.children.append(service)
        return service

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop(timeout=25)
        self.children.clear()

    def watch(self) -> int:
        """Block until Ctrl-C / SIGTERM (0) or until a child dies (1)."""
        while True:
            dead = [c for c in self.children if not c.alive()]
            if dead:
                print(f"{dead[0].name} exited ({dead[0].process.returncode}); see {dead[0].log_path}", file=sys.stderr)
                return 1
            time.sleep(0.5)


def start_project(stack: Stack, env: dict[str, str], events: bool) -> None:
    """Trainer once (foreground), then the data watcher, the safety-net scheduler, predictor, function and bridge."""
    py, cfg = sys.executable, stack.config
    first = subprocess.run([py, "-m", "trainer"], env=env, capture_output=True, text=True, check=False)
    print(f"trainer: {first.stdout.strip() or first.stderr.strip()[-300:]}")
    if events:
        stack.spawn("trainer-watch", [py, "-m", "trainer", "--watch"], env)
    stack.spawn("trainer-scheduler", [py, "-m", "trainer", "--schedule"], env)
    stack.spawn("predictor", [py, "-m", "predictor"], env, int(env["PORT"]))
    stack.spawn("predictor-grpc", [py, "-m", "predictor.grpc"], env, cfg.stack_grpc_port)
    start_front(stack, env)
    function_cmd = [py, "-m", "functions_framework", "--source", "functions/main.py", "--target", "on_upload",
                    "--signature-type", "cloudevent", "--host", "127.0.0.1",
                    "--port", str(cfg.stack_function_port)]  # fmt: skip
    stack.spawn("function", function_cmd, env | {"PYTHONPATH": str(Path.cwd())}, cfg.stack_function_port)
    if events:
        url = f"http://127.0.0.1:{cfg.stack_function_port}/"
        stack.spawn("bridge", [py, "-m", "devstack.bridge", "--function-url", url], env)


def start_front(stack: Stack, env: dict[str, str]) -> None:
    """nginx on PORT in front of the predictor, as in the pod; without nginx the predictor answers on PORT itself."""
    cfg = stack.config
    settings = load(ProxySettings).model_copy(
        update={"proxy_listen_host": "127.0.0.1", "proxy_port": cfg.port, "proxy_runtime_dir": cfg.stack_dir / "proxy"}
    )
    max_body = int(env.get("MAX_BODY_BYTES", PredictorSettings.model_fields["max_body_bytes"].default))
    settings = settings.model_copy(update={"proxy_admin_port": cfg.stack_admin_port})
    admin, sockets = f"127.0.0.1:{env['ADMIN_PORT']}", proxy.worker_sockets(env)
    front = proxy.start_proxy(settings, f"127.0.0.1:{env['PORT']}", max_body, stack.logs / "proxy.log", admin, sockets)
    if front is None:
        print("nginx not installed (apt-get install nginx): the predictor answers slow clients itself", file=sys.stderr)
    else:
        stack.children.append(front)


def banner(cfg: StackSettings, env_file: Path) -> str:
    return f"""
Local stack is up (logs in {cfg.stack_dir}/logs, bucket files in {cfg.stack_dir}/gcs):
  web page and API   http://127.0.0.1:{cfg.port}/   (curl -d '[5.1,3.5,1.4,0.2]' -H 'Content-Type: application/json' \
http://127.0.0.1:{cfg.port}/api)
  V2 over gRPC       127.0.0.1:{cfg.stack_grpc_port}   (Open Inference Protocol: tritonclient.grpc, kserve)
  admin, metrics     http://127.0.0.1:{cfg.stack_admin_port}/metrics   (/admin/*: token in {cfg.stack_dir}/admin.token)
  drop training CSV  make drop CSV=path/to/file.csv      (validated into data/ or quarantine/)
  retrain now        make train    (new data in data/ trains at once; the safety net runs on '{cfg.train_schedule}')
  environment        source {env_file}
Ctrl-C stops everything."""


def main() -> int:
    config = load(StackSettings)
    stack = Stack(config)
    stack.logs.mkdir(parents=True, exist_ok=True)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        gcs, pubsub = stack.start_emulators()
        env = child_env(config, gcs, pubsub)
        start_project(stack, env, events=pubsub is not None)
        print(banner(config, write_env_file(config, env)), flush=True)
        return stack.watch()
    except KeyboardInterrupt:
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not abandon the cleanup
            signal.signal(sig, signal.SIG_IGN)
        print("stopping the local stack ...", flush=True)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
