"""Prediction log benchmark: what logging every answer costs the request path, log off against log on (100%).

``python bench/predlog_bench.py [--duration 5] [--warmup 1] [--rounds 3] [--threads 4] [--gunicorn-rounds 3]
[--calls 200000]``

1. **Request path** (in one process, like one gthread worker): the predictor's real Flask app (``create_app``) with
   the fitted iris pipeline installed, ``--threads`` threads each in a closed loop of ``POST /v2/models/iris/infer``
   (one row) through Flask's test client (no sockets: the log's share of a request is larger than behind gunicorn,
   so this overstates the cost). The app is wired as in a worker: the route resolves the request id, every answer
   carries ``X-Request-Id``, and the data plane records each answer in its PredictionLog (the cell's: a disabled
   one for off, as PREDICTION_LOG_ENABLED=false; the id work stays). The log's writer thread runs in this
   process (it competes for the GIL, as in a worker); a shipper in a second process (as the agent) ships every
   second to fake-gcs-server (memory backend). Cells alternate off/on, then on/off, ...; the table shows medians
   over the rounds, and the run checks afterwards that every record logged reached the bucket (exit 1 otherwise).
2. **Through gunicorn** (``--gunicorn-rounds``, 0 skips it): this module's ``gunicorn_app()`` (the same wired app)
   under gunicorn, 2 gthread workers x 4 threads, each worker with its own PredictionLog from the environment
   (``PredictionLogSettings``), loaded by ``wrk`` at 8 keep-alive connections (``bench/peers/loadgen``) with one-row
   ``POST /v2/models/iris/infer``; a server with the log off, then one with it on (the order alternates by round),
   each started and stopped by PID. The server's CPU per request counts the master and both workers, writer threads
   included. Stopping the server with SIGTERM closes every worker's log; the records must all reach the bucket.
3. **The call alone**: ``log_answer`` called ``--calls`` times in one thread (NumPy arrays as the data plane holds
   them, a queue large enough to keep them all), off and on: calls per second and per-call p50/p99.

Prints the table and ``uptime``; stops what it started, by PID. Loopback only.
"""

# ruff: noqa: E402 - the repository root goes on sys.path before the project's packages are imported
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

import argparse
import gzip
import json
import multiprocessing
import os
import statistics
import subprocess
import tempfile
import threading
import time
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from typing import Any

import numpy as np
from flask import Flask
from peers import loadgen, servers
from sklearn.datasets import load_iris

from core import uuid7
from core.iris import CLASSES
from core.lineage import Lineage
from core.store import ArtifactRef, LoadedModel
from devstack import emulators, keys
from predictor.http import extensions
from predictor.http.app import create_app
from predictor.lifecycle.registry import Serving
from predictor.predlog.log import PredictionLog
from predictor.predlog.metrics import PredictionLogCounters
from predictor.predlog.settings import PredictionLogSettings
from predictor.predlog.spool import Spool
from predictor.settings import PredictorSettings
from trainer.model import build

PROJECT, BUCKET, PREFIX = "bench-project", "bench-predlog", "predictions/"
BODY = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]})
PROBABILITIES = [[0.97, 0.02, 0.01]]


