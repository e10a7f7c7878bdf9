"""`make run`: the whole system on loopback with the real wire protocols.

fake-gcs-server (filesystem backend, sending OBJECT_FINALIZE to the Pub/Sub emulator), the Pub/Sub emulator,
the trainer (once, then on every data/ notification, and on TRAIN_SCHEDULE as the safety net), the predictor behind
nginx as in the pod (nginx on PORT, gunicorn on STACK_PREDICTOR_PORT, admin and metrics on STACK_ADMIN_PORT, all on
loopback), the ingest function under functions-framework and the bridge that delivers `incoming/` events to it.
Ctrl-C stops the project's processes at once, then the emulators, every child by PID.
A child that exits is started again after a backoff (1 s, doubling to 30 s) while the rest keeps running; one that
crashes STACK_RESTART_LIMIT times within STACK_RESTART_WINDOW seconds is reported (exit code, last log lines) and
left down.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.settings import AbsolutePath, load
from devstack import emulators, keys, prometheus, proxy
from devstack.emulators import PubsubTarget, Service
from predictor.proxy import ProxySettings
from predictor.settings import PredictorSettings


class StackSettings(BaseSettings):
    """Ports, names and the state folder of the local stack (environment variables)."""

    model_config = SettingsConfigDict(extra="ignore")

    stack_dir: AbsolutePath = Path(".stack")
    """Git-ignored folder: bucket contents (survive restarts), keys, logs, `env` (a relative one is taken from the
    folder `make run` starts in)."""
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
    stack_notifications_topic: str = "model-events"
    """The one topic fake-gcs-server sends every object's notification to: the stack's MODEL_EVENTS_TOPIC,
    DATA_EVENTS_TOPIC and INCOMING_EVENTS_TOPIC (each reader filters its own prefix)."""
    train_schedule: str = "*/30 * * * *"
    """Cron schedule of the local safety-net trainer loop (new data trains at once through the watcher)."""
    stack_prometheus_port: int = Field(9099, ge=1, le=65535)
    """Port of the stack's Prometheus (Debian's, when installed): it scrapes the predictor, the model agent and the data
    watcher and evaluates the manifests' alert rules (k8s/base/alert-rules.yaml)."""
    agent_health_port: int = Field(9093, ge=1, le=65535)
    """The model agent's /healthz and /metrics listener (its AGENT_HEALTH_PORT), which Prometheus scrapes."""
    watch_health_port: int = Field(9094, ge=1, le=65535)
    """The data watcher's /healthz and /metrics listener (its WATCH_HEALTH_PORT), which Prometheus scrapes."""
    stack_nginx: bool = True
    """Put Debian's nginx in front of the predictor when it is installed; false runs the stack as on a machine
    without it (the predictor itself answers on PORT and STACK_ADMIN_PORT)."""
    stack_prometheus: bool = True
    """Start Debian's Prometheus when it is installed; false runs the stack as on a machine without it."""
    stack_restart_limit: int = Field(5, ge=1)
    """A child that exits this many times within STACK_RESTART_WINDOW is reported (exit code, last lines of its log)
    and left down; the rest keeps running."""
    stack_restart_window: float = Field(300.0, gt=0)
    """Seconds over which a child's exits are counted against STACK_RESTART_LIMIT."""


def port_variables() -> tuple[str, ...]:
    """Every port the local stack listens on, as its environment variable: StackSettings' and nginx's health port."""
    own = [name.upper() for name in StackSettings.model_fields if name == "port" or name.endswith("_port")]
    return (*own, "PROXY_HEALTH_PORT")


def nginx(config: StackSettings) -> str | None:
    """The nginx binary the stack puts in front of the predictor; None when not installed or STACK_NGINX=false."""
    return proxy.nginx_binary() if config.stack_nginx else None


