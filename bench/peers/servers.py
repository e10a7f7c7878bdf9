"""Start the three servers under test on loopback, each in its own process group, and wait until they answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import joblib

from devstack.emulators import LOOPBACK, Service, free_port

PEERS = Path(__file__).resolve().parent
REPO = PEERS.parent.parent
MLSERVER_TEMPLATES = PEERS / "mlserver"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def spawn(
    name: str, cmd: list[str], port: int, log: Path, env: dict[str, str] | None = None, cwd: Path = REPO
) -> Service:
    """Start ``cmd`` in a new session (so ``Service.stop`` signals exactly its process group)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    return Service(name=name, host=f"{LOOPBACK}:{port}", process=proc, log_path=log)


def status(url: str, body: bytes | None = None, timeout: float = 2) -> int:
    """HTTP status of one GET (or JSON POST with ``body``) on a new connection; 0 when nothing answers."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    req = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 - loopback only
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (urllib.error.URLError, OSError):
        return 0


def wait_ready(service: Service, path: str, timeout: float = 60, body: bytes | None = None) -> float:
    """Seconds from now until ``path`` answers 200; raises with the log tail if the process dies or times out."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not service.alive():
            raise RuntimeError(f"{service.name} exited ({service.process.returncode}):\n{service.log_tail()}")
        if status(f"{service.url}{path}", body, timeout=1) == 200:
            return time.monotonic() - start
        time.sleep(0.01)
    service.stop()
    raise RuntimeError(f"{service.name} not ready after {timeout:.0f} s:\n{service.log_tail()}")


def start_predictor(
    env: dict[str, str],
    port: int,
    log: Path,
    workers: int = 2,
    threads: int = 4,
    worker_class: str = "gthread",
    cwd: Path = REPO,
) -> Service:
    """``python -m predictor`` from the project's interpreter (from the checkout at ``cwd``)."""
    env = env | {
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "WORKER_THREADS": str(threads),
        "WORKER_CLASS": worker_class,
        "PYTHONPATH": str(cwd),
    }
    return spawn("predictor", [sys.executable, "-m", "predictor"], port, log, env, cwd=cwd)


def start_bare_flask(
    bin_dir: Path, model_pickle: Path, port: int, log: Path, workers: int = 2, threads: int = 1
) -> Service:
    """The bare Flask app under gunicorn: sync workers for ``threads == 1``, else gthread."""
    worker_class = "sync" if threads == 1 else "gthread"
    cmd = [str(bin_dir / "gunicorn"), "--bind", f"{LOOPBACK}:{port}", "--workers", str(workers)]
    cmd += ["--worker-class", worker_class, "--threads", str(threads), "--no-control-socket", "bare_flask:create_app()"]
    env = _clean_env() | {"BENCH_MODEL_PATH": str(model_pickle)}
    return spawn("bare-flask", cmd, port, log, env, cwd=PEERS)


def start_mlserver(bin_dir: Path, model: Any, repo: Path, port: int, log: Path, parallel_workers: int = 0) -> Service:
    """MLServer's sklearn runtime on a joblib dump of ``model``, configured from ``bench/peers/mlserver/*.json``."""
    repo.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, repo / "model.joblib")
    settings = json.loads((MLSERVER_TEMPLATES / "settings.json").read_text())
    settings |= {"parallel_workers": parallel_workers, "http_port": port}
    settings |= {"grpc_port": free_port(), "metrics_port": free_port()}
    (repo / "settings.json").write_text(json.dumps(settings))
    (repo / "model-settings.json").write_text((MLSERVER_TEMPLATES / "model-settings.json").read_text())
    return spawn("mlserver", [str(bin_dir / "mlserver"), "start", str(repo)], port, log, _clean_env(), cwd=repo)


def worker_pids(root_pid: int) -> list[int]:
    """The gunicorn workers under ``root_pid``: the children of the process (in its tree) that has the most."""
    tree = {root_pid: _children(root_pid)}
    pending = list(tree[root_pid])
    while pending:
        pid = pending.pop()
        tree[pid] = _children(pid)
        pending += tree[pid]
    master = max(tree, key=lambda p: len(tree[p]))
    return sorted(pid for pid in tree[master] if not is_agent(pid))


def is_agent(pid: int) -> bool:
    """Whether ``pid`` is the predictor's model agent (a child of gunicorn's master, not a worker)."""
    try:
        return b"predictor.agent" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def agent_pids(root_pid: int) -> list[int]:
    """The model agent(s) among the children of ``root_pid``."""
    return [pid for pid in _children(root_pid) if is_agent(pid)]


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds used so far by ``root_pid`` and all its descendants (live ones)."""
    total = 0.0
    for pid in descendants(root_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def descendants(root_pid: int) -> list[int]:
    """``root_pid`` and every live process below it, parents before their children."""
    pids, pending = [], [root_pid]
    while pending:
        pid = pending.pop(0)
        pids.append(pid)
        pending += _children(pid)
    return pids


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MB (MiB): every resident page, shared ones (inherited from the master by fork) included."""
    return _proc_kb(f"/proc/{pid}/status", "VmRSS:") / 1024


def pss_mb(pid: int) -> float:
    """Proportional set size of ``pid`` in MB (MiB): shared pages divided among the processes sharing them."""
    return _proc_kb(f"/proc/{pid}/smaps_rollup", "Pss:") / 1024


def _proc_kb(path: str, key: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in {path}")


def _children(pid: int) -> list[int]:
    try:
        files = Path(f"/proc/{pid}/task").glob("*/children")
        return [int(c) for f in files for c in f.read_text().split()]
    except OSError:
        return []


def _clean_env() -> dict[str, str]:
    """This environment without the project's virtualenv and emulator variables."""
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"}
    return {k: v for k, v in os.environ.items() if k not in drop}