def build_app(keys_dir: Path, log: PredictionLog) -> Flask:
    """The predictor's app serving the fitted pipeline, its data plane recording in `log`."""
    settings = PredictorSettings.model_validate(
        {
            "model_public_keys_dir": keys.ensure_pair(keys_dir)[1],
            "storage_emulator_host": "127.0.0.1:9",
            "gcs_retry_deadline": 0.5,
        }
    )
    app = create_app(settings)
    iris = load_iris()
    model = build().fit(iris.data, np.asarray(CLASSES)[iris.target])
    lineage = Lineage(
        version="20260101T000000000000Z", created_at="2026-01-01T00:00:00+00:00", sha256="0" * 64,
        signature="0" * 64, sklearn_version="bench", python_version="bench",
        model_type="StandardScaler+LogisticRegression", data_fingerprint="bench", row_count=150,
        metrics={"accuracy": 0.97}, feature_names=[], classes=[],
    )  # fmt: skip
    ref = ArtifactRef("models/model-20260101T000000000000Z.pkl", 1, lineage.version, {})
    dataplane = extensions.dataplane(app)
    dataplane.registry.serving = Serving.of(LoadedModel(ref, lineage, model))
    dataplane.log = log
    return app


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process `pid` used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(app: Flask, seconds: float, threads: int) -> tuple[float, list[float]]:
    """(requests per second, latencies in seconds) of `threads` closed loops for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = time.perf_counter() + seconds
    headers = {"Content-Type": "application/json"}

    def loop(own: list[float]) -> None:
        client = app.test_client()
        while (started := time.perf_counter()) < stop:
            answer = client.post("/v2/models/iris/infer", data=BODY, headers=headers)
            own.append(time.perf_counter() - started)
            if answer.status_code != 200:
                raise RuntimeError(f"{answer.status_code}: {answer.get_data(as_text=True)}")

    failures: list[BaseException] = []

    def guarded(own: list[float]) -> None:
        try:
            loop(own)
        except BaseException as e:
            failures.append(e)

    workers = [threading.Thread(target=guarded, args=(own,)) for own in latencies]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise failures[0]
    merged = [x for own in latencies for x in own]
    return len(merged) / elapsed, merged


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def ship(settings: PredictionLogSettings, spool: str, gcs_host: str, ready: Event, stop: Event) -> None:
    """The agent's part: a shipper until `stop`, then its final pass."""
    from core import gcs
    from predictor.predlog.shipper import Shipper

    bucket = gcs.client_for(PROJECT, gcs_host).bucket(BUCKET)
    shipper = Shipper(settings, bucket, Path(spool), "bench-pod")
    shipper.start()
    ready.set()
    stop.wait()
    if not shipper.stop():
        raise SystemExit(1)


def start_shipper(settings: PredictionLogSettings, spool: Path, gcs_host: str) -> tuple[BaseProcess, Event]:
    """The shipper's process, started and shipping, and the event that stops it."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    shipper = context.Process(target=ship, args=(settings, str(spool), gcs_host, ready, stop))
    shipper.start()
    if not ready.wait(60):
        raise RuntimeError("the shipper process did not start")
    return shipper, stop


def stop_shipper(shipper: BaseProcess, stop: Event) -> None:
    """Stop it after its final pass (killed if that takes over a minute)."""
    stop.set()
    shipper.join(60)
    if shipper.is_alive():
        shipper.kill()


def request_path(args: argparse.Namespace, workdir: Path, gcs_host: str) -> tuple[dict[str, list[Any]], int, int, int]:
    spool = workdir / "spool"
    settings = PredictionLogSettings(prediction_log_dir=spool, prediction_log_batch_interval=1.0)
    counters = PredictionLogCounters()
    on = PredictionLog(
        Spool(spool, counters, settings.prediction_log_queue_size, settings.prediction_log_rotate_bytes,
              settings.prediction_log_rotate_seconds, settings.prediction_log_max_spool_bytes),
    )  # fmt: skip
    off = PredictionLog(None, 0.0)
    app = build_app(workdir / "keys", off)
    shipper, stop = start_shipper(settings, spool, gcs_host)
    assert shipper.pid is not None
    shipper_cpu = process_cpu(shipper.pid)
    cells: dict[str, list[Any]] = {"off": [], "on": []}
    logged = 0
    try:
        for round_ in range(args.rounds):
            order = ("off", "on") if round_ % 2 == 0 else ("on", "off")
            for mode in order:
                extensions.dataplane(app).log = on if mode == "on" else off
                _, warm = load(app, args.warmup, args.threads)
                cpu = time.process_time()
                rate, latencies = load(app, args.duration, args.threads)
                cpu = (time.process_time() - cpu) / len(latencies)
                if mode == "on":
                    logged += len(warm) + len(latencies)
                cells[mode].append((rate, p(latencies, 50), p(latencies, 99), cpu))
                print(f"  round {round_ + 1} {mode:3}: {rate:8.0f} req/s  p50 {p(latencies, 50) * 1e3:.3f} ms  "
                      f"p99 {p(latencies, 99) * 1e3:.3f} ms  CPU {cpu * 1e6:.0f} µs/req", flush=True)  # fmt: skip
        on.close()
        time.sleep(settings.prediction_log_batch_interval * 1.5)  # its last regular pass
        shipper_cpu = process_cpu(shipper.pid) - shipper_cpu
    finally:
        stop_shipper(shipper, stop)
    print(
        f"  shipper process: {shipper_cpu:.2f} CPU s for {logged:,} records ({shipper_cpu / logged * 1e6:.1f} µs each)"
    )
    return cells, logged, bucket_records(gcs_host), int(counters.value("dropped"))


def bucket_records(gcs_host: str) -> int:
    """Records under PREFIX in the bucket now."""
    client = emulators.storage_client(gcs_host, PROJECT)
    return sum(
        gzip.decompress(blob.download_as_bytes()).count(b"\n") for blob in client.list_blobs(BUCKET, prefix=PREFIX)
    )


def gunicorn_app() -> Flask:
    """gunicorn's app factory (in each worker): the bench app with the log BENCH_PREDLOG names (on or off)."""
    from core.settings import load as load_settings

    settings = load_settings(PredictionLogSettings)
    if os.environ["BENCH_PREDLOG"] == "on":
        log = PredictionLog.from_settings(settings, Path(os.environ["BENCH_WORKDIR"]) / "handover")
    else:
        log = PredictionLog(None, 0.0)
    return build_app(Path(os.environ["BENCH_WORKDIR"]) / "keys", log)


