"""The handover from a pod's model agent to its serving processes: verified artifacts on local disk.

HANDOVER_DIR is a shared emptyDir in a pod (a temporary directory under ``python -m predictor``):

- ``model-<version>-<generation>.pkl``: an artifact's bytes exactly as signed, written under a temporary name and
  renamed into place (never partial); the agent keeps the newest KEEP_ARTIFACTS.
- ``current.json``: the pointer, replaced atomically after its artifact is in place: object, generation, the signed
  metadata, the file, the trigger, the finalize time of the notification and the pod's pin (if any).
- ``history.json``: the agent's recent decisions; its rejections show in every serving process's /v1/model (they
  never see a rejected artifact themselves).
- ``workers/<pid>``: the version each serving process serves (pod-wide readiness, predictor.lifecycle.readiness);
  gunicorn's master clears the folder at start and drops an exited worker's file.
- ``agent.json``: the agent's heartbeat, rewritten every few seconds: when, its pid, the version it accepted, the
  newest version its last listing saw and its stream's health (predictor.lifecycle.podhealth reads it).
- ``live-accuracy.json``: the live accuracy document (core.liveaccuracy) as the agent last read and checked it from
  the bucket (predictor.agent.accuracy); ``drift.json``: the pod's drift figures after the agent's last evaluation
  (predictor.agent.drift). The serving processes answer both in ``GET /v1/model/monitoring``.
- ``aspired/<id>.json``: an admin request (pin, unpin, reload) a serving process hands to the agent, which decides
  once for the pod (predictor.agent.aspired) and answers in ``decided/<id>.json``; the pointer carries the outcome to
  every serving process.

A serving process stats the pointer (``Follower`` in predictor.lifecycle.follower) and offers a changed one to its own
registry, whose ``HandoverReader`` checks signature and hash again before the allowlisted unpickle: the agent is
trusted to choose, never to vouch for the bytes. Nor with the files themselves: every file here is read only if it is
a regular file (never through a symlink, never a FIFO or device a read would block on) within a size cap, an
artifact only once the signature of the metadata naming it verified, and outside the registry's lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from core import layout, liveaccuracy, unpickle
from core.errors import ArtifactRejected
from core.lineage import Lineage
from core.store import ArtifactRef, LoadedModel
from predictor.lifecycle.registry import SwapRecord

log = logging.getLogger(__name__)

POINTER = "current.json"
HISTORY = "history.json"
WORKERS = "workers"
AGENT = "agent.json"
LIVE_ACCURACY = "live-accuracy.json"
DRIFT = "drift.json"
ASPIRED = "aspired"
DECIDED = "decided"
KEEP_ARTIFACTS = 3
"""Artifact files kept: the pointer's and the two before it (a process may still be reading one)."""
POINTER_MAX_BYTES = 64 * 1024
"""The pointer holds an artifact's metadata (at most 8 KiB in GCS) and a few names."""
HISTORY_MAX_BYTES = 1024 * 1024
"""The history holds SWAP_HISTORY_SIZE records of a few hundred bytes."""
WORKER_STATE_MAX_BYTES = 256
"""A worker's state file holds one version name."""
REQUEST_MAX_BYTES = 4096
"""An admin request or decision holds an action, a version and a swap record."""
DRIFT_MAX_BYTES = 16 * 1024
"""The drift snapshot holds a few figures for five features."""
DECISION_KEEP_S = 300.0
"""Decisions nobody collected (the asking worker gave up or exited) are dropped after this."""


class NotRegularFile(OSError):
    """A handover path that is a symlink, FIFO, device or directory, or a file over its size cap."""


def read_regular(path: Path, max_bytes: int) -> bytes:
    """The content of `path` if it is a regular file of at most `max_bytes`; NotRegularFile otherwise.

    Opened with O_NOFOLLOW (a symlink fails) and O_NONBLOCK (opening a FIFO returns at once), then fstat decides on
    the opened file itself, so nothing can be swapped in between the check and the read.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:  # O_NOFOLLOW and the last component is a symlink
            raise NotRegularFile(f"{path.name} is a symlink") from e
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(f"{path.name} is not a regular file")
        if info.st_size > max_bytes:
            raise NotRegularFile(f"{path.name} has {info.st_size} bytes, over {max_bytes}")
        chunks, size = [], 0
        while size <= max_bytes and (chunk := os.read(fd, max_bytes + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise NotRegularFile(f"{path.name} grew over {max_bytes} bytes")
    return data


class Verifier(Protocol):
    """What the handover needs from the model store: verifying bytes, and the bucket for anything not handed over."""

    limits: unpickle.Limits

    def verify_metadata(self, ref: ArtifactRef) -> Lineage: ...

    def load_bytes(self, ref: ArtifactRef, data: bytes) -> LoadedModel: ...

    def ref(self, name: str, generation: int | None = None) -> ArtifactRef: ...

    def load(self, ref: ArtifactRef) -> LoadedModel: ...


@dataclass(frozen=True)
class Pointer:
    """The artifact the agent serves now, and why."""

    name: str
    generation: int
    metadata: dict[str, str]
    file: str
    trigger: str
    finalized_at: str | None
    pinned: str | None = None
    """The version the pod is pinned to (the agent decides; every serving process follows)."""

    @property
    def ref(self) -> ArtifactRef:
        return ArtifactRef(self.name, self.generation, layout.model_version(self.name) or "", dict(self.metadata))

    def finalized(self) -> datetime | None:
        return datetime.fromisoformat(self.finalized_at) if self.finalized_at else None

    @classmethod
    def read(cls, directory: Path) -> Pointer | None:
        """The current pointer, None if there is none yet (or it cannot be read)."""
        try:
            values: dict[str, Any] = json.loads(read_regular(directory / POINTER, POINTER_MAX_BYTES))
            return cls(**values)
        except (OSError, ValueError, TypeError):
            return None


def artifact_file(ref: ArtifactRef) -> str:
    return f"model-{ref.version}-{ref.generation}.pkl"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a part."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_history(directory: Path, records: list[SwapRecord]) -> None:
    write_atomic(directory / HISTORY, json.dumps([r.as_dict() for r in records]).encode())


def read_history(directory: Path) -> list[SwapRecord]:
    """The agent's recent decisions, newest first ([] if none or unreadable)."""
    try:
        return [SwapRecord(**values) for values in json.loads(read_regular(directory / HISTORY, HISTORY_MAX_BYTES))]
    except (OSError, ValueError, TypeError):
        return []


