"""Loop benchmark: what the service serves feeds what it learns, on the local stack (`make run`'s orchestrator,
started here on free ports).

    .venv/bin/python bench/loop_bench.py [--cut 5.6] [--rounds 2] [--workers 2] [--fast]

1. The operator's world is iris without part of its range: the virginica flowers with petal length below `--cut` cm
   are missing. That partial data set replaces `data/iris.csv`, a trusted evaluation set of the same rows replaces
   the seeded one (`python -m trainer.evalset publish --replace`, as an operator would), and the seeded model is
   deleted (the gate would otherwise, rightly, refuse a model that knows less than it); the data event trains on the
   partial data, and that model serves everywhere.
2. Traffic from the whole iris range (the 150 flowers, `--rounds` times, one row per request on /predict, the
   service's request ids kept) is answered by that model: its accuracy against the true species is "before".
3. Feedback: the true species of every answered row is posted to /v1/feedback in batches (with the feedback token
   the stack made, as `make run` prints it). The
   clock starts at the first feedback request and stops when every worker answers from a model whose lineage counts
   feedback rows (`feedback_rows` > 0). On the way the benchmark notes when the joiner's CSV appeared in incoming/,
   when the ingest function put it into data/, and when the model was published.
4. The same traffic again: accuracy "after"; and its feedback again. The service's own live accuracy of each version
   (the joiner's counts, as `/v1/model/monitoring` shows them) is printed next to the benchmark's.

The product's default intervals apply (spool rotation, shipping, join interval) unless `--fast` shortens them, so the
time shows what a deployment with the defaults waits. Exits 1 when the loop does not close (no model that learned
from feedback serves everywhere within `--timeout`) or when accuracy after is not above accuracy before.
"""

# ruff: noqa: E402 - the repository root goes on sys.path before the project's packages are imported
from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

import argparse
import os
import platform
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import requests
from drop_bench import IRIS, LocalStack, poll

from core import layout
from core.iris import CLASSES, FEATURES, LABEL

FEEDBACK_BATCH = 100
"""Feedback items per POST /v1/feedback."""
FAST = {
    "PREDICTION_LOG_ROTATE_SECONDS": "2",
    "PREDICTION_LOG_BATCH_INTERVAL": "1",
    "FEEDBACK_JOIN_INTERVAL": "2",
    "LIVE_ACCURACY_INTERVAL": "2",
}
"""--fast: the settings that set the loop's pace, shortened."""


def partial_rows(cut: float) -> np.ndarray:
    """Indices of the iris flowers the operator knows: every one but virginica with petal length below `cut`."""
    petal_length = IRIS.data[:, FEATURES.index("petal_length")]
    return np.flatnonzero(~((IRIS.target == CLASSES.index("virginica")) & (petal_length < cut)))


def csv_of(indices: np.ndarray) -> bytes:
    lines = [",".join((*FEATURES, LABEL))]
    lines += [",".join([*(f"{v:.1f}" for v in IRIS.data[i]), CLASSES[IRIS.target[i]]]) for i in indices]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Traffic:
    """One pass of whole-range traffic: the request ids the service gave and the true species of each row."""

    ids: list[str] = field(default_factory=list)
    truth: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)

    @property
    def accuracy(self) -> float:
        return sum(p == t for p, t in zip(self.predicted, self.truth, strict=True)) / len(self.truth)


