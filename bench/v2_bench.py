"""Open Inference Protocol V2 benchmark: REST and gRPC, 1-row and 100-row requests, ours against MLServer's.

``python bench/v2_bench.py [--duration 10] [--warmup 2] [--connections 8] [--rounds 1]``. Starts fake-gcs-server
(memory backend), publishes a signed model, then, each alone and one after another: our REST server (``python -m
predictor``: gunicorn, 2 gthread workers x 4 threads, with its model agent), our gRPC server (``python -m
predictor.grpc``, one process) and MLServer 1.7.1 (sklearn runtime, ``parallel_workers: 0``, its own virtualenv under
``bench/.venvs/``, REST and gRPC in one process) on the same fitted model. Every cell is the same closed loop from
h2load (nghttp2-client: HTTP/1.1 keep-alive for REST, HTTP/2 for gRPC); rounds rotate the order of the servers.
Each request asks for the ``predict`` output. Before measuring, every payload is sent once by a real client (requests
for REST, grpcio for gRPC) and its answer checked. Prints one table; stops everything it started, by PID. Loopback only.
"""

# ruff: noqa: E402 - the repository root goes on sys.path before the project's packages are imported
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass

import grpc
import numpy as np
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from peers import loadgen, servers, venvs
from sklearn.datasets import load_iris

from core import gcs
from core.iris import CLASSES
from core.settings import CommonSettings
from core.store import ModelStore
from devstack import emulators, keys
from devstack.emulators import Service
from predictor.protos import grpc_predict_v2_pb2 as pb
from trainer.model import build

PROJECT, BUCKET = "bench-project", "bench-models"
INFER = "/inference.GRPCInferenceService/ModelInfer"
GRPC_HEADERS = ["content-type: application/grpc", "te: trailers"]
REST_HEADERS = ["content-type: application/json"]


@dataclass(frozen=True)
class Target:
    """One server and protocol under load."""

    server: str
    protocol: str
    service: Service
    address: str
    """host:port to send to"""
    model: str


@dataclass(frozen=True)
class Result(loadgen.Result):
    """A load cell as the predictor benchmark reports it, plus the statuses of the requests that failed."""

    statuses: tuple[tuple[str, int], ...] = ()
    """HTTP status -> count of the requests that did not get 200 (-1: the stream failed)."""


def rows(count: int) -> np.ndarray:
    return load_iris().data[:count] if count <= 150 else np.resize(load_iris().data, (count, 4))


def rest_body(model: str, batch: np.ndarray) -> bytes:
    tensor = {"name": "input-0", "shape": list(batch.shape), "datatype": "FP64", "data": batch.ravel().tolist()}
    return json.dumps({"inputs": [tensor], "outputs": [{"name": "predict"}]}).encode()


def grpc_message(model: str, batch: np.ndarray) -> bytes:
    request = pb.ModelInferRequest(
        model_name=model, outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="predict")]
    )
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=list(batch.shape))
    tensor.contents.fp64_contents.extend(batch.ravel().tolist())
    return request.SerializeToString()


def check(target: Target, batch: np.ndarray) -> bytes:
    """The payload for ``target``, sent once by a real client whose answer must be one prediction per row."""
    if target.protocol == "REST":
        body = rest_body(target.model, batch)
        answer = requests.post(f"http://{target.address}/v2/models/{target.model}/infer", data=body, timeout=10,
                               headers={"Content-Type": "application/json"})  # fmt: skip
        answer.raise_for_status()
        shapes = [o["shape"] for o in answer.json()["outputs"]]
        assert shapes == [[len(batch)]] or shapes == [[len(batch), 1]], shapes
        return body
    message = grpc_message(target.model, batch)
    with grpc.insecure_channel(target.address) as channel:
        reply = pb.ModelInferResponse.FromString(channel.unary_unary(INFER)(message, timeout=10))
    assert [o.name for o in reply.outputs] == ["predict"], reply
    assert int(np.prod(reply.outputs[0].shape)) == len(batch), reply.outputs[0].shape
    return b"\0" + len(message).to_bytes(4, "big") + message  # the gRPC length-prefixed message on the wire


