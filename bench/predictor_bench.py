"""Predictor benchmark: latency and throughput against the seed-style Flask app and MLServer, bare and in the pod
layout (nginx in front, balancing over the workers' own sockets), 100-row batches, a mixed load with swaps, swap
delay, cold start and RSS per worker.

``make bench-predictor`` (``python bench/predictor_bench.py [--quick] [--skip-mlserver] [--alternative REF]``).
Starts fake-gcs-server (memory backend) publishing to the Pub/Sub emulator, publishes a signed model with the
project's store, builds the peers' virtualenvs under ``bench/.venvs/``, then starts each server configuration one
after another (never two at once), measures it at every concurrency and stops it (by PID); rounds alternate the
order and the median is reported. ``--alternative REF`` adds the predictor as of git commit REF (exported with
``git archive``), e.g. the design with a streaming-pull subscriber in every worker. Loopback only.
"""

# ruff: noqa: E402 - the repository root goes on sys.path before the project's packages are imported
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor as ThreadPool
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import swap_bench
from peers import loadgen, servers, venvs
from sklearn.datasets import load_iris

from core import gcs
from core.iris import CLASSES
from core.settings import CommonSettings
from core.store import ModelStore
from devstack import emulators, keys, proxy
from devstack.emulators import PubsubTarget, Service
from predictor.proxy import ProxySettings
from predictor.settings import PredictorSettings
from trainer.model import build

PROJECT, TOPIC, BUCKET = "bench-project", "model-events", "bench-models"
FLOWER = [5.1, 3.5, 1.4, 0.2]
OURS_BODY = json.dumps({"instances": [FLOWER]}).encode()
BATCH = 100
BATCH_BODY = json.dumps({"instances": [FLOWER] * BATCH}).encode()
OURS_SETTINGS = ("gthread 2x4", "gthread 2x4 reuse_port", "sync 2x1")
"""Worker class, workers x threads (and SO_REUSEPORT) of ours tried by default; the shipped default is DEFAULT."""
DEFAULT = "gthread 2x4"
POD = "ours + nginx"
"""Server label of the pod layout: nginx (its rendered configuration) in front of ours in the DEFAULT setting, over
the workers' own sockets (WORKER_SOCKETS_DIR), as the Deployment runs it."""
SWAP_EVERY_S = 5.0
AGENT_MEMORY_MB = 192
"""The agent sidecar's memory request in k8s/base/predictor-deployment.yaml."""
V2_BODY = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": FLOWER}]}).encode()
RESULTS = REPO / "bench" / "results"


@dataclass
class Stack:
    """The emulators, the bucket's store, the model and the environment a predictor runs with."""

    services: list[Service]
    store: ModelStore
    model: Any
    env: dict[str, str]
    logs: Path


@dataclass
class Config:
    """One server configuration under load."""

    server: str
    setting: str
    start: Callable[[int], Service]
    path: str
    body: bytes


@dataclass(frozen=True)
class Check:
    what: str
    target: str
    measured: str
    ok: bool


def fitted_model() -> Any:
    """The production pipeline fitted on the bundled iris data, with species names as classes."""
    iris = load_iris()
    return build().fit(iris.data, np.asarray(CLASSES)[iris.target])


def start_stack(logs: Path) -> Stack:
    """Pub/Sub emulator, fake-gcs-server publishing OBJECT_FINALIZE to it, a bucket and the first model."""
    pubsub = emulators.start_pubsub_emulator(emulators.free_port(), logs / "pubsub.log")
    if pubsub is None:
        raise SystemExit("the Pub/Sub emulator is not installed (java + the gcloud SDK pubsub-emulator component)")
    emulators.ensure_topic(pubsub.host, PROJECT, TOPIC)
    gcs_server = emulators.start_fake_gcs(
        emulators.free_port(), None, logs / "fake-gcs.log", PubsubTarget(pubsub.host, PROJECT, TOPIC)
    )
    emulators.ensure_bucket(gcs_server.host, PROJECT, BUCKET)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    env |= {"GOOGLE_CLOUD_PROJECT": PROJECT, "GCS_BUCKET": BUCKET, "STORAGE_EMULATOR_HOST": gcs_server.host}
    env |= {"PUBSUB_EMULATOR_HOST": pubsub.host, "MODEL_EVENTS_TOPIC": TOPIC, **keys.env(logs / "keys")}
    env |= {"LOG_LEVEL": "WARNING", "RECONCILE_INTERVAL": "300"}
    settings = CommonSettings(google_cloud_project=PROJECT, gcs_bucket=BUCKET, storage_emulator_host=gcs_server.host)
    store = ModelStore(gcs.client(settings).bucket(BUCKET), keys.keyring(logs / "keys"), gcs.retry(settings))
    model = fitted_model()
    swap_bench.publish(store, model)
    return Stack([gcs_server, pubsub], store, model, env, logs)


