"""Run an image as its Kubernetes manifest runs it: podman flags read from k8s/base (user, read-only root, mounts).

The flags follow the manifests: a new emptyDir or securityContext setting there changes the container here.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.emulators import free_port
from tests.deploy.conftest import base_resources
from tests.images.build import Storage

# This machine mounts cgroup v1 and v2 side by side, which crun refuses: runc with cgroupfs works.
RUNTIME = ["--runtime", "runc", "--cgroup-manager", "cgroupfs"]
# podman's default limits (nofile 1048576) are above what a process may set here.
LIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


@dataclass(frozen=True)
class Workload:
    """One container of a Deployment or CronJob in k8s/base, with its pod spec and ConfigMaps."""

    pod: dict[str, Any]
    container: dict[str, Any]
    config_maps: dict[str, dict[str, str]]

    def env(self) -> dict[str, str]:
        """What the container's environment would hold in the cluster, minus values from Secrets and the API."""
        env: dict[str, str] = {}
        for source in self.container.get("envFrom", []):
            env.update(self.config_maps[source["configMapRef"]["name"]])
        env.update({e["name"]: str(e["value"]) for e in self.container.get("env", []) if "value" in e})
        return env

    def command(self) -> tuple[str, ...]:
        """What the manifest runs instead of the image's default command (empty: the default)."""
        return tuple(self.container.get("command", []) + self.container.get("args", []))

    def user(self) -> str:
        context = {**self.pod.get("securityContext", {}), **self.container.get("securityContext", {})}
        return f"{context['runAsUser']}:{context['runAsGroup']}"

    def security_flags(self) -> list[str]:
        context = self.container.get("securityContext", {})
        flags = ["--user", self.user()]
        if context.get("readOnlyRootFilesystem"):
            flags += ["--read-only", "--read-only-tmpfs=false"]  # no writable /run, /tmp, /var/tmp of podman's own
        if context.get("allowPrivilegeEscalation") is False:
            flags += ["--security-opt", "no-new-privileges"]
        flags += [f"--cap-drop={cap.lower()}" for cap in context.get("capabilities", {}).get("drop", [])]
        return flags

    def mount_flags(self, secrets: dict[str, dict[str, str]], volume_root: Path) -> list[str]:
        """emptyDirs as fresh host directories, Secret volumes as read-only files written from ``secrets``.

        Bind mounts rather than podman's tmpfs, which runc gives the image directory's mode but root's ownership.
        """
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        gid = int(self.pod.get("securityContext", {}).get("fsGroup", self.user().split(":")[1]))
        flags = []
        for mount in self.container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "emptyDir" in volume:
                source = empty_dir(volume_root / volume["name"], gid)
                flags += ["--volume", f"{source}:{mount['mountPath']}:rw"]
            elif "secret" in volume:
                source = write_secret(volume, secrets[volume["secret"]["secretName"]], volume_root, gid)
                flags += ["--volume", f"{source}:{mount['mountPath']}:ro"]
            else:
                raise AssertionError(f"no local equivalent for volume {volume}")
        return flags

    def writable_paths(self) -> list[str]:
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        mounts = self.container.get("volumeMounts", [])
        return [m["mountPath"] for m in mounts if "emptyDir" in volumes[m["name"]] and not m.get("readOnly")]


def workload(kind: str, name: str, container: str | None = None) -> Workload:
    """A container (by name; the first by default) of a workload in k8s/base."""
    docs = base_resources()
    config_maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    (resource,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    template = resource["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else resource["spec"]
    pod = template["template"]["spec"]
    chosen = next(c for c in pod["containers"] if container in (None, c["name"]))
    return Workload(pod, chosen, config_maps)


def sidecars(work: Workload) -> list[Workload]:
    """The pod's native sidecars (init containers that keep running) from the same image."""
    inits = work.pod.get("initContainers", [])
    same = [c for c in inits if c.get("restartPolicy") == "Always" and c["image"] == work.container["image"]]
    return [Workload(work.pod, c, work.config_maps) for c in same]


def free_ports(workloads: list[Workload]) -> dict[str, str]:
    """A free host port for every port number the containers' environments name (``*_PORT``, ``PORT``)."""
    numbers = {v for w in workloads for k, v in w.env().items() if k.endswith("PORT") and v.isdigit()}
    return {number: str(free_port()) for number in sorted(numbers)}


def with_ports(env: dict[str, str], ports: dict[str, str]) -> dict[str, str]:
    return {k: ports.get(v, v) if k.endswith("PORT") else v for k, v in env.items()}


def empty_dir(path: Path, gid: int) -> Path:
    """An emptyDir as the kubelet makes it: empty, world-writable, in the pod's fsGroup."""
    path.mkdir(parents=True, exist_ok=True)  # shared by the pod's containers
    os.chown(path, 0, gid)
    path.chmod(0o2777)
    return path


def write_secret(volume: dict[str, Any], data: dict[str, str], root: Path, gid: int) -> Path:
    """The Secret's items (or every key) as files, owned by the pod's fsGroup with the volume's defaultMode."""
    directory = root / volume["name"]
    directory.mkdir(parents=True, exist_ok=True)
    items = volume["secret"].get("items") or [{"key": key, "path": key} for key in data]
    for item in items:
        path = directory / item["path"]
        path.write_text(data[item["key"]])
        os.chown(path, 0, gid)
        path.chmod(volume["secret"].get("defaultMode", 0o644))
    return directory


def run_command(
    storage: Storage, image: str, name: str, flags: list[str], env: dict[str, str], command: tuple[str, ...] = ()
) -> list[str]:
    """``podman run`` of ``image``'s default command (or ``command``) on the host's network (the emulators)."""
    return ["podman", *storage.flags(), *RUNTIME, *run_args(name, flags, env), image, *command]


def run_args(name: str, flags: list[str], env: dict[str, str]) -> list[str]:
    env_flags = [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
    return ["run", "--rm", "--name", name, "--network", "host", *LIMITS, *flags, *env_flags]


def podman(storage: Storage, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = ["podman", *storage.flags(), *RUNTIME, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