def worker_states(directory: Path) -> Path:
    """The folder of the serving processes' state files (``workers/<pid>``)."""
    return directory / WORKERS


def clear_worker_states(directory: Path) -> None:
    """No serving process serves anything yet (gunicorn's master, at start)."""
    states = worker_states(directory)
    states.mkdir(parents=True, exist_ok=True)
    for stale in states.iterdir():
        stale.unlink(missing_ok=True)


def write_worker_state(directory: Path, pid: int, version: str) -> None:
    write_atomic(worker_states(directory) / str(pid), version.encode())


def forget_worker(directory: Path, pid: int) -> None:
    """A process exited: it serves nothing any more (gunicorn's child_exit)."""
    (worker_states(directory) / str(pid)).unlink(missing_ok=True)


def worker_versions(directory: Path) -> dict[int, str]:
    """The version each live process that serves one wrote to the handover, by pid."""
    versions = {}
    for path in worker_states(directory).glob("[0-9]*"):
        if path.name.isdigit() and _alive(int(path.name)):
            version = _serves(path)
            if version:
                versions[int(path.name)] = version
    return versions


def _serves(path: Path) -> str:
    try:
        return read_regular(path, WORKER_STATE_MAX_BYTES).strip().decode(errors="replace")
    except OSError:  # forgotten meanwhile, or not a regular file (which no worker writes)
        return ""


def _alive(pid: int) -> bool:
    """True if `pid` exists (signal 0 only checks): a worker killed before child_exit ran must not count."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ask(directory: Path, request: dict[str, Any]) -> str:
    """Hand an admin request to the agent; returns its id (names sort by the time they were asked)."""
    request_id = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
    (directory / ASPIRED).mkdir(exist_ok=True)
    write_atomic(directory / ASPIRED / f"{request_id}.json", json.dumps(request).encode())
    return request_id


def withdraw(directory: Path, request_id: str) -> bool:
    """Take back a request the agent has not read yet (the asking process gave up); False if it already has."""
    try:
        (directory / ASPIRED / f"{request_id}.json").unlink()
    except FileNotFoundError:
        return False
    return True


def requests(directory: Path) -> list[tuple[str, dict[str, Any] | None]]:
    """The agent's side: pending requests, oldest first, each removed as it is read (None: unreadable)."""
    try:
        paths = sorted(p for p in (directory / ASPIRED).iterdir() if p.suffix == ".json")
    except FileNotFoundError:
        return []
    pending: list[tuple[str, dict[str, Any] | None]] = []
    for path in paths:
        try:
            values = json.loads(read_regular(path, REQUEST_MAX_BYTES))
        except (OSError, ValueError):
            values = None
        path.unlink(missing_ok=True)
        pending.append((path.stem, values if isinstance(values, dict) else None))
    return pending


def decide(directory: Path, request_id: str, decision: dict[str, Any]) -> None:
    """The agent's answer to one request; old uncollected answers are dropped."""
    folder = directory / DECIDED
    folder.mkdir(exist_ok=True)
    write_atomic(folder / f"{request_id}.json", json.dumps(decision).encode())
    cutoff = time.time() - DECISION_KEEP_S
    for old in folder.glob("*.json"):
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()


def decision(directory: Path, request_id: str) -> dict[str, Any] | None:
    """The agent's answer to request `request_id` (collected: removed once read), None while there is none."""
    path = directory / DECIDED / f"{request_id}.json"
    try:
        values = json.loads(read_regular(path, REQUEST_MAX_BYTES))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        values = None
    path.unlink(missing_ok=True)
    return values if isinstance(values, dict) else {}


