"""Predictor benchmark: throughput against a bare Flask app and MLServer, swap delay, cold start and RSS per worker.

``make bench-predictor`` (``python bench/predictor_bench.py [--quick] [--skip-mlserver]``). Starts fake-gcs-server
(memory backend) publishing to the Pub/Sub emulator, publishes a signed model with the project's store, builds the
peers' virtualenvs under ``bench/.venvs/``, measures, stops everything it started (by PID) and prints one table.
Loopback only.
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
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import swap_bench
from peers import loadgen, servers, venvs
from sklearn.datasets import load_iris

from core import gcs
from core.schema import CLASSES
from core.settings import CommonSettings
from core.store import ModelStore
from devstack import emulators, keys
from devstack.emulators import PubsubTarget, Service
from trainer.model import build

PROJECT, TOPIC, BUCKET = "bench-project", "model-events", "bench-models"
FLOWER = [5.1, 3.5, 1.4, 0.2]
OURS_BODY = json.dumps({"instances": [FLOWER]}).encode()
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


def predictor_starter(stack: Stack, threads: int = 4) -> Callable[[int], Service]:
    return lambda port: servers.start_predictor(stack.env, port, stack.logs / f"predictor-{port}.log", threads=threads)


def configs(stack: Stack, args: argparse.Namespace) -> list[Config]:
    """Ours, the bare Flask app (sync, and gthread unless --quick), MLServer (0 and 2 parallel workers)."""
    pickle_path = stack.logs / "model.pkl"
    newest = stack.store.list_versions()[-1]
    pickle_path.write_bytes(stack.store.bucket.blob(newest.name, generation=newest.generation).download_as_bytes())
    flask_bin = venvs.ensure_venv("bare-flask", venvs.bare_flask_requirements())
    out = [Config("ours", f"gthread 2x{args.threads}", predictor_starter(stack, args.threads), "/predict", OURS_BODY)]
    for threads in (1,) if args.quick else (1, 4):
        setting = "sync 2x1" if threads == 1 else f"gthread 2x{threads}"
        start = _bare_flask(flask_bin, pickle_path, stack.logs, threads)
        out.append(Config("bare-flask", setting, start, "/predict", OURS_BODY))
    if not args.skip_mlserver:
        ml_bin = venvs.ensure_venv("mlserver", venvs.mlserver_requirements())
        for workers in (0,) if args.quick else (0, 2):
            start = _mlserver(ml_bin, stack, workers)
            out.append(Config("mlserver", f"parallel_workers={workers}", start, "/v2/models/iris/infer", V2_BODY))
    return out


def _bare_flask(bin_dir: Path, pickle_path: Path, logs: Path, threads: int) -> Callable[[int], Service]:
    return lambda port: servers.start_bare_flask(
        bin_dir, pickle_path, port, logs / f"bare-flask-{port}.log", 2, threads
    )


def _mlserver(bin_dir: Path, stack: Stack, workers: int) -> Callable[[int], Service]:
    def start(port: int) -> Service:
        repo = stack.logs / f"mlserver-{port}"
        return servers.start_mlserver(bin_dir, stack.model, repo, port, stack.logs / f"mlserver-{port}.log", workers)

    return start


CONNECTIONS = (8, 32)
WORKERS = 2
"""gunicorn workers of ours and of the bare Flask app; MLServer gets the same number of parallel workers (or 0)."""
Cells = dict[tuple[str, str, int], loadgen.Result]


def throughput(cfgs: list[Config], args: argparse.Namespace) -> Cells:
    """Every configuration runs at once; cells are interleaved round by round, so background load hits all alike."""
    running: list[tuple[Config, Service]] = []
    samples: dict[tuple[str, str, int], list[loadgen.Result]] = {}
    try:
        for cfg in cfgs:
            running.append((cfg, cfg.start(emulators.free_port())))
        for cfg, service in running:
            servers.wait_ready(service, cfg.path, timeout=120, body=cfg.body)
        for index in range(args.rounds):
            order = running[index % len(running) :] + running[: index % len(running)]
            for conns in CONNECTIONS:
                for cfg, service in order:
                    result = measure(service, f"{service.url}{cfg.path}", cfg.body, conns, args)
                    samples.setdefault((cfg.server, cfg.setting, conns), []).append(result)
    finally:
        for _, service in running:
            service.stop()
    return {key: _median(results) for key, results in samples.items()}


def measure(service: Service, url: str, body: bytes, conns: int, args: argparse.Namespace) -> loadgen.Result:
    """One cell: a discarded warm-up, then the measured run with the server's CPU time per request."""
    loadgen.run(url, body, conns, args.warmup, 0)
    before = servers.cpu_seconds(service.process.pid)
    result = loadgen.run(url, body, conns, args.duration, 0)
    cpu_ms = (servers.cpu_seconds(service.process.pid) - before) * 1000 / max(result.requests, 1)
    return dataclasses.replace(result, cpu_ms=cpu_ms)