def prometheus_binary(config: StackSettings) -> str | None:
    """The Prometheus binary the stack starts; None when not installed or STACK_PROMETHEUS=false."""
    return prometheus.binary() if config.stack_prometheus else None


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
        "MODEL_EVENTS_TOPIC": config.stack_notifications_topic,  # fake-gcs-server sends every object to one topic
        "DATA_EVENTS_TOPIC": config.stack_notifications_topic,
        "INCOMING_EVENTS_TOPIC": config.stack_notifications_topic,
        **keys.env(config.stack_dir / "keys"),  # the trainer reads the private key, the predictor the public one
        "ADMIN_TOKEN": secret_file(config.stack_dir / "admin.token").read_text(),
        "TRAIN_SCHEDULE": config.train_schedule,
        "PORT": str(config.stack_predictor_port if nginx(config) else config.port),
        "GRPC_PORT": str(config.stack_grpc_port),
        "HANDOVER_DIR": str(config.stack_dir / "handover"),  # the gRPC server follows the predictor's model agent
        "BIND_HOST": "127.0.0.1",
        "ADMIN_PORT": str(config.stack_predictor_admin_port if nginx(config) else config.stack_admin_port),
        "ADMIN_BIND_HOST": "127.0.0.1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,[::1]",  # the predictor and the function refuse DNS-rebound names
        "WORKER_SOCKETS_DIR": str((config.stack_dir / "sockets").resolve()),  # nginx balances over the workers
        "AGENT_HEALTH_PORT": str(config.agent_health_port),  # the agent listens on ADMIN_BIND_HOST
        "WATCH_HEALTH_PORT": str(config.watch_health_port),
        "WATCH_HEALTH_HOST": "127.0.0.1",
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


RESTART_BACKOFF = 1.0
"""Seconds before the first restart of a child that exited; doubled for each further exit within the window."""
RESTART_BACKOFF_MAX = 30.0
"""Longest wait before a restart."""


@dataclass
class Child:
    """One supervised child: the running service, how to start it again, and its recent exits."""

    service: Service
    start: Callable[[], Service]
    exits: list[float] = field(default_factory=list)
    restart_at: float | None = None
    given_up: bool = False

    @property
    def name(self) -> str:
        return self.service.name


class Stack:
    """The children of `make run`, started in order, restarted when they exit, stopped newest first, by PID."""

    def __init__(self, config: StackSettings) -> None:
        self.config = config
        self.children: list[Child] = []
        self.emulators = 0
        """How many of the children (the first ones) are emulators."""
        self.logs = config.stack_dir / "logs"

    def add(self, start: Callable[[], Service]) -> Service:
        """Start a child with `start` (which returns once it is up) and supervise it."""
        service = start()
        self.children.append(Child(service, start))
        return service

    def start_emulators(self) -> tuple[Service, Service | None]:
        cfg = self.config
        if emulators.pubsub_emulator_command(cfg.stack_pubsub_port) is None:
            print("Pub/Sub emulator not installed: running without events (the predictor's reconcile poll covers it)")
            pubsub, target = None, None
        else:
            pubsub = self.add(self.start_pubsub)
            target = PubsubTarget(pubsub.host, cfg.google_cloud_project, cfg.stack_notifications_topic)
        root = (cfg.stack_dir / "gcs").resolve()
        root.mkdir(parents=True, exist_ok=True)
        gcs, upstream = emulators.start_guarded_fake_gcs(cfg.stack_gcs_port, root, self.logs, target)
        gcs_log = self.logs / "gcs.log"
        self.children.append(  # stopped newest first: the guard, then fake-gcs-server
            Child(
                upstream, lambda: emulators.start_fake_gcs(upstream.port, root, gcs_log, target, public_port=gcs.port)
            )
        )
        self.children.append(Child(gcs, lambda: emulators.start_gcs_guard(gcs.port, upstream.port, self.logs)))
        emulators.ensure_bucket(gcs.host, cfg.google_cloud_project, cfg.gcs_bucket)
        self.emulators = len(self.children)
        return gcs, pubsub

    def start_pubsub(self) -> Service:
        """The Pub/Sub emulator with the stack's topic (a restarted emulator starts empty)."""
        cfg = self.config
        pubsub = emulators.start_pubsub_emulator(cfg.stack_pubsub_port, self.logs / "pubsub.log")
        if pubsub is None:
            raise RuntimeError("the Pub/Sub emulator is no longer installed")
        try:
            emulators.ensure_topic(pubsub.host, cfg.google_cloud_project, cfg.stack_notifications_topic)
        except BaseException:
            pubsub.stop()
            raise
        return pubsub

    def spawn(self, name: str, cmd: list[str], env: dict[str, str], port: int = 0) -> Service:
        return self.add(lambda: emulators.spawn(name, cmd, port, self.logs / f"{name}.log", env))

    def stop(self) -> None:
        """The project's processes all at once (each drains on its own, the slowest sets the pace), then the emulators
        they were talking to, newest first."""
        project, emulated = self.children[self.emulators :], self.children[: self.emulators]
        with ThreadPoolExecutor(max_workers=max(1, len(project))) as pool:
            list(pool.map(lambda child: child.service.stop(timeout=25), project))
        for child in reversed(emulated):
            child.service.stop(timeout=25)
        self.children.clear()

    def watch(self, poll: float = 0.5) -> int:
        """Supervise the children until Ctrl-C / SIGTERM (0), or until every child was given up on (1)."""
        while True:
            for child in self.children:
                self.tend(child)
            if self.children and all(c.given_up for c in self.children):
                return 1
            time.sleep(poll)

    def tend(self, child: Child) -> None:
        """Notice that `child` exited, or start it again once its backoff has passed."""
        if child.given_up:
            return
        if child.restart_at is None:
            if not child.service.alive():
                child.service.stop(timeout=5)  # whatever is left of its process group, so the ports are free
                self.exited(child, f"exit code {child.service.process.returncode}")
            return
        if time.monotonic() < child.restart_at:
            return
        child.restart_at = None
        try:
            child.service = child.start()
        except Exception as e:  # it died again during startup, or never became ready
            self.exited(child, str(e).splitlines()[0])
            return
        print(f"{child.name} restarted (pid {child.service.process.pid})", file=sys.stderr, flush=True)

    def exited(self, child: Child, reason: str) -> None:
        """Schedule the restart of a child that exited, or give up on one that keeps exiting."""
        now, cfg = time.monotonic(), self.config
        child.exits = [t for t in child.exits if now - t < cfg.stack_restart_window] + [now]
        if len(child.exits) >= cfg.stack_restart_limit:
            child.given_up = True
            print(
                f"{child.name} exited {len(child.exits)} times within {cfg.stack_restart_window:.0f} s ({reason}); "
                f"left down, the rest keeps running. Last lines of {child.service.log_path}:\n"
                f"{child.service.log_tail(15)}",
                file=sys.stderr,
                flush=True,
            )
            return
        delay = min(RESTART_BACKOFF_MAX, RESTART_BACKOFF * 2 ** (len(child.exits) - 1))
        child.restart_at = now + delay
        print(
            f"{child.name} exited ({reason}); restarting in {delay:.0f} s; see {child.service.log_path}",
            file=sys.stderr,
            flush=True,
        )


