"""`make run`'s orchestrator: brings the whole stack up on free ports, serves a signed model, stops every child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from core import layout
from devstack.emulators import free_port, storage_client
from tests.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ROOT = Path(__file__).resolve().parent.parent


def children_of(pid: int) -> set[int]:
    """PIDs of every process whose process group was started by the stack (their parent is `pid`)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback http
            return response.status, response.read()
    except OSError:
        return 0, b""


def test_local_stack_serves_a_signed_model_and_stops_every_child(tmp_path: Path) -> None:
    ports = {"PORT": free_port(), "STACK_GCS_PORT": free_port(), "STACK_PUBSUB_PORT": free_port()}
    ports["STACK_FUNCTION_PORT"] = free_port()
    env = os.environ | {k: str(v) for k, v in ports.items()} | {"STACK_DIR": str(tmp_path / "stack")}
    env |= {"GCS_BUCKET": "stack-test", "WEB_CONCURRENCY": "1"}
    with (tmp_path / "run.log").open("wb") as log:
        stack = subprocess.Popen([sys.executable, "-m", "devstack.run"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        ready = f"http://127.0.0.1:{ports['PORT']}/v2/health/ready"
        wait_for(lambda: get(ready)[0] == 200, 90, f"the stack to be ready (log {tmp_path / 'run.log'})")
        _, body = get(f"http://127.0.0.1:{ports['PORT']}/v1/model")
        version = json.loads(body)["model_version"]
        bucket = storage_client(f"127.0.0.1:{ports['STACK_GCS_PORT']}", "local-project").bucket("stack-test")
        blob = bucket.get_blob(layout.model_object(version))
        assert blob is not None
        assert blob.metadata["signature"]
        assert blob.metadata["sha256"]
        assert (tmp_path / "stack" / "signing.key").stat().st_mode & 0o777 == 0o600
        started = children_of(stack.pid)
        assert len(started) >= 5  # emulators, trainer scheduler, predictor, function (+ bridge with Pub/Sub)
    finally:
        stack.send_signal(signal.SIGINT)
        stack.wait(timeout=60)
    wait_for(lambda: all(not Path(f"/proc/{p}").exists() for p in started), 10, "every child to exit")