def through_gunicorn(rounds: int, args: argparse.Namespace, workdir: Path, gcs_host: str) -> dict[str, list[Any]]:
    """Cells of (req/s, p50 ms, p99 ms, server CPU ms per request) by mode; checks every record reached the bucket."""
    spool = workdir / "gunicorn-spool"
    settings = PredictionLogSettings(prediction_log_dir=spool, prediction_log_batch_interval=1.0)
    shipper, stop = start_shipper(settings, spool, gcs_host)
    cells: dict[str, list[Any]] = {"off": [], "on": []}
    body = BODY.encode()
    try:
        for round_ in range(rounds):
            for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                port = emulators.free_port()
                env = os.environ | {
                    "PYTHONPATH": str(REPO), "BENCH_PREDLOG": mode, "BENCH_WORKDIR": str(workdir),
                    "PREDICTION_LOG_DIR": str(spool), "PREDICTION_LOG_BATCH_INTERVAL": "1",
                }  # fmt: skip
                cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                       "--worker-class", "gthread", "--threads", "4", "--no-control-socket",
                       "predlog_bench:gunicorn_app()"]  # fmt: skip
                server = servers.spawn(
                    f"gunicorn-{mode}", cmd, port, workdir / f"gunicorn-{mode}.log", env, REPO / "bench"
                )
                try:
                    url = f"{server.url}/v2/models/iris/infer"
                    servers.wait_ready(server, "/v2/models/iris/infer", body=body)
                    loadgen.run(url, body, 8, args.warmup, 0)
                    cpu = servers.cpu_seconds(server.process.pid)
                    result = loadgen.run(url, body, 8, args.duration, 0)
                    cpu = (servers.cpu_seconds(server.process.pid) - cpu) / max(1, result.requests)
                finally:
                    server.stop()
                if result.errors:
                    raise RuntimeError(f"{result.errors} failed requests\n{server.log_tail()}")
                cells[mode].append((result.rps, result.p50_ms, result.p99_ms, cpu * 1e3, result.requests))
                print(f"  round {round_ + 1} {mode:3}: {result.rps:8.0f} req/s  p50 {result.p50_ms:.3f} ms  "
                      f"p99 {result.p99_ms:.3f} ms  server CPU {cpu * 1e6:.0f} µs/req", flush=True)  # fmt: skip
    finally:
        stop_shipper(shipper, stop)
    return cells


