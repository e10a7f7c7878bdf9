"""Drop-to-serving benchmark on the local stack (`make run`'s orchestrator, started here on free ports).

    .venv/bin/python bench/drop_bench.py [--drops 20] [--burst 20] [--workers 2]

1. Drops: one valid CSV at a time is uploaded to incoming/, as `make drop` does. Each is timed from the upload's
   return until every predictor worker answers with a model that learned from it: /v1/model names the first such
   version, then /predict over new connections must answer from it (or newer) 4 x workers times in a row.
2. Burst: N files uploaded within 2 s; the training runs the watcher started for them (its log), and the time until a
   model that learned from all N serves.
3. Bad CSV: one file the ingest function quarantines; the training runs it started (must be 0).
Exits 1 when a target is missed: p50 < 5 s and max < 10 s over the drops, at most 2 runs for the burst, 0 for the bad
CSV.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import requests
from sklearn.datasets import load_iris

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import layout  # noqa: E402
from core.iris import CLASSES, FEATURES, LABEL  # noqa: E402
from devstack.emulators import free_port, storage_client  # noqa: E402
from devstack.run import port_variables  # noqa: E402

T = TypeVar("T")
PORTS = port_variables()
"""Every port the local stack listens on."""
PREDICT = {"instances": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]}
IRIS = load_iris()


def plausible_csv(seed: int, rows: int = 30) -> bytes:
    """`rows` iris rows with 0.05 cm of noise per measurement, species kept."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(IRIS.target), rows)
    values = np.round(IRIS.data[picks] + rng.normal(0, 0.05, (rows, 4)), 3).clip(0.1, 100)
    lines = [",".join((*FEATURES, LABEL))]
    species = [CLASSES[IRIS.target[i]] for i in picks]
    lines += [",".join([*(f"{v:.3f}" for v in row), name]) for row, name in zip(values, species, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def poll(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.02) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"no {what} within {timeout} s")


class LocalStack:
    """`python -m devstack.run` from the repository root (as `make run` starts it) with `env` on top of this process's
    environment (PORT, STACK_GCS_PORT, STACK_DIR, ...; a relative STACK_DIR is relative to the repository, as for
    `make run`); output to `log`; stopped with SIGINT like Ctrl-C."""

    def __init__(self, env: dict[str, str], log: Path, workers: int, ready_timeout: float = 120) -> None:
        self.env = env
        """What this stack runs with on top of the benchmark's environment."""
        env = os.environ | env
        self.port, gcs_port = int(env.get("PORT", 8080)), int(env.get("STACK_GCS_PORT", 4443))
        self.logs = ROOT / env.get("STACK_DIR", ".stack") / "logs"
        self.url, self.workers = f"http://127.0.0.1:{self.port}", workers
        self.project, self.bucket_name = (
            env.get("GOOGLE_CLOUD_PROJECT", "local-project"),
            env.get("GCS_BUCKET", "iris-models"),
        )
        self.gcs_host, self.run_log = f"127.0.0.1:{gcs_port}", log
        with log.open("wb") as out:
            cmd = [sys.executable, "-m", "devstack.run"]
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out)
        self.bucket = storage_client(self.gcs_host, self.project).bucket(self.bucket_name)
        try:
            poll(lambda: self.ready(), ready_timeout, "ready stack", every=0.5)
        except BaseException:
            self.stop()
            raise

    @classmethod
    def on_free_ports(
        cls, workdir: Path, workers: int, bucket: str = "drop-bench", extra: dict[str, str] | None = None
    ) -> LocalStack:
        """The stack in `workdir`/stack on free ports (every one: another stack may be on the defaults), with
        `workers` predictor workers, `extra` settings on top."""
        env = {name: str(free_port()) for name in PORTS}
        env |= {"STACK_DIR": str(workdir / "stack"), "GCS_BUCKET": bucket, "WEB_CONCURRENCY": str(workers)}
        return cls(env | (extra or {}), workdir / "run.log", workers)

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            tail = self.run_log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the local stack exited ({self.proc.returncode}) before it was ready:\n{tail}")
        return self.status("/v2/health/ready") == 200

    def status(self, path: str) -> int:
        try:
            return requests.get(self.url + path, timeout=2).status_code
        except requests.RequestException:
            return 0

    def learned_from(self, name: str) -> str | None:
        """The serving version if its lineage includes data/`name` (whichever worker answered)."""
        lineage = requests.get(self.url + "/v1/model", timeout=2).json().get("lineage") or {}
        objects = lineage.get("data_objects", [])
        return lineage.get("version") if any(o.startswith(layout.DATA + name + "#") for o in objects) else None

    def every_worker_serves(self, version: str) -> bool:
        for _ in range(4 * self.workers):
            resp = requests.post(self.url + "/predict", json=PREDICT, headers={"Connection": "close"}, timeout=5)
            if resp.status_code != 200 or resp.headers.get("X-Model-Version", "") < version:
                return False
        return True

    def training_runs(self) -> int:
        """Event-triggered training runs the watcher has started so far."""
        path = self.logs / "trainer-watch.log"
        lines = path.read_text().splitlines() if path.exists() else []
        records = [json.loads(line) for line in lines if line.startswith("{")]
        return sum(1 for r in records if r.get("message") == "training run" and r.get("trigger") == "event")

    def drop(self, name: str, data: bytes) -> None:
        self.bucket.blob(layout.INCOMING + name).upload_from_string(data, "text/csv")

    def until_serving(self, name: str, timeout: float = 60) -> float:
        """Seconds from now until every worker serves a model that learned from data/`name`."""
        started = time.monotonic()
        version = poll(lambda: self.learned_from(name), timeout, f"model that learned from {name}")
        poll(lambda: self.every_worker_serves(version), timeout, f"every worker on {version}")
        return time.monotonic() - started

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=90)