def start_project(stack: Stack, env: dict[str, str], events: bool) -> None:
    """The evaluation set and the trainer once (foreground), then the data watcher, the safety-net scheduler,
    predictor, function and bridge."""
    py, cfg = sys.executable, stack.config
    # The operator's step of the setup: the trusted evaluation set under eval/, unless one verifies already.
    seeded = subprocess.run([py, "-m", "trainer.evalset", "seed"], env=env, capture_output=True, text=True, check=False)
    print(f"evaluation set: {seeded.stdout.strip() or seeded.stderr.strip()[-300:]}")
    first = subprocess.run([py, "-m", "trainer"], env=env, capture_output=True, text=True, check=False)
    print(f"trainer: {first.stdout.strip() or first.stderr.strip()[-300:]}")
    if events:
        stack.spawn("trainer-watch", [py, "-m", "trainer", "--watch"], env)
    stack.spawn("trainer-scheduler", [py, "-m", "trainer", "--schedule"], env)
    # One metrics folder for the pod's processes, as the pod's emptyDir: the gRPC server's samples join /metrics.
    pod_metrics = stack.config.stack_dir.resolve() / "metrics"
    pod_metrics.mkdir(parents=True, exist_ok=True)
    pod_env = env | {"PROMETHEUS_MULTIPROC_DIR": str(pod_metrics)}
    stack.spawn("predictor", [py, "-m", "predictor"], pod_env, int(env["PORT"]))
    stack.spawn("predictor-grpc", [py, "-m", "predictor.grpc"], pod_env, cfg.stack_grpc_port)
    start_front(stack, env)
    function_cmd = [py, "-m", "functions_framework", "--source", "functions/main.py", "--target", "ingest_upload",
                    "--signature-type", "cloudevent", "--host", "127.0.0.1",
                    "--port", str(cfg.stack_function_port)]  # fmt: skip
    stack.spawn("function", function_cmd, env | {"PYTHONPATH": str(Path.cwd())}, cfg.stack_function_port)
    if events:
        url = f"http://127.0.0.1:{cfg.stack_function_port}/"
        bridge = [py, "-m", "devstack.bridge", "--function-url", url, "--subscription", "ingest-bridge"]
        stack.spawn("bridge", bridge, env)  # a named subscription: a restarted bridge gets what came meanwhile
    start_prometheus(stack, events)


