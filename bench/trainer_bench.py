"""Trainer benchmark: 1,000,000 rows in several CSVs on a fake-gcs-server, timed `python -m trainer` runs.

    .venv/bin/python bench/trainer_bench.py [--rows 1000000] [--files 8]

Measures wall time, CPU time and peak RSS (os.wait4 rusage of the trainer process) of the training run, and the wall
time of the second ("no new data") run. Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.iris import CLASSES, FEATURES, LABEL, MAX_CM  # noqa: E402
from devstack import emulators, keys  # noqa: E402
from trainer import evalset  # noqa: E402

PROJECT, BUCKET = "bench-project", "bench-bucket"
TARGETS = {"train": 60.0, "rss_mb": 1536.0, "skip": 2.0}


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    max_rss_mb: float
    returncode: int
    summary: dict


def generate(rows: int, seed: int) -> bytes:
    """Rows sampled around each iris class's mean and spread (plus noise), in class proportions 1:1:1."""
    iris, rng = load_iris(), np.random.default_rng(seed)
    labels = rng.integers(0, 3, rows)
    means = np.array([iris.data[iris.target == c].mean(axis=0) for c in range(3)])
    spreads = np.array([iris.data[iris.target == c].std(axis=0) for c in range(3)])
    x = rng.normal(means[labels], spreads[labels] * 1.2) + rng.normal(0, 0.05, (rows, len(FEATURES)))
    x = np.clip(x, 0.0, MAX_CM)
    table = np.empty((rows, len(FEATURES) + 1), dtype=object)
    table[:, :-1], table[:, -1] = np.round(x, 2), np.asarray(CLASSES)[labels]
    out = io.BytesIO()
    np.savetxt(out, table, fmt=["%s"] * (len(FEATURES) + 1), delimiter=",", header=",".join((*FEATURES, LABEL)),
               comments="")  # fmt: skip
    return out.getvalue()


def run_trainer(env: dict[str, str], workdir: Path) -> Run:
    """Run `python -m trainer` once; wall time and the peak RSS of exactly that process."""
    out, err = workdir / "stdout", workdir / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "trainer"], cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = out.read_text().strip().splitlines()
    summary = json.loads(lines[-1]) if lines else {"status": "no output", "stderr": err.read_text()[-2000:]}
    return Run(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode, summary)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))  # fmt: skip
    load, python = os.getloadavg()[0], platform.python_version()
    return f"{os.cpu_count()} CPUs ({cpu}), {mem_kb / 1024**2:.1f} GiB RAM, load average {load:.1f}, Python {python}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trainer-bench-") as tmp:
        workdir = Path(tmp)
        server = emulators.start_fake_gcs(emulators.free_port(), None, workdir / "fake-gcs.log")
        try:
            bucket = emulators.ensure_bucket(server.host, PROJECT, BUCKET)
            evalset.publish(bucket, keys.keyring(workdir / "keys"), None, evalset.iris_rows())  # as the setup does
            started, total_bytes = time.monotonic(), 0
            for i, count in enumerate(np.array_split(np.arange(args.rows), args.files)):
                data = generate(len(count), seed=i)
                total_bytes += len(data)
                bucket.blob(f"data/part-{i:03d}.csv").upload_from_string(data, content_type="text/csv")
            print(f"generated and uploaded {args.rows:,} rows in {args.files} CSVs "
                  f"({total_bytes / 1e6:.1f} MB) in {time.monotonic() - started:.1f} s")  # fmt: skip
            env = os.environ | {
                "GOOGLE_CLOUD_PROJECT": PROJECT, "GCS_BUCKET": BUCKET, "STORAGE_EMULATOR_HOST": server.host,
                "LOG_LEVEL": "WARNING", **keys.env(workdir / "keys"),
            }  # fmt: skip
            train = run_trainer(env, workdir)
            skip = run_trainer(env, workdir)
        finally:
            server.stop()
    return report(args.rows, train, skip)


def check(name: str, value: str, limit: float | None = None, actual: float = 0.0, unit: str = "") -> tuple:
    """One table row: (measurement, value, target, met)."""
    return name, value, f"< {limit:g} {unit}" if limit else "", limit is None or actual < limit


def report(rows: int, train: Run, skip: Run) -> int:
    checks = [
        check("train + publish wall time", f"{train.seconds:.1f} s", TARGETS["train"], train.seconds, "s"),
        check("train + publish CPU time (user+sys)", f"{train.cpu_seconds:.1f} s"),
        check("train + publish peak RSS", f"{train.max_rss_mb:.0f} MB", TARGETS["rss_mb"], train.max_rss_mb, "MB"),
        check("no-new-data run wall time", f"{skip.seconds:.2f} s", TARGETS["skip"], skip.seconds, "s"),
        check("no-new-data run CPU time (user+sys)", f"{skip.cpu_seconds:.2f} s"),
        check("no-new-data run peak RSS", f"{skip.max_rss_mb:.0f} MB"),
    ]
    print(f"machine: {machine()}")
    print(f"train run: status {train.summary.get('status')}, rows {train.summary.get('rows')}, "
          f"accuracy {train.summary.get('metrics', {}).get('accuracy')}, exit {train.returncode}")  # fmt: skip
    print(f"skip run: status {skip.summary.get('status')} ({skip.summary.get('reason')}), exit {skip.returncode}")
    print(f"\n| measurement ({rows:,} rows) | value | target | ok |\n|---|---|---|---|")
    for name, value, target, ok in checks:
        print(f"| {name} | {value} | {target} | {'yes' if ok else 'NO'} |")
    published = train.summary.get("status") == "published" and skip.summary.get("reason") == "no new data"
    return 0 if published and all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