def single_drops(stack: LocalStack, count: int) -> list[float]:
    seconds = []
    for i in range(count):
        stack.drop(f"drop-{i:02d}.csv", plausible_csv(seed=i))
        seconds.append(stack.until_serving(f"drop-{i:02d}.csv"))
    return seconds


def burst(stack: LocalStack, count: int) -> tuple[int, float, float]:
    """(training runs, upload seconds, seconds until every worker serves a model that learned from all files)."""
    before, started = stack.training_runs(), time.monotonic()
    names = [f"burst-{i:02d}.csv" for i in range(count)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: stack.drop(names[i], plausible_csv(seed=1000 + i)), range(count)))
    uploaded = time.monotonic() - started
    for name in names:
        stack.until_serving(name, timeout=120)
    served = time.monotonic() - started
    time.sleep(3.0)  # a second batch of the burst may still be settling
    return stack.training_runs() - before, uploaded, served


def bad_csv(stack: LocalStack) -> int:
    before = stack.training_runs()
    stack.drop("bad.csv", b"sepal,petal\nnot,numbers\n")
    poll(lambda: list(stack.bucket.list_blobs(prefix=layout.QUARANTINE + "bad")), 30, "quarantined bad.csv", 0.1)
    time.sleep(3.0)  # quiet period + a pull: a (wrong) run would have started by now
    return stack.training_runs() - before


def report(drops: list[float], burst_result: tuple[int, float, float], bad_runs: int, n_burst: int) -> bool:
    p50, worst = statistics.median(drops), max(drops)
    runs, uploaded, served = burst_result
    rows: list[tuple[str, str, str, bool]] = [
        (f"drop to every worker serving, p50 ({len(drops)} drops)", f"{p50:.2f} s", "< 5 s", p50 < 5),
        (f"drop to every worker serving, max ({len(drops)} drops)", f"{worst:.2f} s", "< 10 s", worst < 10),
        (f"burst of {n_burst} files (uploaded in {uploaded:.1f} s): training runs", str(runs), "<= 2", 1 <= runs <= 2),
        (f"burst of {n_burst} files: until every worker serves all", f"{served:.2f} s", "-", True),
        ("bad CSV: training runs started", str(bad_runs), "0", bad_runs == 0),
    ]
    info = Path("/proc/cpuinfo").read_text().splitlines()
    names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    cpu = names[0] if names else platform.machine()
    print(f"machine: {os.cpu_count()} CPUs, {cpu}, Python {platform.python_version()}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"drops (s): {' '.join(f'{s:.2f}' for s in drops)}")
    print("| measurement | value | target | pass |\n|---|---:|---:|---|")
    for what, value, target, ok in rows:
        print(f"| {what} | {value} | {target} | {'yes' if ok else 'NO'} |")
    return all(ok for *_, ok in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drops", type=int, default=20)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="WEB_CONCURRENCY of the local predictor")
    args: Any = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drop-bench-") as tmp:
        stack = LocalStack.on_free_ports(Path(tmp), args.workers)
        try:
            drops = single_drops(stack, args.drops)
            burst_result = burst(stack, args.burst)
            bad_runs = bad_csv(stack)
        finally:
            stack.stop()
    return 0 if report(drops, burst_result, bad_runs, args.burst) else 1


if __name__ == "__main__":
    sys.exit(main())
