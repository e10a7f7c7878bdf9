"""Soak benchmark: the local stack as `make run` starts it, kept under load, drops and faults for SOAK_MINUTES.

    .venv/bin/python bench/soak_bench.py [--minutes 30]          # make bench-soak [SOAK_MINUTES=30]

`python -m devstack.run` runs as a child with the repository as its working directory and a relative STACK_DIR
(`.stack-soak`, emptied first), on the ports of this environment (PORT, STACK_*_PORT; `make run`'s defaults
otherwise), nginx in front when installed. For the whole run:
- 8 keep-alive HTTP connections POST one row to /predict through PORT, one request after another (`--pause` s
  between requests of a connection), and one V2 gRPC client calls ModelInfer on STACK_GRPC_PORT;
- a valid CSV is uploaded to incoming/ every `--drop-every` s through `devstack.drop` (what `make drop` runs), every
  fifth under a non-ASCII name; a CSV the ingest function must quarantine every `--bad-every` s;
- the faults of `--faults` at their share of the run: `pubsub` kills the Pub/Sub emulator's process group (the stack
  has to bring it back), `agent` SIGKILLs the model agent (the child of the predictor's gunicorn master), `worker`
  SIGKILLs one gunicorn worker. Each is found by PID in the process tree of the stack.
Per drop it prints the seconds until every worker serves a model that learned from it (drop_bench's check) and how
the workers loaded that model (`notification` or `reconcile`); failed requests by cause, inside and outside the
`--fault-window` after each fault; p50/p99 per `--window`; RSS, open files and threads of every process of the stack
after `--warmup` s and at the end. Then the targets, PASS/FAIL each; exit 1 on any FAIL. Every loop is bounded by the
run's end; the stack is stopped with SIGINT (Ctrl-C) and anything of its process tree still alive is killed by PID.
"""

# ruff: noqa: E402 - the repository root goes on sys.path before the project's packages are imported
from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import grpc
import requests
import soak_report as rep
from drop_bench import PREDICT, LocalStack, plausible_csv
from peers import servers
from soak_report import Drop, Event, Fault, Proc, Target

from core import layout
from core.settings import CommonSettings
from devstack.drop import drop as make_drop
from predictor.protos import grpc_predict_v2_pb2 as pb
from predictor.protos import grpc_predict_v2_pb2_grpc as pb_grpc
from predictor.settings import PredictorSettings

DEFAULT_STACK_DIR = ".stack-soak"
BAD_CSV = b"sepal,petal\nnot,numbers\n"
REQUEST_TIMEOUT = 10.0
DRAIN = 90.0
"""Seconds after the run's end to wait for drops still on their way (their delay is reported, never dropped)."""


class StackDied(Exception):
    """`python -m devstack.run` exited during the run."""