def h2load(target: Target, body: bytes, connections: int, seconds: float, warmup: float) -> Result:
    """One closed-loop cell: ``connections`` connections, one request in flight on each."""
    with tempfile.TemporaryDirectory() as tmp:
        data, log = Path(tmp) / "body", Path(tmp) / "log"
        data.write_bytes(body)
        if target.protocol == "REST":
            url, headers, extra = f"http://{target.address}/v2/models/{target.model}/infer", REST_HEADERS, ["--h1"]
        else:
            url, headers, extra = f"http://{target.address}{INFER}", GRPC_HEADERS, []
        cmd = ["h2load", "-c", str(connections), "-m", "1", "-t", "1", "-D", f"{round(seconds * 1000)}ms",
               "--warm-up-time", f"{round(warmup * 1000)}ms", "-d", str(data), f"--log-file={log}", *extra]  # fmt: skip
        for header in headers:
            cmd += ["-H", header]
        before = servers.cpu_seconds(target.service.process.pid)
        subprocess.run([*cmd, url], capture_output=True, text=True, check=True, timeout=seconds + warmup + 60)
        cpu = servers.cpu_seconds(target.service.process.pid) - before
        lines = [line.split("\t") for line in log.read_text().splitlines() if line]
    ok = [int(micros) / 1000 for _, status, micros, *_ in lines if status == "200"]
    done = len(ok)
    quantiles = statistics.quantiles(ok, n=100) if len(ok) > 1 else [float("nan")] * 99
    last_start = max((int(start) for start, *_ in lines), default=0)
    failed = tuple(sorted(Counter(
        f"{status} at end-{(last_start - int(start)) / 1000:.0f}ms" for start, status, *_ in lines if status != "200"
    ).items()))  # fmt: skip
    cpu_ms = cpu * 1000 / max(done, 1)
    return Result(done / seconds, quantiles[49], quantiles[98], len(lines) - done, done, cpu_ms, failed)


def start_stack(logs: Path) -> tuple[Service, dict[str, str], object]:
    gcs_server = emulators.start_fake_gcs(emulators.free_port(), None, logs / "fake-gcs.log")
    emulators.ensure_bucket(gcs_server.host, PROJECT, BUCKET)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env |= {"GOOGLE_CLOUD_PROJECT": PROJECT, "GCS_BUCKET": BUCKET, "STORAGE_EMULATOR_HOST": gcs_server.host}
    env |= {**keys.env(logs / "keys"), "LOG_LEVEL": "WARNING", "MODEL_EVENTS_ENABLED": "false"}
    env |= {"RECONCILE_INTERVAL_WITHOUT_EVENTS": "300"}
    settings = CommonSettings(google_cloud_project=PROJECT, gcs_bucket=BUCKET, storage_emulator_host=gcs_server.host)
    store = ModelStore(gcs.client(settings).bucket(BUCKET), keys.keyring(logs / "keys"), gcs.retry(settings))
    iris = load_iris()
    model = build().fit(iris.data, np.asarray(CLASSES)[iris.target])
    store.publish(model, data_fingerprint="bench-v2", row_count=150, metrics={})
    return gcs_server, env, model


