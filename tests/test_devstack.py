"""`make run`'s orchestrator: brings the whole stack up on free ports, serves a signed model, stops every child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import storage

from core import layout
from devstack.emulators import free_port, storage_client
from tests.listening import listening
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


def assert_gcs_refuses_browsers_and_dot_dot(port: int, bucket: storage.Bucket, stack_dir: Path) -> None:
    """What a web page could do to fake-gcs-server through the stack's published port: nothing."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/storage/v1/b", headers={"Origin": "http://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback http
    info.value.close()
    assert info.value.code == 403
    assert "Access-Control-Allow-Origin" not in info.value.headers
    with pytest.raises(gexc.Forbidden):
        bucket.blob("../../../escaped.txt").upload_from_string(b"x")
    assert not (stack_dir.parent / "escaped.txt").exists()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback http
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


HEADER = "sepal_length,sepal_width,petal_length,petal_width,species\n"


def learned_from(port: int, prefix: str) -> dict | None:
    """The serving model's lineage if it learned from an object whose name starts with `prefix`."""
    status, body = get(f"http://127.0.0.1:{port}/v1/model")
    lineage = json.loads(body).get("lineage") if status == 200 else None
    return lineage if lineage and any(o.startswith(prefix) for o in lineage["data_objects"]) else None


def test_local_stack_serves_a_signed_model_and_stops_every_child(tmp_path: Path) -> None:
    ports = {"PORT": free_port(), "STACK_GCS_PORT": free_port(), "STACK_PUBSUB_PORT": free_port()}
    ports["STACK_FUNCTION_PORT"], ports["STACK_GRPC_PORT"] = free_port(), free_port()
    ports |= {"STACK_PREDICTOR_PORT": free_port(), "STACK_ADMIN_PORT": free_port(), "PROXY_HEALTH_PORT": free_port()}
    ports["STACK_PREDICTOR_ADMIN_PORT"] = free_port()
    env = os.environ | {k: str(v) for k, v in ports.items()} | {"STACK_DIR": str(tmp_path / "stack")}
    env |= {"GCS_BUCKET": "stack-test", "WEB_CONCURRENCY": "1"}
    with (tmp_path / "run.log").open("wb") as log:
        stack = subprocess.Popen([sys.executable, "-m", "devstack.run"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        ready = f"http://127.0.0.1:{ports['PORT']}/v2/health/ready"
        wait_for(lambda: get(ready)[0] == 200, 90, f"the stack to be ready (log {tmp_path / 'run.log'})")
        _, body = get(f"http://127.0.0.1:{ports['PORT']}/v1/model")
        version = json.loads(body)["model_version"]
        assert get(f"http://127.0.0.1:{ports['PORT']}/metrics")[0] == 404  # admin and metrics: ADMIN_PORT only
        assert get(f"http://127.0.0.1:{ports['STACK_ADMIN_PORT']}/metrics")[0] == 200
        bucket = storage_client(f"127.0.0.1:{ports['STACK_GCS_PORT']}", "local-project").bucket("stack-test")
        blob = bucket.get_blob(layout.model_object(version))
        assert blob is not None
        assert blob.metadata["signature"]
        assert blob.metadata["sha256"]
        keys = tmp_path / "stack" / "keys"
        assert (keys / "signing-key.pem").stat().st_mode & 0o777 == 0o600
        assert [p.name for p in (keys / "public").iterdir()] == [blob.metadata["key_id"].replace(":", "-") + ".pem"]
        sockets = listening(stack.pid)
        assert {port for _, port in sockets} >= {ports["PORT"], ports["STACK_GCS_PORT"], ports["STACK_FUNCTION_PORT"]}
        assert {address for address, _ in sockets} <= {"127.0.0.1", "::1"}, sockets
        assert_gcs_refuses_browsers_and_dot_dot(ports["STACK_GCS_PORT"], bucket, tmp_path / "stack")
        started = children_of(stack.pid)
        assert len(started) >= 6  # emulators, trainer watcher and scheduler, predictor, function (+ bridge)
        rows = "".join(f"{5.0 + i / 100},3.4,1.5,0.2,setosa\n" for i in range(30))
        bucket.blob(layout.INCOMING + "dropped.csv").upload_from_string(HEADER + rows, "text/csv")
        lineage = wait_for(lambda: learned_from(ports["PORT"], "data/dropped"), 60, "a model trained on the drop")
        assert lineage["trigger"] == "event"
        assert lineage["data_to_publish_s"] < 30
    finally:
        stack.send_signal(signal.SIGINT)
        stack.wait(timeout=60)
    wait_for(lambda: all(not Path(f"/proc/{p}").exists() for p in started), 10, "every child to exit")