class Recorder:
    """Latencies of answered requests per (client, window) and every failure with its time and cause."""

    def __init__(self, started: float, window: float) -> None:
        self.started, self.window = started, window
        self.latencies: dict[tuple[str, int], array[float]] = {}
        self.failures: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()

    def ok(self, client: str, sent: float, latency: float) -> None:
        key = (client, int((sent - self.started) // self.window))
        with self._lock:
            self.latencies.setdefault(key, array("d")).append(latency)

    def fail(self, client: str, sent: float, cause: str) -> None:
        with self._lock:
            self.failures.append((sent - self.started, client, cause))


def http_client(host: str, port: int, rec: Recorder, stop: threading.Event, deadline: float, pause: float) -> None:
    """One keep-alive connection POSTing one row to /predict until `deadline`; reconnects after an error."""
    body = json.dumps(PREDICT).encode()
    conn: http.client.HTTPConnection | None = None
    while not stop.is_set() and time.monotonic() < deadline:
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
        sent = time.monotonic()
        try:
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                rec.ok("http", sent, time.monotonic() - sent)
            else:
                rec.fail("http", sent, f"HTTP {resp.status}")
            if resp.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            rec.fail("http", sent, f"connection: {type(e).__name__}")
            conn.close()
            conn = None
            stop.wait(0.05)  # no busy loop while nothing listens
        if pause:
            stop.wait(pause)
    if conn is not None:
        conn.close()


def grpc_client(address: str, rec: Recorder, stop: threading.Event, deadline: float, pause: float) -> None:
    """V2 ModelInfer with one FP64 row, one call after another on one channel, until `deadline`."""
    request = pb.ModelInferRequest(model_name=PredictorSettings.model_fields["model_name"].default)
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[1, 4])
    tensor.contents.fp64_contents.extend([5.1, 3.5, 1.4, 0.2])
    with grpc.insecure_channel(address) as channel:
        infer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer
        while not stop.is_set() and time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                infer(request, timeout=REQUEST_TIMEOUT)
                rec.ok("grpc", sent, time.monotonic() - sent)
            except grpc.RpcError as e:
                rec.fail("grpc", sent, f"gRPC {e.code().name}")  # type: ignore[attr-defined]
                stop.wait(0.05)
            if pause:
                stop.wait(pause)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cmdline(pid: int) -> list[str]:
    try:
        return [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0") if a]
    except OSError:
        return []


def snapshot(root: int) -> list[Proc]:
    """Every live process of the stack (`root` and below): RSS, open files, threads (from /proc)."""
    procs, labels = [], {}
    for pid in servers.descendants(root):
        status = dict(line.split(":", 1) for line in _read(f"/proc/{pid}/status").splitlines() if ":" in line)
        if "VmRSS" not in status:
            continue  # exited, or a zombie
        name = rep.label(cmdline(pid))
        parent = int(status.get("PPid", "0").strip() or 0)
        if name == "predictor" and labels.get(parent) == "predictor":
            name = "predictor worker"
        labels[pid] = name
        try:
            files = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            files = -1
        rss = int(status["VmRSS"].split()[0]) / 1024
        procs.append(Proc(pid, name, rss, files, int(status.get("Threads", "0").strip() or 0)))
    return procs


def child(run_pid: int, name: str) -> int | None:
    """The direct child of the stack's orchestrator labelled `name` (its PID), if one runs."""
    found = [pid for pid in servers._children(run_pid) if rep.label(cmdline(pid)) == name]
    return found[0] if found else None


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@dataclass
class Injected:
    fault: Fault
    pid: int | None
    note: str
    back: Callable[[], bool]
    """True once the stack has replaced what was killed."""
    back_after: float | None = None


class Soak:
    def __init__(self, args: Any, stack: LocalStack, started: float) -> None:
        self.args, self.stack, self.started = args, stack, started
        self.stop = threading.Event()
        self.rec = Recorder(started, args.window)
        self.drops: list[Drop] = []
        self.pending: list[Drop] = []
        self.bad: list[tuple[str, float, float | None]] = []  # name, at, seconds until quarantined
        self.faults: list[Injected] = []
        self.lock = threading.Lock()
        self.seen_pids: dict[int, list[str]] = {}
        self.csv_dir = ROOT / args.stack_dir / "soak-csvs"
        self.csv_dir.mkdir(parents=True, exist_ok=True)
        self.settings = CommonSettings(
            google_cloud_project=stack.project, gcs_bucket=stack.bucket_name, storage_emulator_host=stack.gcs_host
        )

    def now(self) -> float:
        return time.monotonic() - self.started

    # --- drops -------------------------------------------------------------------------------------------------
    def upload(self, name: str, data: bytes) -> bool:
        path = self.csv_dir / name
        path.write_bytes(data)
        try:
            make_drop(path, self.settings)
            return True
        except Exception as e:  # an upload that fails is a result, not a crash of the soak
            print(f"  upload of {name} failed: {type(e).__name__}: {str(e)[:200]}", flush=True)
            return False

    def drop(self, index: int) -> None:
        name = (
            f"irysy-Łódź-{index:03d}.csv" if index % 5 == 4 and not self.args.ascii_names else f"soak-{index:03d}.csv"
        )
        ok = self.upload(name, plausible_csv(seed=index))
        d = Drop(name if ok else f"{name} (upload failed)", self.now())
        with self.lock:
            self.drops.append(d)
            if ok:
                self.pending.append(d)

    def bad_drop(self, index: int) -> None:
        name = f"zły-pomiar-{index:02d}.csv" if not self.args.ascii_names else f"bad-{index:02d}.csv"
        if self.upload(name, BAD_CSV):
            with self.lock:
                self.bad.append((name, self.now(), None))

    def track(self) -> None:
        """Until stopped: every pending drop checked as drop_bench checks one; bad CSVs until quarantined."""
        while not self.stop.is_set():
            for d in list(self.pending):
                with contextlib.suppress(requests.RequestException, ValueError):
                    version = self.stack.learned_from(d.name)
                    if version and self.stack.every_worker_serves(version):
                        d.seconds = self.now() - d.at
                        d.version, d.triggers = version, self.triggers(version)
                        with self.lock:
                            self.pending.remove(d)
                        print(f"  {self.now():7.1f} s  {d.name} served after {d.seconds:.2f} s as {version} "
                              f"({'/'.join(sorted(d.triggers)) or '?'})", flush=True)  # fmt: skip
            for i, (name, at, seconds) in enumerate(list(self.bad)):
                if seconds is None:
                    with contextlib.suppress(Exception):
                        blobs = self.stack.bucket.list_blobs(prefix=layout.QUARANTINE)
                        if any(name in b.name for b in blobs):
                            self.bad[i] = (name, at, self.now() - at)
            self.stop.wait(0.05)

    def triggers(self, version: str) -> set[str]:
        """How the workers answering /v1/model came to serve `version` (their swap history)."""
        found: set[str] = set()
        for _ in range(4 * self.stack.workers):
            info = requests.get(self.stack.url + "/v1/model", headers={"Connection": "close"}, timeout=5).json()
            found |= {
                h["trigger"] for h in info.get("history", []) if h["version"] == version and h["outcome"] == "swapped"
            }
        return found

    # --- faults ------------------------------------------------------------------------------------------------
    def inject(self, fault: Fault) -> None:
        run_pid = self.stack.proc.pid
        master = child(run_pid, "predictor")
        pid: int | None = None
        back: Callable[[], bool] = lambda: False  # noqa: E731
        if fault.kind == "pubsub":
            pid = child(run_pid, "pubsub-emulator")
            if pid is not None:
                os.killpg(pid, signal.SIGKILL)
                port = self.args.pubsub_port
                back = lambda: child(run_pid, "pubsub-emulator") not in (None, pid) and listening(port)  # noqa: E731
        elif fault.kind == "agent" and master is not None:
            agents = servers.agent_pids(master)
            pid = agents[0] if agents else None
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                back = lambda: any(a != pid for a in servers.agent_pids(master))  # noqa: E731
        elif fault.kind == "worker" and master is not None:
            workers = servers.worker_pids(master)
            pid = workers[0] if workers else None
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                before = set(workers)
                back = lambda: len(set(servers.worker_pids(master)) - before) >= 1  # noqa: E731
        note = f"SIGKILL {fault.kind} PID {pid}" if pid else f"no {fault.kind} process found"
        print(f"  {self.now():7.1f} s  fault: {note}", flush=True)
        self.faults.append(Injected(fault, pid, note, back))

    def check_faults(self) -> None:
        for f in self.faults:
            if f.pid and f.back_after is None and self.now() - f.fault.at <= self.args.fault_window + DRAIN:
                with contextlib.suppress(Exception):
                    if f.back():
                        f.back_after = self.now() - f.fault.at
                        print(f"  {self.now():7.1f} s  {f.fault.kind} back after {f.back_after:.1f} s", flush=True)

    # --- the run -----------------------------------------------------------------------------------------------
    def tick(self) -> None:
        if self.stack.proc.poll() is not None:
            lines = self.stack.run_log.read_text(errors="replace").splitlines()
            why = next((line for line in reversed(lines) if " exited (" in line), "see its log")
            raise StackDied(f"the local stack exited ({self.stack.proc.returncode}) at {self.now():.0f} s: {why}")
        self.check_faults()
        for pid in servers.descendants(self.stack.proc.pid):
            self.seen_pids.setdefault(pid, cmdline(pid))

    def wait_until(self, at: float) -> None:
        while self.now() < at:
            self.tick()
            time.sleep(min(0.5, max(0.0, at - self.now())))

    def run(self, events: list[Event]) -> tuple[list[Proc], list[Proc], str]:
        args, deadline = self.args, self.started + args_seconds(self.args)
        host = "127.0.0.1"
        load = (self.rec, self.stop, deadline, args.pause)
        threads = [
            threading.Thread(target=http_client, args=(host, self.stack.port, *load), daemon=True, name=f"http-{i}")
            for i in range(args.connections)
        ]
        grpc_address = f"{host}:{args.grpc_port}"
        threads.append(threading.Thread(target=grpc_client, args=(grpc_address, *load), daemon=True, name="grpc"))
        tracker = threading.Thread(target=self.track, daemon=True, name="track")
        for t in [*threads, tracker]:
            t.start()
        start: list[Proc] = []
        end: list[Proc] = []
        aborted = ""
        drops = bad = 0
        try:
            self.wait_until(args.warmup)
            start = snapshot(self.stack.proc.pid)
            for event in events:
                self.wait_until(event.at)
                if event.kind == "drop":
                    self.drop(drops)
                    drops += 1
                elif event.kind == "bad":
                    self.bad_drop(bad)
                    bad += 1
                else:
                    self.inject(Fault(event.kind, event.at))
            self.wait_until(args_seconds(args))
            end = snapshot(self.stack.proc.pid)
            drain_until = self.now() + DRAIN
            while (self.pending or any(s is None for *_, s in self.bad)) and self.now() < drain_until:
                self.tick()
                time.sleep(0.5)
        except StackDied as e:
            aborted = str(e)
            print(f"  {aborted}", flush=True)
        finally:
            self.stop.set()
            for t in [*threads, tracker]:
                t.join(REQUEST_TIMEOUT + 5)
        return start, end, aborted


def args_seconds(args: Any) -> float:
    return float(args.minutes) * 60


def stop_everything(stack: LocalStack, seen: dict[int, list[str]]) -> None:
    """SIGINT to the orchestrator (it stops its children newest first), then SIGKILL for any process of its tree
    that is still alive with the same command line."""
    with contextlib.suppress(Exception):
        stack.stop()
    if stack.proc.poll() is None:
        stack.proc.kill()
        stack.proc.wait(10)
    for pid, line in seen.items():
        if line and cmdline(pid) == line:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def window_rows(rec: Recorder, windows: int, faults: list[Fault], window: float) -> tuple[list[list[str]], list[float]]:
    rows, p99s = [], []
    for w in range(windows):
        row = [f"{w * window / 60:g}-{(w + 1) * window / 60:g} min"]
        for client in ("http", "grpc"):
            values = rec.latencies.get((client, w), array("d"))
            p50, p99 = rep.percentile(values, 50) * 1000, rep.percentile(values, 99) * 1000
            failed = sum(1 for at, c, _ in rec.failures if c == client and w * window <= at < (w + 1) * window)
            row += [f"{len(values):,}", f"{p50:.1f}", f"{p99:.1f}", str(failed)]
            if client == "http":
                p99s.append(p99)
        hit = [f"{f.kind}@{f.at:.0f}s" for f in faults if w * window <= f.at < (w + 1) * window]
        rows.append([*row, ", ".join(hit) or "-"])
    return rows, p99s


def report(soak: Soak, start: list[Proc], end: list[Proc], aborted: str) -> bool:
    args, faults = soak.args, [f.fault for f in soak.faults]  # the faults injected (a run can end before them all)
    for d in soak.drops:
        d.in_fault = rep.fault_at(d.at, faults, rep.DROP_MAX_S, args.fault_window)
    info = _read("/proc/cpuinfo").splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.machine())
    print(f"\nmachine: {os.cpu_count()} CPUs, {cpu}, Python {platform.python_version()}; "
          f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    print(f"run: {args.minutes:g} min, {args.connections} HTTP connections + 1 gRPC client (pause {args.pause} s), "
          f"drop every {args.drop_every:g} s, bad CSV every {args.bad_every:g} s, faults {args.faults}, "
          f"fault window {args.fault_window:g} s, STACK_DIR {args.stack_dir}, nginx "
          f"{'on' if shutil.which('nginx') or Path('/usr/sbin/nginx').exists() else 'off'}")  # fmt: skip
    if aborted:
        print(f"ABORTED: {aborted}")

    print("\nDrops (seconds from the upload's return until every worker serves a model that learned from it):\n")
    rows = [[d.name, f"{d.at:.0f} s", f"{d.seconds:.2f}" if d.seconds is not None else "never",
             "/".join(sorted(d.triggers)) or "-", d.in_fault or "-"] for d in soak.drops]  # fmt: skip
    print(rep.markdown(["drop", "at", "-> every worker (s)", "loaded by", "fault window"], rows, right=(1, 2)))
    bad_rows = [[n, f"{at:.0f} s", f"{s:.2f} s" if s is not None else "never"] for n, at, s in soak.bad]
    print("\nBad CSVs:\n\n" + rep.markdown(["file", "at", "quarantined after"], bad_rows, right=(1, 2)))

    print("\nFaults:\n")
    rows = [[f.fault.kind, f"{f.fault.at:.0f} s", f.note, f"{f.back_after:.1f} s" if f.back_after is not None
             else "not replaced"] for f in soak.faults]  # fmt: skip
    print(rep.markdown(["fault", "at", "what", "replaced after"], rows))

    failures = [(at, f"{c} {cause}") for at, c, cause in soak.rec.failures]
    counts = rep.failure_counts(failures, faults, REQUEST_TIMEOUT, args.fault_window)
    print("\nFailed requests by cause:\n")
    rows = [[c, str(n[0]), str(n[1])] for c, n in counts.items()] or [["-", "0", "0"]]
    print(rep.markdown(["cause", "outside the kill windows", "inside"], rows, right=(1, 2)))
    outside = sum(n[0] for n in counts.values())

    windows = max(1, int(-(-args_seconds(args) // args.window)))
    rows, p99s = window_rows(soak.rec, windows, faults, args.window)
    print("\nLatency per window (ms, answered requests only):\n")
    header = ["window", "HTTP requests", "p50", "p99", "failed", "gRPC requests", "p50", "p99", "failed", "faults"]
    print(rep.markdown(header, rows, right=tuple(range(1, 9))))

    proc_rows, proc_targets = rep.process_rows(start, end)
    print(f"\nProcesses of the stack after {args.warmup:g} s and at the end (RSS MB, open files, threads):\n")
    print(rep.markdown(["process", "PID", "RSS start", "RSS end", "files start", "files end", "threads start",
                        "threads end"], proc_rows, right=tuple(range(1, 8))))  # fmt: skip

    targets = rep.drop_targets(soak.drops)
    quarantined = sum(1 for *_, s in soak.bad if s is not None)
    targets += [
        Target("bad CSVs quarantined", f"{quarantined}/{len(soak.bad)}", "all", quarantined == len(soak.bad)),
        Target("failed requests outside the kill windows", str(outside), "0", outside == 0),
        Target("HTTP p99 flat across windows", " / ".join(f"{p:.1f}" for p in p99s) + " ms",
               f"max <= {rep.P99_SPREAD:g}x median, last <= {rep.P99_SPREAD:g}x first", rep.p99_flat(p99s)),
        *proc_targets,
        Target("the stack ran to the end", aborted or "yes", "yes", not aborted),
    ]  # fmt: skip
    print("\nTargets:\n")
    print(rep.markdown(["target", "measured", "bound", "result"],
                       [[t.what, t.measured, t.target, "PASS" if t.ok else "FAIL"] for t in targets]))  # fmt: skip
    return all(t.ok for t in targets)


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=float(env.get("SOAK_MINUTES", 30)), help="SOAK_MINUTES")
    parser.add_argument(
        "--stack-dir",
        default=DEFAULT_STACK_DIR,
        help="STACK_DIR (relative: to the repository, as for make run); emptied",
    )
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--pause", type=float, default=0.01, help="seconds between requests of one client")
    parser.add_argument("--drop-every", type=float, default=60.0)
    parser.add_argument("--bad-every", type=float, default=300.0, help="0: no bad CSVs")
    parser.add_argument("--faults", default=rep.DEFAULT_FAULTS, help="kind:share,...: pubsub, agent, worker; 'none'")
    parser.add_argument(
        "--fault-window", type=float, default=60.0, help="seconds after a fault that count as the fault's"
    )
    parser.add_argument("--window", type=float, default=300.0, help="seconds per latency window")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds of load before the first process snapshot")
    parser.add_argument("--ascii-names", action="store_true", help="no non-ASCII file names among the drops")
    args = parser.parse_args(argv)
    args.pubsub_port = int(env.get("STACK_PUBSUB_PORT", 6000))
    args.grpc_port = int(env.get("STACK_GRPC_PORT", 8082))
    duration = args_seconds(args)
    faults = rep.parse_faults(args.faults, duration)
    events = rep.schedule(duration, args.drop_every, args.bad_every, faults)

    stack_dir = ROOT / args.stack_dir
    if stack_dir.resolve() == (ROOT / ".stack").resolve():
        parser.error("the soak empties its STACK_DIR first: give it its own, not make run's .stack")
    shutil.rmtree(stack_dir, ignore_errors=True)
    stack_dir.mkdir(parents=True)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    workers = int(env.get("WEB_CONCURRENCY", PredictorSettings.model_fields["web_concurrency"].default))
    print(f"starting the local stack (python -m devstack.run, STACK_DIR={args.stack_dir}) ...", flush=True)
    stack = LocalStack({"STACK_DIR": args.stack_dir}, stack_dir / "run.log", workers, 300)
    soak = Soak(args, stack, time.monotonic())
    ok = False
    try:
        print(f"stack ready; soaking for {args.minutes:g} min ({len(events)} events)", flush=True)
        start, end, aborted = soak.run(events)
        ok = report(soak, start, end, aborted)
    except KeyboardInterrupt:
        print("interrupted: stopping the stack", flush=True)
    finally:
        soak.stop.set()
        stop_everything(stack, soak.seen_pids)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