def predictor_starter(
    stack: Stack, setting: str = DEFAULT, cwd: Path = servers.REPO, env: dict[str, str] | None = None
) -> Callable[[int], Service]:
    """``python -m predictor`` with ``setting`` = "<worker class> <workers>x<threads>[ reuse_port]"."""
    worker_class, shape, *flags = setting.split()
    workers, threads = (int(n) for n in shape.split("x"))
    env = stack.env | (env or {}) | {"REUSE_PORT": str("reuse_port" in flags).lower()}
    log = stack.logs / f"predictor-{'-'.join(setting.split())}"
    return lambda port: servers.start_predictor(
        env, port, log.with_name(f"{log.name}-{port}.log"), workers, threads, worker_class, cwd
    )


@dataclass
class PodService(Service):
    """nginx (this service: the pod's public port) in front of ``predictor``, stopped together."""

    predictor: Service | None = None

    def alive(self) -> bool:
        return super().alive() and (self.predictor is None or self.predictor.alive())

    def stop(self, timeout: float = 10) -> int | None:
        code = super().stop(timeout)
        if self.predictor is not None:
            self.predictor.stop(timeout)
        return code


def pod_starter(stack: Stack, setting: str = DEFAULT) -> Callable[[int], Service]:
    """The pod layout: ``python -m predictor`` with WORKER_SOCKETS_DIR and nginx on the port, over those sockets."""

    def start(port: int) -> Service:
        sockets = Path(tempfile.mkdtemp(prefix="sockets-", dir=stack.logs))
        workers = setting.split()[1].split("x")[0]
        env = {"WORKER_SOCKETS_DIR": str(sockets), "WEB_CONCURRENCY": workers}
        inner = predictor_starter(stack, setting, env=env)(emulators.free_port())
        settings = ProxySettings(
            proxy_listen_host="127.0.0.1",
            proxy_port=port,
            proxy_health_port=emulators.free_port(),
            proxy_admin_port=emulators.free_port(),
            proxy_runtime_dir=stack.logs / f"proxy-{port}",
        )
        max_body = PredictorSettings.model_fields["max_body_bytes"].default
        nginx = proxy.start_proxy(settings, inner.host, max_body, stack.logs / f"proxy-{port}.log", None,
                                  proxy.worker_sockets(env))  # fmt: skip
        if nginx is None:
            inner.stop()
            raise SystemExit("nginx is not installed (apt-get install nginx): no pod layout")
        return PodService(nginx.name, nginx.host, nginx.process, nginx.log_path, inner)

    return start


def configs(stack: Stack, args: argparse.Namespace) -> list[Config]:
    """Ours in each setting (and the alternative), the pod layout (nginx in front of ours in the default setting),
    the seed-style Flask app (sync 2x1), MLServer (0 workers)."""
    pickle_path = stack.logs / "model.pkl"
    newest = stack.store.list_versions()[-1]
    pickle_path.write_bytes(stack.store.bucket.blob(newest.name, generation=newest.generation).download_as_bytes())
    flask_bin = venvs.ensure_venv("bare-flask", venvs.bare_flask_requirements())
    out = [Config("ours", setting, predictor_starter(stack, setting), "/predict", OURS_BODY) for setting in args.ours]
    if not args.skip_pod:
        out.append(Config(POD, DEFAULT, pod_starter(stack), "/predict", OURS_BODY))
    if args.alternative:
        tree = export(args.alternative, stack.logs)
        for setting in args.alternative_settings:
            start = predictor_starter(stack, setting, tree)
            out.append(Config("alternative", setting, start, "/predict", OURS_BODY))
    out.append(Config("seed-flask", "sync 2x1", _bare_flask(flask_bin, pickle_path, stack.logs, 1), "/predict",
                      OURS_BODY))  # fmt: skip
    if not args.skip_mlserver:
        ml_bin = venvs.ensure_venv("mlserver", venvs.mlserver_requirements())
        start = _mlserver(ml_bin, stack, 0)
        out.append(Config("mlserver", "parallel_workers=0", start, "/v2/models/iris/infer", V2_BODY))
    return out