def start_prometheus(stack: Stack, events: bool) -> None:
    """Prometheus scraping the predictor's admin port, the model agent and the data watcher, with the alert rules of
    the manifests; without it installed one line says so."""
    cfg = stack.config
    if prometheus_binary(cfg) is None:
        missing = "prometheus not installed (apt-get install prometheus)"
        print(f"{'STACK_PROMETHEUS=false' if prometheus.binary() else missing}: no local Prometheus", file=sys.stderr)
        return
    targets = [prometheus.Target("predictor", cfg.stack_admin_port), prometheus.Target("model-agent",
               cfg.agent_health_port)]  # fmt: skip
    if events:
        targets.append(prometheus.Target("trainer-watch", cfg.watch_health_port))

    def start() -> Service:
        service = prometheus.start(
            cfg.stack_prometheus_port, targets, cfg.stack_dir / "prometheus", stack.logs / "prometheus.log"
        )
        if service is None:
            raise RuntimeError("prometheus is no longer installed")
        return service

    stack.add(start)


def start_front(stack: Stack, env: dict[str, str]) -> None:
    """nginx on PORT in front of the predictor, as in the pod; without nginx the predictor answers on PORT itself."""
    cfg = stack.config
    settings = load(ProxySettings).model_copy(
        update={"proxy_listen_host": "127.0.0.1", "proxy_port": cfg.port, "proxy_admin_port": cfg.stack_admin_port,
                "proxy_runtime_dir": cfg.stack_dir / "proxy"}
    )  # fmt: skip
    max_body = int(env.get("MAX_BODY_BYTES", PredictorSettings.model_fields["max_body_bytes"].default))
    admin, sockets = f"127.0.0.1:{env['ADMIN_PORT']}", proxy.worker_sockets(env)
    if nginx(cfg) is None:
        why = "STACK_NGINX=false" if proxy.nginx_binary() else "nginx not installed (apt-get install nginx)"
        print(f"{why}: the predictor answers slow clients itself", file=sys.stderr)
        return

    def start() -> Service:
        front = proxy.start_proxy(
            settings, f"127.0.0.1:{env['PORT']}", max_body, stack.logs / "proxy.log", admin, sockets
        )
        if front is None:
            raise RuntimeError("nginx is no longer installed")
        return front

    stack.add(start)


def banner(cfg: StackSettings, env_file: Path, with_prometheus: bool) -> str:
    url = f"http://127.0.0.1:{cfg.stack_prometheus_port}/"
    alerts = f"\n  Prometheus         {url}   (/targets, /alerts: k8s/base/alert-rules.yaml)" if with_prometheus else ""
    return f"""
Local stack is up (logs in {cfg.stack_dir}/logs, bucket files in {cfg.stack_dir}/gcs):
  web page and API   http://127.0.0.1:{cfg.port}/   (curl -d '[5.1,3.5,1.4,0.2]' -H 'Content-Type: application/json' \
http://127.0.0.1:{cfg.port}/api)
  V2 over gRPC       127.0.0.1:{cfg.stack_grpc_port}   (Open Inference Protocol: tritonclient.grpc, kserve)
  admin, metrics     http://127.0.0.1:{cfg.stack_admin_port}/metrics   (/admin/*: token in \
{cfg.stack_dir}/admin.token){alerts}
  feedback           curl -H "Authorization: Bearer $(cat {cfg.stack_dir}/keys/feedback.token)" \
-H 'Content-Type: application/json' -d '{{"id": "<X-Request-Id of an answer>", "label": "setosa"}}' \
http://127.0.0.1:{cfg.port}/v1/feedback
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

    # SIGINT too: a stack started in the background of a script inherits SIGINT ignored, and Ctrl-C or `kill -INT`
    # must still stop it
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        gcs, pubsub = stack.start_emulators()
        env = child_env(config, gcs, pubsub)
        start_project(stack, env, events=pubsub is not None)
        with_prometheus = any(child.name == "prometheus" for child in stack.children)
        print(banner(config, write_env_file(config, env), with_prometheus), flush=True)
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