def call_alone(calls: int) -> dict[str, tuple[float, float, float]]:
    rows, classes, probabilities = np.array([[5.1, 3.5, 1.4, 0.2]]), np.array(["setosa"]), np.array(PROBABILITIES)
    results = {}
    with tempfile.TemporaryDirectory(prefix="predlog-bench-calls-") as folder:
        for mode in ("off", "on", "off", "on"):
            spool = Spool(Path(folder), PredictionLogCounters(), queue_size=calls + 1) if mode == "on" else None
            log = PredictionLog(spool)
            request_ids = [uuid7.new() for _ in range(calls)]
            durations = np.empty(calls)
            clock = time.perf_counter_ns
            began = clock()
            for i, request_id in enumerate(request_ids):
                started = clock()
                log.log_answer(request_id, "v2", "v1", rows, classes, probabilities)
                durations[i] = clock() - started
            elapsed = (clock() - began) / 1e9
            log.close(60)
            results[mode] = (calls / elapsed, float(np.percentile(durations, 50)), float(np.percentile(durations, 99)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--gunicorn-rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    print(f"load before: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    with tempfile.TemporaryDirectory(prefix="predlog-bench-") as folder:
        workdir = Path(folder)
        gcs = emulators.start_fake_gcs(emulators.free_port(), None, workdir / "fake-gcs.log")
        try:
            emulators.ensure_bucket(gcs.host, PROJECT, BUCKET)
            print(f"request path: {args.threads} threads, {args.rounds} rounds of {args.duration:g} s per mode")
            cells, logged, arrived, dropped = request_path(args, workdir, gcs.host)
            served: dict[str, list[Any]] = {}
            if args.gunicorn_rounds:
                print(f"through gunicorn: 2 gthread workers x 4 threads, wrk at 8 connections, {args.gunicorn_rounds} "
                      f"rounds of {args.duration:g} s per mode")  # fmt: skip
                served = through_gunicorn(args.gunicorn_rounds, args, workdir, gcs.host)
                from_gunicorn = bucket_records(gcs.host) - arrived
        finally:
            gcs.stop()
    print(f"calls alone: {args.calls} calls per mode, twice")
    alone = call_alone(args.calls)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    def median(mode: str, index: int) -> float:
        return statistics.median(cell[index] for cell in cells[mode])

    off_rate, on_rate = median("off", 0), median("on", 0)
    off_p99, on_p99 = median("off", 2), median("on", 2)
    print()
    print("| measurement | log off | log on (100%) | on / off |")
    print("|---|---|---|---|")
    print(f"| request path: req/s (median of {args.rounds}) | {off_rate:,.0f} | {on_rate:,.0f} | "
          f"{on_rate / off_rate:.3f} |")  # fmt: skip
    print(f"| request path: p50 ms | {median('off', 1) * 1e3:.3f} | {median('on', 1) * 1e3:.3f} | "
          f"{median('on', 1) / median('off', 1):.3f} |")  # fmt: skip
    print(f"| request path: p99 ms | {off_p99 * 1e3:.3f} | {on_p99 * 1e3:.3f} | {on_p99 / off_p99:.3f} |")
    print(f"| request path: CPU µs per request (this process, all threads) | {median('off', 3) * 1e6:.0f} | "
          f"{median('on', 3) * 1e6:.0f} | {median('on', 3) / median('off', 3):.3f} |")  # fmt: skip
    if served:

        def gmedian(mode: str, index: int) -> float:
            return statistics.median(cell[index] for cell in served[mode])

        for label, index, unit in (("req/s", 0, 1.0), ("p50 ms", 1, 1.0), ("p99 ms", 2, 1.0),
                                   ("server CPU µs per request", 3, 1e3)):  # fmt: skip
            off, on = gmedian("off", index) * unit, gmedian("on", index) * unit
            digits = 0 if index in (0, 3) else 3
            print(f"| gunicorn 2x4, wrk 8 conn: {label} (median of {args.gunicorn_rounds}) | {off:,.{digits}f} | "
                  f"{on:,.{digits}f} | {on / off:.3f} |")  # fmt: skip
    print(f"| log_answer alone: calls/s | {alone['off'][0]:,.0f} | {alone['on'][0]:,.0f} | "
          f"{alone['on'][0] / alone['off'][0]:.3f} |")  # fmt: skip
    print(f"| log_answer alone: p50 / p99 µs | {alone['off'][1] / 1e3:.2f} / {alone['off'][2] / 1e3:.2f} | "
          f"{alone['on'][1] / 1e3:.2f} / {alone['on'][2] / 1e3:.2f} | |")  # fmt: skip
    print(f"\nin process: records logged {logged:,}, in the bucket {arrived:,}, dropped {dropped}")
    ok = arrived == logged and not dropped
    if served:
        measured = sum(cell[4] for cell in served["on"])
        print(f"gunicorn: records in the bucket {from_gunicorn:,} for {measured:,} requests measured with the log on "
              "(plus warm-ups and requests in flight at each window's end)")  # fmt: skip
        ok = ok and from_gunicorn >= measured
    print(f"load after: {uptime}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