def export(ref: str, logs: Path) -> Path:
    """The repository's tree at commit ``ref`` (``git archive``), to run an alternative design side by side."""
    tree = logs / f"tree-{ref}"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    stubs = REPO / "predictor" / "protos"
    for stub in stubs.glob("*_pb2*.py"):  # generated, never committed
        (tree / "predictor" / "protos" / stub.name).write_bytes(stub.read_bytes())
    return tree


def _bare_flask(bin_dir: Path, pickle_path: Path, logs: Path, threads: int) -> Callable[[int], Service]:
    return lambda port: servers.start_bare_flask(
        bin_dir, pickle_path, port, logs / f"bare-flask-{port}.log", 2, threads
    )


def _mlserver(bin_dir: Path, stack: Stack, workers: int) -> Callable[[int], Service]:
    def start(port: int) -> Service:
        repo = stack.logs / f"mlserver-{port}"
        return servers.start_mlserver(bin_dir, stack.model, repo, port, stack.logs / f"mlserver-{port}.log", workers)

    return start


CONNECTIONS = (2, 4, 8, 32, 64)
WORKERS = 2
"""gunicorn workers of the default setting and of the seed-style Flask app."""
Cells = dict[tuple[str, str, int], loadgen.Result]


def throughput(cfgs: list[Config], args: argparse.Namespace) -> Cells:
    """Each configuration alone: start, measure every concurrency, stop; rounds alternate the order (median kept)."""
    samples: dict[tuple[str, str, int], list[loadgen.Result]] = {}
    for index in range(args.rounds):
        order = cfgs[index % len(cfgs) :] + cfgs[: index % len(cfgs)]
        for cfg in order if index % 2 == 0 else reversed(order):
            service = cfg.start(emulators.free_port())
            try:
                servers.wait_ready(service, cfg.path, timeout=120, body=cfg.body)
                for conns in args.connections:
                    result = measure(service, f"{service.url}{cfg.path}", cfg.body, conns, args)
                    samples.setdefault((cfg.server, cfg.setting, conns), []).append(result)
                if cfg.server == "ours" and cfg.setting == DEFAULT:
                    result = measure(service, f"{service.url}{cfg.path}", BATCH_BODY, 8, args)
                    samples.setdefault(("ours", f"{DEFAULT} batch {BATCH}", 8), []).append(result)
            finally:
                service.stop()
    return {key: _median(results) for key, results in samples.items()}


def measure(service: Service, url: str, body: bytes, conns: int, args: argparse.Namespace) -> loadgen.Result:
    """One cell: a discarded warm-up, then the measured run with the server's CPU time per request (nginx's
    included in the pod layout) and each worker's share."""
    if args.warmup > 0:
        loadgen.run(url, body, conns, args.warmup, 0)
    roots = [service.process.pid]
    if isinstance(service, PodService) and service.predictor is not None:
        roots.append(service.predictor.process.pid)
    workers = servers.worker_pids(roots[-1])
    before, per_worker = sum(map(servers.cpu_seconds, roots)), [servers.cpu_seconds(pid) for pid in workers]
    started = time.monotonic()
    result = loadgen.run(url, body, conns, args.duration, 0)
    elapsed = time.monotonic() - started
    cpu_ms = (sum(map(servers.cpu_seconds, roots)) - before) * 1000 / max(result.requests, 1)
    used = [servers.cpu_seconds(pid) - was for pid, was in zip(workers, per_worker, strict=True)]
    cores = tuple(sorted((seconds / elapsed for seconds in used), reverse=True))
    return dataclasses.replace(result, cpu_ms=cpu_ms, worker_cores=cores)