class Loop:
    """The stack, its environment (`.stack/env` plus the stack's own), and the steps of the benchmark."""

    def __init__(self, stack: LocalStack, stack_env: dict[str, str], env_file: Path, token: str) -> None:
        self.stack, self.token = stack, token
        self.env = os.environ | stack_env | self.read_env(env_file)  # the file holds what differs from stack_env
        self.session = requests.Session()

    @staticmethod
    def read_env(path: Path) -> dict[str, str]:
        env = {}
        for line in path.read_text().splitlines():
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                env[name] = shlex.split(value)[0] if value else ""
        return env

    def run(self, *args: str) -> str:
        done = subprocess.run([sys.executable, *args], cwd=ROOT, env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
        return done.stdout

    def model(self) -> dict[str, Any]:
        resp = self.session.get(self.stack.url + "/v1/model", timeout=5)
        resp.raise_for_status()
        return dict(resp.json())

    def operator_world(self, cut: float) -> str:
        """Partial data and a partial evaluation set; the version of the model trained on them, serving everywhere."""
        known = partial_rows(cut)
        with tempfile.NamedTemporaryFile("wb", suffix=".csv", delete=False) as f:
            f.write(csv_of(known))
        try:
            self.run("-m", "trainer.evalset", "publish", f.name, "--replace")
        finally:
            os.unlink(f.name)
        bucket = self.stack.bucket
        for blob in bucket.list_blobs(prefix=layout.MODELS):  # no model that saw the whole range stays to compare
            blob.delete()
        bucket.blob(
            layout.DATA + "iris.csv"
        ).delete()  # before the upload, so the data event's run sees known.csv alone
        bucket.blob(layout.DATA + "known.csv").upload_from_string(csv_of(known), "text/csv")
        try:
            version = poll(self.trained_on_known_only, 60, "a model trained on known.csv alone", 0.5)
        except TimeoutError:
            self.run("-m", "trainer")  # what the CronJob would do
            version = poll(self.trained_on_known_only, 60, "a model trained on known.csv alone", 0.5)
        poll(lambda: self.stack.every_worker_serves(version), 60, f"every worker on {version}", 0.2)
        return version

    def trained_on_known_only(self) -> str | None:
        lineage = self.model().get("lineage") or {}
        objects = [o.split("#")[0] for o in lineage.get("data_objects", [])]
        return lineage.get("version") if objects == [layout.DATA + "known.csv"] else None

    def traffic(self, rounds: int) -> Traffic:
        seen = Traffic()
        for _ in range(rounds):
            for row, target in zip(IRIS.data, IRIS.target, strict=True):
                body = {"instances": [dict(zip(FEATURES, map(float, row), strict=True))]}
                resp = self.session.post(self.stack.url + "/predict", json=body, timeout=5)
                resp.raise_for_status()
                seen.ids.append(resp.headers["X-Request-Id"])
                seen.truth.append(CLASSES[target])
                seen.predicted.append(resp.json()["predictions"][0]["species"])
                seen.versions.add(resp.headers.get("X-Model-Version", ""))
        return seen

    def feedback(self, seen: Traffic) -> tuple[float, int]:
        """Posts the true labels; (monotonic time of the first request, items accepted)."""
        first, accepted = 0.0, 0
        items = [{"id": i, "label": t} for i, t in zip(seen.ids, seen.truth, strict=True)]
        for start in range(0, len(items), FEEDBACK_BATCH):
            if not first:
                first = time.monotonic()
            resp = self.session.post(
                self.stack.url + "/v1/feedback",
                json={"feedback": items[start : start + FEEDBACK_BATCH]},
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=10,
            )
            if resp.status_code not in (202, 422):
                raise RuntimeError(f"feedback answered {resp.status_code}: {resp.text[:500]}")
            accepted += int(resp.json()["accepted"])
        return first, accepted

    def learned_from_feedback(self) -> dict[str, Any] | None:
        lineage = self.model().get("lineage") or {}
        return lineage if int(lineage.get("feedback_rows") or 0) > 0 else None

    def first_ledger_entry(self) -> datetime | None:
        """When the joiner's first pass with feedback recorded it (its ledger entry; the CSV it then writes into
        incoming/ is gone once the ingest function took it)."""
        entries = [b for b in self.stack.bucket.list_blobs(prefix="feedback/ledger/") if b.name.endswith("Z.json")]
        return min((b.time_created for b in entries), default=None)

    def first_object(self, prefix: str) -> datetime | None:
        blobs = list(self.stack.bucket.list_blobs(prefix=prefix))
        return min((b.time_created for b in blobs), default=None)

    def live_accuracy(self, version: str, rows: int, timeout: float) -> dict[str, Any] | None:
        """The service's live accuracy of `version` (/v1/model/monitoring) once it counts at least `rows` labelled
        rows; None if it does not within `timeout`."""

        def enough() -> dict[str, Any] | None:
            resp = self.session.get(self.stack.url + "/v1/model/monitoring", timeout=5)
            document = (resp.json().get("accuracy") or {}) if resp.status_code == 200 else {}
            figures = (document.get("versions") or {}).get(version) or {}
            return figures if int(figures.get("total", 0)) >= rows else None

        try:
            return poll(enough, timeout, f"live accuracy of {version} over {rows} rows", 1.0)
        except TimeoutError:
            return None


def machine() -> str:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    return f"{os.cpu_count()} CPUs, {names[0] if names else platform.machine()}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cut", type=float, default=5.6, help="virginica below this petal length are unknown")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the 150 flowers per traffic phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds the loop may take to close")
    parser.add_argument("--fast", action="store_true", help="shorter rotation, shipping and join intervals")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="loop-bench-"))
    print(f"machine: {machine()}; load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    stack = LocalStack.on_free_ports(workdir, args.workers, "loop-bench", FAST if args.fast else {})
    try:
        token = (workdir / "stack" / "keys" / "feedback.token").read_text().strip()  # made by the stack, as make run
        loop = Loop(stack, stack.env, workdir / "stack" / "env", token)
        initial = loop.operator_world(args.cut)
        known = len(partial_rows(args.cut))
        print(
            f"serving {initial}, trained on {known} of 150 flowers (virginica with petal length < {args.cut} unknown)"
        )

        before = loop.traffic(args.rounds)
        started, accepted = loop.feedback(before)
        lineage = poll(loop.learned_from_feedback, args.timeout, "a model that learned from feedback", 0.5)
        version = lineage["version"]
        poll(lambda: stack.every_worker_serves(version), 60, f"every worker on {version}", 0.1)
        closed = time.monotonic() - started
        first_feedback = datetime.now(UTC).timestamp() - closed
        joined = loop.first_ledger_entry()
        ingested = loop.first_object(layout.DATA + "feedback-")
        published = datetime.fromisoformat(lineage["created_at"].replace("Z", "+00:00"))
        live_before = loop.live_accuracy(initial, accepted, 120)

        after = loop.traffic(args.rounds)
        loop.feedback(after)
        live_after = loop.live_accuracy(version, len(after.truth), args.timeout)
    finally:
        stack.stop()

    def since(moment: datetime | None) -> str:
        return f"{moment.timestamp() - first_feedback:.1f} s" if moment else "-"

    rows = [
        ("flowers the first model knew", f"{known} of 150"),
        ("feedback items accepted", f"{accepted} of {len(before.ids)}"),
        ("accuracy before (whole-range traffic, true species)", f"{before.accuracy:.3f}"),
        ("live accuracy before, as the service counts it", _live(live_before)),
        ("first feedback -> the joiner's pass that joined it (its ledger entry)", since(joined)),
        ("first feedback -> the CSV validated into data/", since(ingested)),
        ("first feedback -> model published", since(published)),
        ("first feedback -> that model serving on every worker", f"{closed:.1f} s"),
        ("feedback rows the new model learned from", str(lineage.get("feedback_rows"))),
        ("accuracy after (same traffic, true species)", f"{after.accuracy:.3f}"),
        ("live accuracy after, as the service counts it", _live(live_after)),
    ]
    print(f"pace: {'--fast ' + ' '.join(f'{k}={v}' for k, v in FAST.items()) if args.fast else 'product defaults'}")
    print("| measurement | value |\n|---|---:|")
    for what, value in rows:
        print(f"| {what} | {value} |")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if after.accuracy > before.accuracy else 1


def _live(live: dict[str, Any] | None) -> str:
    if not live:
        return "not reported"
    return f"{live['correct'] / live['total']:.3f} ({live['correct']}/{live['total']})"


if __name__ == "__main__":
    sys.exit(main())