def write_agent(directory: Path, state: dict[str, Any]) -> None:
    write_atomic(directory / AGENT, json.dumps(state, default=str).encode())


def read_agent(directory: Path) -> dict[str, Any] | None:
    """The agent's last heartbeat, None if it never wrote one (or it cannot be read)."""
    try:
        state = json.loads((directory / AGENT).read_bytes())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def write_live_accuracy(directory: Path, data: bytes) -> None:
    """The live accuracy document as the agent checked it (JSON bytes, core.liveaccuracy.dump)."""
    write_atomic(directory / LIVE_ACCURACY, data)


def read_live_accuracy(directory: Path) -> bytes | None:
    """The live accuracy document's bytes, None if the agent wrote none (or it is not a regular file in bounds)."""
    return _read_optional(directory / LIVE_ACCURACY, liveaccuracy.MAX_BYTES)


def write_drift(directory: Path, snapshot: dict[str, Any]) -> None:
    """The pod's drift figures after an evaluation (predictor.agent.drift.snapshot)."""
    write_atomic(directory / DRIFT, json.dumps(snapshot).encode())


def read_drift(directory: Path) -> bytes | None:
    """The drift snapshot's bytes, None if the agent wrote none (or it is not a regular file in bounds)."""
    return _read_optional(directory / DRIFT, DRIFT_MAX_BYTES)


def _read_optional(path: Path, max_bytes: int) -> bytes | None:
    try:
        return read_regular(path, max_bytes)
    except FileNotFoundError:
        return None
    except OSError as e:
        log.warning("handover file %s unreadable: %s", path.name, e)
        return None


class HandoverWriter:
    """The agent's side: stage verified bytes, then point the pod at them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        for folder in (WORKERS, ASPIRED, DECIDED):
            (directory / folder).mkdir(parents=True, exist_ok=True)
        self.pinned: Callable[[], str | None] = lambda: None
        """The pod's pin, written into every pointer (the agent's registry's, once it exists)."""

    def stage(self, ref: ArtifactRef, data: bytes) -> None:
        """Put an artifact's bytes in place (before the registry decides to swap to it)."""
        write_atomic(self.directory / artifact_file(ref), data)

    def point_to(self, loaded: LoadedModel, trigger: str, finalized_at: datetime | None) -> Pointer:
        """Point the pod's serving processes at a staged artifact (a registry swap hook), then drop old files."""
        ref = loaded.ref
        pointer = Pointer(
            ref.name, ref.generation, dict(ref.metadata), artifact_file(ref), trigger,
            finalized_at.isoformat() if finalized_at else None, self.pinned(),
        )  # fmt: skip
        write_atomic(self.directory / POINTER, json.dumps(asdict(pointer)).encode())
        self._prune(keep=pointer.file)
        return pointer

    def _prune(self, keep: str) -> None:
        files = sorted(self.directory.glob("model-*.pkl"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in [f for f in files if f.name != keep][KEEP_ARTIFACTS - 1 :]:
            old.unlink(missing_ok=True)


class HandoverReader:
    """A serving process's artifacts: the pod's handover, re-verified; the bucket only for what it does not hold
    (an artifact pruned meanwhile, or a handover file that is not a regular one)."""

    def __init__(self, directory: Path, verifier: Verifier) -> None:
        self.directory, self.verifier = directory, verifier
        self._prepared: tuple[str, int, bytes] | None = None
        """(object, generation, bytes) read by prepare(), outside the registry's lock."""

    def pointer(self) -> Pointer | None:
        return Pointer.read(self.directory)

    def list_versions(self) -> list[ArtifactRef]:
        pointer = self.pointer()
        return [pointer.ref] if pointer else []

    def ref(self, name: str, generation: int | None = None) -> ArtifactRef:
        pointer = self.pointer()
        if pointer and pointer.name == name and generation in (None, pointer.generation):
            return pointer.ref
        return self.verifier.ref(name, generation)

    def prepare(self, pointer: Pointer) -> None:
        """Read the pointer's artifact ahead of the offer (outside the registry's lock), if its signature verifies;
        anything wrong is left for load() to find and record."""
        ref = pointer.ref
        try:
            data = self._read(ref)
        except (ArtifactRejected, OSError):
            return
        self._prepared = (ref.name, ref.generation, data)

    def load(self, ref: ArtifactRef) -> LoadedModel:
        """Read the handed-over bytes and verify them (signature, hash, allowlisted unpickle, warm-up)."""
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared[:2] == (ref.name, ref.generation):
            return self.verifier.load_bytes(ref, prepared[2])
        try:
            data = self._read(ref)
        except FileNotFoundError:
            return self.verifier.load(ref)
        except NotRegularFile as e:
            log.warning("handover file of %s refused (%s): loading it from the bucket", ref.name, e)
            return self.verifier.load(ref)
        return self.verifier.load_bytes(ref, data)

    def _read(self, ref: ArtifactRef) -> bytes:
        """The artifact file's bytes, read only once the metadata naming it verified, from a regular file only."""
        self.verifier.verify_metadata(ref)
        return read_regular(self.directory / artifact_file(ref), self.verifier.limits.max_bytes)