def mixed(stack: Stack, args: argparse.Namespace) -> tuple[loadgen.Result, int]:
    """Single rows at 8 connections on the default setting while a new model is published every SWAP_EVERY_S."""
    service = predictor_starter(stack)(emulators.free_port())
    stop, published = threading.Event(), []

    def publisher() -> None:
        while not stop.wait(SWAP_EVERY_S):
            published.append(swap_bench.publish(stack.store, stack.model)[0])

    try:
        servers.wait_ready(service, "/v2/health/ready", timeout=120)
        url = f"{service.url}/predict"
        loadgen.run(url, OURS_BODY, 8, args.warmup, 0)
        thread = threading.Thread(target=publisher)
        thread.start()
        try:
            window = argparse.Namespace(**(vars(args) | {"warmup": 0, "duration": args.mixed}))
            result = measure(service, url, OURS_BODY, 8, window)
        finally:
            stop.set()
            thread.join()
        with ThreadPool() as pool:
            swap_bench.wait_served(service.url, published[-1], WORKERS, pool)
    finally:
        service.stop()
    return result, len(published)


def _median(results: list[loadgen.Result]) -> loadgen.Result:
    return loadgen.Result(
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
        requests=sum(r.requests for r in results),
        cpu_ms=statistics.median(r.cpu_ms for r in results),
        worker_cores=min((r.worker_cores for r in results), key=lambda c: c[-1] if c else 0.0),
    )


