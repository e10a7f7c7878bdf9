"""`make run`'s orchestrator: brings the whole stack up on free ports, serves a signed model, stops every child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import storage

from core import layout
from devstack import proxy
from devstack.emulators import free_port, storage_client
from devstack.run import port_variables
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


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback http
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - loopback http
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


def test_local_stack_without_nginx_or_prometheus_serves_a_signed_model_and_stops_every_child(tmp_path: Path) -> None:
    """As on a machine without the optional tools (STACK_NGINX / STACK_PROMETHEUS false): the predictor itself takes
    PORT and the admin port, and the stack says so. (test_make_run_as_a_user_runs_it runs nginx in front.)"""
    ports = stack_ports()
    env = os.environ | {k: str(v) for k, v in ports.items()} | {"STACK_DIR": str(tmp_path / "stack")}
    env |= {"GCS_BUCKET": "stack-test", "WEB_CONCURRENCY": "1", "STACK_NGINX": "false", "STACK_PROMETHEUS": "false"}
    with (tmp_path / "run.log").open("wb") as log:
        stack = subprocess.Popen([sys.executable, "-m", "devstack.run"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        ready = f"http://127.0.0.1:{ports['PORT']}/v2/health/ready"
        wait_for(lambda: get(ready)[0] == 200, 240, f"the stack to be ready (log {tmp_path / 'run.log'})")
        _, body = get(f"http://127.0.0.1:{ports['PORT']}/v1/model")
        version = json.loads(body)["model_version"]
        evaluated_on = json.loads(body)["lineage"]["evaluation"]["set"]  # the set the stack seeded before training
        assert get(f"http://127.0.0.1:{ports['PORT']}/metrics")[0] == 404  # admin and metrics: ADMIN_PORT only
        assert get(f"http://127.0.0.1:{ports['STACK_ADMIN_PORT']}/metrics")[0] == 200
        rebound = {"Host": "evil.example"}  # what a DNS-rebinding page sends: refused on every port, through nginx too
        for port, path in ((ports["PORT"], "/v1/model"), (ports["STACK_ADMIN_PORT"], "/metrics")):
            status, body = get(f"http://127.0.0.1:{port}{path}", rebound)
            assert (status, json.loads(body)["error"]["code"]) == (400, "host_not_allowed")
        assert get(f"http://127.0.0.1:{ports['STACK_FUNCTION_PORT']}/", rebound)[0] == 400
        assert get(f"http://localhost:{ports['PORT']}/v1/model")[0] == 200
        bucket = storage_client(f"127.0.0.1:{ports['STACK_GCS_PORT']}", "local-project").bucket("stack-test")
        blob = bucket.get_blob(layout.model_object(version))
        assert blob is not None
        assert blob.metadata["signature"]
        assert blob.metadata["sha256"]
        assert [b.name for b in bucket.list_blobs(prefix=layout.EVAL)] == [layout.eval_object(evaluated_on)]
        keys = tmp_path / "stack" / "keys"
        assert (keys / "signing-key.pem").stat().st_mode & 0o777 == 0o600
        assert (keys / "split-salt").stat().st_mode & 0o777 == 0o600
        assert [p.name for p in (keys / "public").iterdir()] == [blob.metadata["key_id"].replace(":", "-") + ".pem"]
        sockets = listening(stack.pid)
        assert {port for _, port in sockets} >= {ports["PORT"], ports["STACK_GCS_PORT"], ports["STACK_FUNCTION_PORT"]}
        assert {address for address, _ in sockets} <= {"127.0.0.1", "::1"}, sockets
        assert {port for _, port in sockets}.isdisjoint({ports["STACK_PREDICTOR_PORT"], ports["STACK_PROMETHEUS_PORT"]})
        said = (tmp_path / "run.log").read_text()
        assert "STACK_NGINX=false: the predictor answers slow clients itself" in said
        assert "STACK_PROMETHEUS=false: no local Prometheus" in said
        assert "Prometheus " not in said.split("Local stack is up")[1]
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


IDLE_S = 80.0
"""Past the Pub/Sub emulator's keepalive window: a client pinging too often lost its stream after about 60 s."""


def stack_ports() -> dict[str, int]:
    """A free port for every port the stack listens on."""
    return {name: free_port() for name in port_variables()}