def _median(results: list[loadgen.Result]) -> loadgen.Result:
    return loadgen.Result(
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
        requests=sum(r.requests for r in results),
        cpu_ms=statistics.median(r.cpu_ms for r in results),
    )


def best_setting(cells: Cells, server: str) -> str | None:
    """The setting of ``server`` with the highest mean req/s over the concurrency levels."""
    settings = {setting for name, setting, _ in cells if name == server}
    return max(settings, key=lambda s: statistics.mean(cells[server, s, c].rps for c in CONNECTIONS), default=None)


def lifecycle(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    """Cold starts, then one predictor: RSS after its first model, ``--swaps`` swaps, RSS again."""
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
    finally:
        service.stop()
    rss = {"rss_first_mb": rss_first, "rss_after_mb": rss_after, "pss_first_mb": pss_first, "pss_after_mb": pss_after}
    return {"cold_start_s": cold, "swaps": swaps} | rss


def throughput_checks(cells: Cells) -> list[Check]:
    checks = []
    ours = best_setting(cells, "ours")
    flask, mlserver = best_setting(cells, "bare-flask"), best_setting(cells, "mlserver")
    for conns in CONNECTIONS:
        mine = cells["ours", ours, conns] if ours else None
        if mine and flask:
            peer = cells["bare-flask", flask, conns]
            ratio = mine.rps / peer.rps
            measured = f"{ratio:.2f}x ({mine.rps:.0f} vs {peer.rps:.0f})"
            checks.append(Check(f"req/s vs bare Flask [{flask}], c={conns}", ">= 0.90x", measured, ratio >= 0.9))
            cost = mine.cpu_ms / peer.cpu_ms
            measured = f"{cost:.2f}x ({mine.cpu_ms:.3f} vs {peer.cpu_ms:.3f} ms)"
            checks.append(Check(f"server CPU/req vs bare Flask, c={conns}", "<= 1.11x", measured, cost <= 1 / 0.9))
        if mine and mlserver:
            peer = cells["mlserver", mlserver, conns]
            ratio = mine.rps / peer.rps
            measured = f"{ratio:.2f}x ({mine.rps:.0f} vs {peer.rps:.0f})"
            checks.append(Check(f"req/s vs MLServer [{mlserver}], c={conns}", ">= 1.50x", measured, ratio >= 1.5))
            measured = f"{mine.p99_ms:.1f} vs {peer.p99_ms:.1f} ms"
            checks.append(Check(f"p99 vs MLServer, c={conns}", "<= MLServer", measured, mine.p99_ms <= peer.p99_ms))
        if mine:
            checks.append(Check(f"failed requests (ours), c={conns}", "0", str(mine.errors), mine.errors == 0))
    return checks


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
    best = {server: best_setting(cells, server) for server, _, _ in cells}
    head = ("server", "setting", "conns", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "errors")
    print("{:<11} {:<20} {:>5} {:>8} {:>7} {:>7} {:>10} {:>6}".format(*head))
    for (server, setting, conns), r in sorted(cells.items()):
        label = f"{setting}{'*' if best[server] == setting else ' '}"
        row = (server, label, conns, f"{r.rps:.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.cpu_ms:.3f}", r.errors)
        print("{:<11} {:<20} {:>5} {:>8} {:>7} {:>7} {:>10} {:>6}".format(*row))
    print("(* = the server's best setting by mean req/s, used in the checks)\n")


def print_checks(checks: list[Check]) -> None:
    width = max(len(c.what) for c in checks)
    print(f"{'measure':<{width}}  {'target':<12} {'measured':<56} result")
    for c in checks:
        print(f"{c.what:<{width}}  {c.target:<12} {c.measured:<56} {'PASS' if c.ok else 'FAIL'}")


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
    parser.add_argument("--threads", type=int, default=4, help="WORKER_THREADS of ours")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of this script and all it starts (-10 as root: ahead of a busy box)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds, args.swaps, args.cold_runs = 5, 1, 1, 20, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by every server, emulator and wrk started below
    host = machine()
    print(f"machine: {host['nproc']} cores, {host['cpu']}, {host['ram_gib']} GiB; load average {host['loadavg']:.2f}")
    print(f"load generator: {loadgen.tool()}; {args.duration:g} s per cell after {args.warmup:g} s warm-up, "
          f"{args.rounds} round(s); {WORKERS} workers each; nice {args.nice}\n")  # fmt: skip
    checks: list[Check] = []
    record: dict[str, Any] = {"machine": host, "args": vars(args), "tool": loadgen.tool()}
    with tempfile.TemporaryDirectory(prefix="predictor-bench-") as tmp:
        stack = start_stack(Path(tmp))
        try:
            if not args.skip_throughput:
                cells = throughput(configs(stack, args), args)
                print_cells(cells)
                checks += throughput_checks(cells)
                record["throughput"] = [[*key, asdict(r)] for key, r in cells.items()]
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