def lifecycle(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    """Cold starts, then one predictor: RSS after its first model, ``--swaps`` swaps, RSS again (and the agent's)."""
    start = predictor_starter(stack)
    cold = swap_bench.cold_start(lambda: start(emulators.free_port()), args.cold_runs)
    service = start(emulators.free_port())
    try:
        servers.wait_ready(service, "/v2/health/ready")
        url = f"{service.url}/predict"
        loadgen.run(url, OURS_BODY, 8, 2, 0)
        rss_first, pss_first = swap_bench.worker_rss(service), swap_bench.worker_pss(service)
        swaps = swap_bench.swaps(stack.store, stack.model, service.url, WORKERS, args.swaps)
        loadgen.run(url, OURS_BODY, 8, 2, 0)
        rss_after, pss_after = swap_bench.worker_rss(service), swap_bench.worker_pss(service)
        agent = [servers.rss_mb(pid) for pid in servers.agent_pids(service.process.pid)]
    finally:
        service.stop()
    rss = {"rss_first_mb": rss_first, "rss_after_mb": rss_after, "pss_first_mb": pss_first, "pss_after_mb": pss_after}
    return {"cold_start_s": cold, "swaps": swaps, "agent_rss_mb": agent} | rss


P99_CONNECTIONS = (8, 32, 64)
"""Concurrencies with p99 targets."""
SPREAD = 0.25
"""The least busy worker's share of the workers' CPU at 8 connections and more: at least this (an even split: 0.5)."""


def throughput_checks(cells: Cells) -> list[Check]:
    """The README's targets for the shipped default, bare and in the pod layout: p99 <= 1.5x the seed app and
    <= MLServer, req/s >= 1.2x seed, and the load spread over the workers."""
    checks = []
    for server in ("ours", POD):
        checks += _checks_of(server, cells)
    batch = cells.get(("ours", f"{DEFAULT} batch {BATCH}", 8))
    if batch is not None:
        rate = batch.rps * BATCH
        measured = f"{rate:,.0f} ({batch.rps:.0f} req/s, p99 {batch.p99_ms:.1f} ms)"
        checks.append(Check(f"{BATCH}-row batches, c=8: predictions/s", ">= 80,000", measured, rate >= 80_000))
    return checks


def _checks_of(server: str, cells: Cells) -> list[Check]:
    checks = []
    for conns in sorted({c for _, _, c in cells}):
        mine, seed = cells.get((server, DEFAULT, conns)), cells.get(("seed-flask", "sync 2x1", conns))
        if mine is None:
            continue
        checks.append(Check(f"failed requests ({server}), c={conns}", "0", str(mine.errors), mine.errors == 0))
        if seed is not None:
            ratio = mine.rps / seed.rps
            measured = f"{ratio:.2f}x ({mine.rps:.0f} vs {seed.rps:.0f})"
            checks.append(Check(f"{server}: req/s vs seed Flask, c={conns}", ">= 1.20x", measured, ratio >= 1.2))
        if conns >= 8 and len(mine.worker_cores) > 1:
            share = mine.worker_cores[-1] / max(sum(mine.worker_cores), 1e-9)
            measured = f"{share:.2f} ({_cores(mine.worker_cores)} cores)"
            checks.append(Check(f"{server}: least busy worker's share, c={conns}", f">= {SPREAD:.2f}", measured,
                                share >= SPREAD))  # fmt: skip
        if conns not in P99_CONNECTIONS:
            continue
        if seed is not None:
            ratio = mine.p99_ms / seed.p99_ms
            measured = f"{ratio:.2f}x ({mine.p99_ms:.1f} vs {seed.p99_ms:.1f} ms)"
            checks.append(Check(f"{server}: p99 vs seed Flask, c={conns}", "<= 1.50x", measured, ratio <= 1.5))
        peer = cells.get(("mlserver", "parallel_workers=0", conns))
        if peer is not None:
            measured = f"{mine.p99_ms:.1f} vs {peer.p99_ms:.1f} ms"
            ok = mine.p99_ms <= peer.p99_ms
            checks.append(Check(f"{server}: p99 vs MLServer, c={conns}", "<= MLServer", measured, ok))
    return checks


def _cores(cores: tuple[float, ...]) -> str:
    return "/".join(f"{c:.2f}" for c in cores)


def mixed_checks(result: loadgen.Result, swaps: int, cells: Cells) -> list[Check]:
    seed = cells.get(("seed-flask", "sync 2x1", 8))
    versus = f", seed p99 {seed.p99_ms:.1f} ms" if seed else ""
    measured = f"{result.errors} failed of {result.requests}; p99 {result.p99_ms:.1f} ms{versus}; {swaps} swaps"
    ok = result.errors == 0 and swaps > 0 and (seed is None or result.p99_ms <= 1.5 * seed.p99_ms)
    return [Check(f"mixed: c=8 with a swap every {SWAP_EVERY_S:g} s", "0 failed, p99 <= 1.5x seed", measured, ok)]


def lifecycle_checks(found: dict[str, Any]) -> list[Check]:
    observed = [s.observed_s for s in found["swaps"]]
    server = [s.server_s for s in found["swaps"]]
    p50, worst = swap_bench.summary(observed)
    n = len(observed)
    checks = [
        Check(
            f"swap delay p50 (n={n})",
            "< 0.5 s",
            f"{p50:.3f} s (server-side {statistics.median(server):.3f})",
            p50 < 0.5,
        ),
        Check(f"swap delay max (n={n})", "< 2 s", f"{worst:.3f} s (server-side {max(server):.3f})", worst < 2),
    ]
    wall, cpu = [w for w, _ in found["cold_start_s"]], [c for _, c in found["cold_start_s"]]
    measured = f"{_seconds(wall)} (CPU {_seconds(cpu)})"
    checks.append(Check(f"cold start to ready (max of {len(wall)})", "< 3 s", measured, max(wall) < 3))
    first, after = found["rss_first_mb"], found["rss_after_mb"]
    same = sorted(first) == sorted(after)
    measured = f"{_mb(first)} (PSS {_mb(found['pss_first_mb'])})"
    checks.append(Check("RSS per worker, first model", "< 150 MB", measured, max(first.values()) < 150))
    growth = max(after[pid] / first[pid] - 1 for pid in first) if same else float("inf")
    measured = f"{_mb(after)} ({growth:+.1%})" if same else f"workers restarted: {sorted(first)} -> {sorted(after)}"
    checks.append(Check(f"RSS per worker after {n} swaps", "<= +10%", measured, same and growth <= 0.10))
    agent = found["agent_rss_mb"]
    measured = ", ".join(f"{v:.1f}" for v in agent) + " MB" if agent else "no agent found"
    ok = bool(agent) and max(agent) < AGENT_MEMORY_MB
    checks.append(Check("RSS of the pod's model agent", f"< {AGENT_MEMORY_MB} MB", measured, ok))
    return checks


def _seconds(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values) + " s"


def _mb(rss: dict[int, float]) -> str:
    return ", ".join(f"{v:.1f}" for v in rss.values()) + " MB"


def machine() -> dict[str, Any]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())  # fmt: skip
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem_kb / 2**20, 1), "loadavg": os.getloadavg()[0]}