def wait_grpc(service: Service, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(service.host) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and service.alive():
            try:
                ask = health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService")
                if stub.Check(ask, timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"{service.name} not serving:\n{service.log_tail()}")


def ours_rest(env: dict[str, str], model: object, logs: Path) -> list[Target]:
    rest = servers.start_predictor(env, emulators.free_port(), logs / "predictor.log")
    servers.wait_ready(rest, "/v2/health/ready", timeout=120)
    return [Target("ours", "REST", rest, rest.host, "iris")]


def ours_grpc(env: dict[str, str], model: object, logs: Path) -> list[Target]:
    port = emulators.free_port()
    server = servers.spawn("predictor-grpc", [sys.executable, "-m", "predictor.grpc"], port,
                           logs / "predictor-grpc.log", env | {"GRPC_PORT": str(port)})  # fmt: skip
    wait_grpc(server)
    return [Target("ours", "gRPC", server, server.host, "iris")]


def mlserver(env: dict[str, str], model: object, logs: Path) -> list[Target]:
    """MLServer serves REST and gRPC from one process (``parallel_workers: 0``, its best in bench/README.md)."""
    ml_bin = venvs.ensure_venv("mlserver", venvs.mlserver_requirements())
    repo = logs / f"mlserver-{time.monotonic_ns()}"
    server = servers.start_mlserver(ml_bin, model, repo, emulators.free_port(), logs / "mlserver.log")
    servers.wait_ready(server, "/v2/models/iris/ready", timeout=120)
    grpc_address = f"127.0.0.1:{json.loads((repo / 'settings.json').read_text())['grpc_port']}"
    return [
        Target("mlserver", "REST", server, server.host, "iris"),
        Target("mlserver", "gRPC", server, grpc_address, "iris"),
    ]


PEERS = (ours_rest, ours_grpc, mlserver)
"""Each started alone, measured, stopped, before the next one starts."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="discarded seconds before each cell")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="repeat every cell; the table shows medians")
    args = parser.parse_args(argv)
    if not shutil.which("h2load"):
        raise SystemExit("h2load is missing: apt-get install nghttp2-client")
    logs = Path(tempfile.mkdtemp(prefix="v2-bench-"))
    gcs_server, env, model = start_stack(logs)
    cells: dict[tuple[str, str, int], list[Result]] = {}
    rss: list[float] = []
    try:
        for round_index in range(args.rounds):
            for start in PEERS[round_index % 3 :] + PEERS[: round_index % 3]:
                targets = start(env, model, logs)
                try:
                    for batch_size in (1, 100):
                        for target in targets:
                            body = check(target, rows(batch_size))
                            result = h2load(target, body, args.connections, args.duration, args.warmup)
                            cells.setdefault((target.server, target.protocol, batch_size), []).append(result)
                    if start is ours_grpc:
                        rss.append(servers.rss_mb(targets[0].service.process.pid))
                finally:
                    for service in {id(t.service): t.service for t in targets}.values():
                        service.stop()
        print_table(cells, args)
        print(f"our gRPC process: RSS {', '.join(f'{mb:.0f}' for mb in rss)} MB after its cells")
    finally:
        gcs_server.stop()
    return 0


def print_table(cells: dict[tuple[str, str, int], list[Result]], args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(f"\nV2 inference, {args.connections} connections, {args.duration:g} s per cell x {args.rounds} round(s), "
          f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")  # fmt: skip
    head = ("rows", "protocol", "server", "req/s", "rows/s", "p50 ms", "p99 ms", "CPU ms/req", "errors", "vs MLServer")
    print("{:>4} {:<8} {:<9} {:>8} {:>9} {:>7} {:>7} {:>10} {:>6} {:>11}".format(*head))
    for (server, protocol, batch), results in sorted(cells.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0])):
        r = median(results)
        peer = median(cells[("mlserver", protocol, batch)])
        row = (batch, protocol, server, f"{r.rps:.0f}", f"{r.rps * batch:.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}",
               f"{r.cpu_ms:.2f}", r.errors, f"{r.rps / peer.rps:.2f}x" if server != "mlserver" else "")  # fmt: skip
        print("{:>4} {:<8} {:<9} {:>8} {:>9} {:>7} {:>7} {:>10} {:>6} {:>11}".format(*row))
    for key, results in sorted(cells.items()):
        for result in results:
            if result.statuses:
                print(f"not 200 in {key}: {dict(result.statuses)}")


def median(results: list[Result]) -> Result:
    return Result(*(statistics.median(getattr(r, f) for r in results) for f in ("rps", "p50_ms", "p99_ms")),
                  sum(r.errors for r in results), sum(r.requests for r in results),
                  statistics.median(r.cpu_ms for r in results))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
