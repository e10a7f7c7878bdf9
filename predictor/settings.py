"""Predictor settings (environment variables)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, SecretStr, model_validator

from core.settings import DriftSettings, TrustSettings
from predictor.predlog.settings import PredictionLogSettings

UNIX_PATH_MAX = 107
"""Longest path of a Unix socket on Linux (sun_path holds 108 bytes with the terminating NUL)."""


class PredictorSettings(TrustSettings, PredictionLogSettings, DriftSettings):
    """One predictor pod: HTTP server, model loading, event subscription and admin access, the prediction log
    (predictor.predlog) and the drift window its agent keeps (core.drift)."""

    port: int = Field(8080, ge=1, le=65535)
    """TCP port gunicorn binds on BIND_HOST (`8000` on loopback in the pod, behind nginx)."""
    bind_host: str = "0.0.0.0"
    """Address gunicorn listens on; the pod and the local stack set 127.0.0.1 (only nginx reaches it)."""
    grpc_port: int = Field(8081, ge=1, le=65535)
    """TCP port of the gRPC server (`python -m predictor.grpc`, Open Inference Protocol V2) on BIND_HOST."""
    grpc_threads: int = Field(8, ge=1)
    """Threads of the gRPC server's handler pool."""
    admin_port: int | None = Field(None, ge=1, le=65535)
    """Second gunicorn listener, the only one serving /admin/* and /metrics; unset, they share PORT. In the pod
    (9091) and `make run` it is on loopback behind nginx's PROXY_ADMIN_PORT."""
    admin_bind_host: str = "0.0.0.0"
    """Address of the ADMIN_PORT listener; the pod and the local stack set 127.0.0.1 (nginx fronts it)."""
    web_concurrency: int = Field(2, ge=1)
    """gunicorn worker processes (gunicorn's own WEB_CONCURRENCY variable)."""
    worker_class: Literal["sync", "gthread"] = "gthread"
    """gunicorn worker class: sync (one request at a time, no keep-alive) or gthread (WORKER_THREADS, keep-alive;
    gunicorn's, fair on the shared socket: `predictor.workers.ThreadWorker`)."""
    worker_threads: int = Field(4, ge=1)
    """Threads per gunicorn worker (gthread worker class)."""
    reuse_port: bool = False
    """Each worker listens on its own SO_REUSEPORT socket (the kernel hashes connections over them); off: one socket.
    Measured in bench/: no consistent gain on 2 cores, and a frozen worker keeps its share of connections until
    WORKER_TIMEOUT restarts it."""
    worker_sockets_dir: str | None = None
    """Folder where each worker also listens on its own Unix socket, `worker-<slot>.sock`, for nginx to balance over
    (`least_conn`); unset: only the shared PORT (its accept race can leave one worker with every connection). The
    pod sets `/run/sockets` (an emptyDir shared with the proxy), the local stack `.stack/sockets`."""
    graceful_timeout: int = Field(20, ge=1)
    """Seconds a stopping worker gets to finish in-flight requests (the agent takes at most half to unsubscribe)."""
    worker_timeout: int = Field(30, ge=1)
    """Seconds of silence after which gunicorn restarts a worker."""
    model_name: str = "iris"
    """Model name in the Open Inference Protocol V2 routes."""
    max_batch_size: int = Field(1000, ge=1)
    """Most instances accepted in one prediction request."""
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    """Largest request body accepted; larger ones get 413."""
    admin_token: SecretStr | None = Field(None, min_length=16)
    """Bearer token for /admin/* (16+ characters; empty or short refuses to start); unset, the admin routes are 404."""
    feedback_token: SecretStr | None = Field(None, min_length=16)
    """Bearer token for POST /v1/feedback (16+ characters); unset and no FEEDBACK_TOKEN_FILE, the route answers 404
    unless FEEDBACK_PUBLIC."""
    feedback_token_file: Path | None = None
    """File holding the feedback bearer token (surrounding whitespace ignored; read once at start; a missing or short
    one refuses to start); used when FEEDBACK_TOKEN is unset."""
    feedback_public: bool = False
    """POST /v1/feedback takes feedback without a token (the trainer's data trust checks still apply to it)."""
    model_events_enabled: bool = True
    """The model agent subscribes to MODEL_EVENTS_TOPIC; when false, the reconcile poll is the only trigger."""
    subscription_prefix: str = "predictor"
    """Prefix of the pod's subscription name (one per pod, the agent's; the rest is pod name, agent pid and a random
    suffix)."""
    subscription_ttl_days: int = Field(1, ge=1)
    """Expiration TTL of a pod's subscription: a crashed pod's subscription disappears after this."""
    handover_dir: str | None = None
    """Directory the model agent hands verified artifacts over in (a shared emptyDir in a pod); unset,
    `python -m predictor` makes a temporary one."""
    handover_poll_interval: float = Field(0.05, gt=0, le=1)
    """Seconds between a serving process's checks (one stat) of the handover pointer."""
    start_agent: bool = True
    """python -m predictor starts the model agent as a child process; false where a sidecar container runs it."""
    agent_health_port: int | None = Field(None, ge=1, le=65535)
    """Port of the model agent's own /healthz (liveness: its heartbeat) and /metrics listener on ADMIN_BIND_HOST;
    unset, none (9092 on the sidecar)."""
    agent_stale_after: float = Field(30.0, gt=0)
    """Seconds after which the agent's heartbeat counts as stale: its liveness fails and /v1/model and /metrics show
    it down."""
    reconcile_interval: float = Field(60.0, gt=0)
    """Seconds between listings of models/ that catch anything the subscriber missed."""
    reconcile_interval_without_events: float = Field(5.0, gt=0)
    """Reconcile interval when MODEL_EVENTS_ENABLED is false."""
    load_retry_max: float = Field(30.0, gt=0)
    """Cap of the exponential backoff between load attempts while no model is loaded."""
    swap_history_size: int = Field(50, ge=1)
    """How many swaps /v1/model remembers."""
    refused_cache_size: int = Field(1024, ge=1)
    """(object, generation) pairs remembered as refused (never downloaded again), and apart from them as missing;
    the least recent is forgotten first."""
    notification_lookup_rate: float = Field(10.0, gt=0)
    """Bucket lookups per second (burst as many) that notifications may cause in the model agent; beyond, an offer
    is `rate_limited` and a reconcile a second later decides (one listing a second at most, however many arrive)."""
    live_accuracy_interval: float = Field(30.0, gt=0)
    """Seconds between the model agent's reads of the live accuracy document (`feedback/accuracy.json`, written by
    the trainer's feedback joiner); an unchanged object (same generation) is not downloaded again."""
    live_accuracy_min_rows: int = Field(20, ge=1)
    """Answers with feedback a version needs before its `predictor_live_accuracy` is exported (so the alert does
    not judge a version by a handful of labels); /v1/model shows the figures from the first one."""
    pod_name: str = "local"
    """Pod name from the downward API; part of the subscription name."""

    _feedback_file_token: bytes | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _read_feedback_token(self) -> PredictorSettings:
        if self.feedback_token is None and self.feedback_token_file is not None:
            try:
                text = self.feedback_token_file.read_text().strip()
            except OSError as e:
                raise ValueError(f"FEEDBACK_TOKEN_FILE: cannot read {str(self.feedback_token_file)!r}: {e}") from e
            if len(text) < 16:
                raise ValueError("FEEDBACK_TOKEN_FILE: the token must have at least 16 characters")
            self._feedback_file_token = text.encode()
        return self

    def feedback_secret(self) -> bytes | None:
        """The feedback bearer token (FEEDBACK_TOKEN, else the file's, read at start), None when neither is set."""
        if self.feedback_token is not None:
            return self.feedback_token.get_secret_value().encode()
        return self._feedback_file_token

    @model_validator(mode="after")
    def _worker_sockets_fit(self) -> PredictorSettings:
        if self.worker_sockets_dir:
            longest = f"{self.worker_sockets_dir.rstrip('/')}/worker-{self.web_concurrency - 1}.sock"
            if len(longest.encode()) > UNIX_PATH_MAX:
                raise ValueError(f"WORKER_SOCKETS_DIR: {longest!r} is longer than a Unix socket path may be "
                                 f"({UNIX_PATH_MAX} bytes); choose a shorter folder")  # fmt: skip
        return self