def print_cells(cells: Cells) -> None:
    head = ("server", "setting", "conns", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "cores", "per worker", "errors")
    print("{:<13} {:<22} {:>5} {:>8} {:>7} {:>7} {:>10} {:>5} {:>14} {:>6}".format(*head))
    for (server, setting, conns), r in sorted(cells.items()):
        label = f"{setting}{'*' if server in ('ours', POD) and setting == DEFAULT else ' '}"
        cores = r.rps * r.cpu_ms / 1000
        row = (server, label, conns, f"{r.rps:.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.cpu_ms:.3f}",
               f"{cores:.2f}", _cores(r.worker_cores), r.errors)  # fmt: skip
        print("{:<13} {:<22} {:>5} {:>8} {:>7} {:>7} {:>10} {:>5} {:>14} {:>6}".format(*row))
    print(
        "(* = the shipped default, used in the checks; cores = server CPU seconds per second, nginx's included in the "
        "pod layout; per worker = each worker's, busiest first, in the round where the least busy one did least)\n"
    )


def print_checks(checks: list[Check]) -> None:
    width = max(len(c.what) for c in checks)
    print(f"{'measure':<{width}}  {'target':<26} {'measured':<60} result")
    for c in checks:
        print(f"{c.what:<{width}}  {c.target:<26} {c.measured:<60} {'PASS' if c.ok else 'FAIL'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s cells, 1 round, 20 swaps, 1 cold start")
    parser.add_argument("--skip-mlserver", action="store_true", help="no MLServer (no venv install)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-lifecycle", action="store_true", help="no cold start, swap and RSS measurements")
    parser.add_argument("--duration", type=float, default=10, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=2, help="discarded seconds before each cell")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the median is reported")
    parser.add_argument("--swaps", type=int, default=100)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--ours", type=_settings, default=OURS_SETTINGS, help="e.g. 'sync 2x1,gthread 2x4'")
    parser.add_argument("--alternative", help="git commit of another design to measure side by side")
    parser.add_argument("--alternative-settings", type=_settings, default=("gthread 2x4",))
    parser.add_argument("--mixed", type=float, default=30, help="seconds of the mixed load (swaps every 5 s)")
    parser.add_argument("--skip-mixed", action="store_true")
    parser.add_argument("--skip-pod", action="store_true", help="no pod layout (nginx in front of ours)")
    parser.add_argument("--connections", type=_counts, default=CONNECTIONS, help="e.g. '8,32,64'")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of this script and all it starts (-10 as root: ahead of a busy box)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds, args.swaps, args.cold_runs, args.mixed = 5, 1, 1, 20, 1, 15
    if DEFAULT not in args.ours:
        parser.error(f"--ours must include the default setting {DEFAULT!r}")
    return args


def _counts(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def _settings(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by every server, emulator and wrk started below
    host = machine()
    print(f"machine: {host['nproc']} cores, {host['cpu']}, {host['ram_gib']} GiB; load average {host['loadavg']:.2f}")
    print(f"load generator: {loadgen.tool()}; {args.duration:g} s per cell after {args.warmup:g} s warm-up, "
          f"{args.rounds} round(s), servers one at a time; nice {args.nice}\n")  # fmt: skip
    checks: list[Check] = []
    record: dict[str, Any] = {"machine": host, "args": vars(args), "tool": loadgen.tool()}
    with tempfile.TemporaryDirectory(prefix="predictor-bench-") as tmp:
        stack = start_stack(Path(tmp))
        try:
            cells: Cells = {}
            if not args.skip_throughput:
                cells = throughput(configs(stack, args), args)
                print_cells(cells)
                checks += throughput_checks(cells)
                record["throughput"] = [[*key, asdict(r)] for key, r in cells.items()]
            if not args.skip_mixed:
                result, swaps = mixed(stack, args)
                checks += mixed_checks(result, swaps, cells)
                record["mixed"] = asdict(result) | {"swaps": swaps}
            if not args.skip_lifecycle:
                found = lifecycle(stack, args)
                checks += lifecycle_checks(found)
                record["lifecycle"] = found | {"swaps": [asdict(s) for s in found["swaps"]]}
        finally:
            for service in reversed(stack.services):
                service.stop()
    print_checks(checks)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"predictor-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(record | {"checks": [asdict(c) for c in checks]}, indent=1, default=str))
    print(f"\nresults: {out.relative_to(REPO)}")
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