def start_stack(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "devstack.run"], cwd=ROOT, env=env, stdout=out, stderr=out)


def stop_stack(stack: subprocess.Popen[bytes]) -> set[int]:
    """SIGTERM the stack as Ctrl-C would; the PIDs of the children it had."""
    started = children_of(stack.pid)
    stack.send_signal(signal.SIGTERM)
    stack.wait(timeout=90)
    wait_for(lambda: all(not Path(f"/proc/{p}").exists() for p in started), 10, "every child to exit")
    return started


def child_running(stack: subprocess.Popen[bytes], module: str) -> int | None:
    for pid in children_of(stack.pid):
        try:
            if module in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0"):
                return pid
        except OSError:
            continue
    return None


def drop_and_wait(bucket: storage.Bucket, port: int, name: str, timeout: float) -> tuple[dict, float]:
    """Upload `name` to incoming/ and wait until /v1/model serves a model that learned from data/`name`."""
    rows = "".join(f"{6.0 + i / 100},2.9,4.5,1.4,versicolor\n" for i in range(30))
    started = time.monotonic()
    bucket.blob(layout.INCOMING + name).upload_from_string(HEADER + rows, "text/csv")

    def serving() -> dict | None:
        status, body = get(f"http://127.0.0.1:{port}/v1/model")
        model = json.loads(body) if status == 200 else {}
        objects = [o.split("#")[0] for o in (model.get("lineage") or {}).get("data_objects", [])]
        return model if layout.DATA + name in objects else None

    model = wait_for(serving, timeout, f"a model trained on {name} served")
    return model, time.monotonic() - started


@pytest.mark.timeout(600)
@pytest.mark.skipif(proxy.nginx_binary() is None, reason="nginx is not installed (apt-get install nginx)")
def test_make_run_as_a_user_runs_it(tmp_path: Path) -> None:
    """A relative STACK_DIR with nginx in front, idle past the emulator's keepalive window, a non-ASCII file name, a
    child killed with SIGKILL, then a stop and a start again at once on the same ports."""
    ports = stack_ports()
    stack_dir = f"test-output/stack-{uuid.uuid4().hex[:8]}"  # relative, as `.stack` is for `make run`
    env = {k: v for k, v in os.environ.items() if k not in {"STACK_DIR", "PUBSUB_EMULATOR_HOST"}}
    env |= {k: str(v) for k, v in ports.items()} | {"STACK_DIR": stack_dir, "GCS_BUCKET": "user-stack"}
    log, port = tmp_path / "run.log", ports["PORT"]
    ready = f"http://127.0.0.1:{port}/v2/health/ready"
    stack = start_stack(env, log)
    try:
        wait_for(lambda: get(ready)[0] == 200, 240, f"the stack to be ready (log {log})")
        nginx_conf = (ROOT / stack_dir / "proxy" / "nginx.conf").read_text()
        assert f"client_body_temp_path {ROOT / stack_dir / 'proxy'}/nginx-body;" in nginx_conf
        assert get(f"http://127.0.0.1:{port}/")[0] == 200
        bucket = storage_client(f"127.0.0.1:{ports['STACK_GCS_PORT']}", "local-project").bucket("user-stack")

        time.sleep(IDLE_S)  # nothing happens: the subscriptions' streams sit idle
        model, took = drop_and_wait(bucket, port, "irysy-Łódź.csv", 30)
        assert model["loaded_trigger"] == "notification", model["history"][:2]
        assert took < 10
        assert bucket.get_blob(layout.DATA + "irysy-Łódź.csv") is not None
        assert bucket.get_blob(layout.INCOMING + "irysy-Łódź.csv") is None

        bridge = child_running(stack, "devstack.bridge")
        assert bridge is not None
        os.kill(bridge, signal.SIGKILL)
        model, took = drop_and_wait(bucket, port, "while-the-bridge-was-down.csv", 60)
        assert child_running(stack, "devstack.bridge") not in {None, bridge}
        assert stack.poll() is None
        assert get(ready)[0] == 200
    finally:
        stop_stack(stack)

    again = start_stack(env, log)  # the same ports, at once
    try:
        wait_for(lambda: get(ready)[0] == 200, 240, f"the stack to be ready again (log {log})")
        assert "in use" not in log.read_text()
    finally:
        stop_stack(again)
