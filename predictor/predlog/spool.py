"""The spool: each serving process's bounded queue, its writer thread, and the folder of files it leaves for the
shipper.

``put`` appends to an in-memory deque and returns: no lock, no I/O, no serialisation on the request path (a full
queue drops the record and counts it). One writer thread per process wakes every POLL_S, serialises what is queued
and appends it with one ``write`` to its open spool file, so a process that dies loses at most its queue, never
what reached the file. Files and their names (one folder, shared by the pod):

- ``.<stem>.new``: a file being created; it becomes ``<stem>.part`` once its writer holds the lock on it;
- ``<stem>.part``: open, appended to by one writer, which holds an exclusive flock(2) on it while it lives (the
  kernel releases it when the process dies, in any container of the pod);
- ``<stem>.jsonl``: ready, complete: renamed from ``.part`` (atomic, same folder) once it reached
  PREDICTION_LOG_ROTATE_BYTES or PREDICTION_LOG_ROTATE_SECONDS, before the UTC date changes, and on close;
- ``<stem>.shipping``: claimed by the shipper (predictor.predlog.shipper) while it uploads; deleted once uploaded;
- ``<stem>.dropping``: claimed to be dropped by enforce_bound.

A stem (core.shipped.stem) is ``<UTC time of its first record, YYYYmmddTHHMMSS>-<writer token>-<sequence>``: unique
(the token is random per process), sortable by age, and the object name derives from it, so a retried upload names
the same object. A ``.part`` whose lock can be taken belongs to a dead writer: promote_orphans cuts a partial last
line and makes it ready.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from core import shipped
from predictor.predlog.metrics import PredictionLogCounters
from predictor.predlog.record import Record, to_line

log = logging.getLogger(__name__)

PART, READY, SHIPPING, DROPPING, NEW = ".part", ".jsonl", ".shipping", ".dropping", ".new"
POLL_S = 0.05
"""Seconds the writer thread sleeps between drains of its queue."""
MEASURE_S = 1.0
"""Seconds between a refusing spool's measurements of what waits in its folder (`refuse_over`)."""


def ours(path: Path) -> bool:
    """Whether `path` is a spool file (core.shipped.STEM); anything else in the folder is left alone."""
    return shipped.STEM.fullmatch(stem_of(path)) is not None


def stem_of(path: Path) -> str:
    return path.name.removeprefix(".").split(".", 1)[0]


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


@dataclass
class _OpenFile:
    fd: int
    path: Path
    day: str
    opened: float
    """time.monotonic() when its first record was written."""
    size: int = 0


class Spool:
    """One process's queue and writer thread over `directory`."""

    def __init__(
        self,
        directory: Path,
        counters: PredictionLogCounters,
        queue_size: int = 10_000,
        rotate_bytes: int = 4 * 1024 * 1024,
        rotate_seconds: float = 60.0,
        max_spool_bytes: int | None = None,
        autostart: bool = True,
        refuse_over: int | None = None,
    ) -> None:
        self.directory, self.counters, self.queue_size = directory, counters, queue_size
        self.rotate_bytes, self.rotate_seconds, self.max_spool_bytes = rotate_bytes, rotate_seconds, max_spool_bytes
        self.autostart = autostart
        self.refuse_over = refuse_over
        """With a bound here (and no `max_spool_bytes`, which drops the oldest file), `offer` refuses new records while
        the folder's ready files hold more than this many bytes (measured by the writer thread every MEASURE_S)."""
        self.full = False
        """The last measurement found the folder over `refuse_over`."""
        self._measured = 0.0
        self.queue: deque[Record] = deque()
        self.thread: threading.Thread | None = None
        self.closed = False
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._file: _OpenFile | None = None
        self._token = uuid.uuid4().hex[:12]
        self._sequence = 0
        self._open_failures = 0
        os.register_at_fork(after_in_child=functools.partial(_forked, weakref.ref(self)))

    def put(self, record: Record) -> bool:
        """Queue `record` for the writer; never blocks. False (and counted as dropped) when the queue is full."""
        if self.offer(record):
            return True
        self.counters.dropped.inc()
        return False

    def offer(self, record: Record) -> bool:
        """Queue `record` for the writer; never blocks, counts nothing. False when the queue is full, the spool over
        `refuse_over`, closed, or its writer cannot start (the caller says so or counts it)."""
        if self.thread is None and self.autostart:
            try:
                self.start()
            except Exception:  # no thread to be had: the request goes on
                log.exception("prediction log writer could not start")
                return False
        queue = self.queue
        if len(queue) >= self.queue_size or self.closed or self.full:
            return False
        queue.append(record)
        return True

    def measure(self) -> int:
        """Bytes of the folder's waiting files (ready and being shipped); sets `full` against `refuse_over`."""
        total = 0
        for path in ready_files(self.directory):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        self.full = self.refuse_over is not None and total > self.refuse_over
        self._measured = time.monotonic()
        return total

    def start(self) -> None:
        """Start the writer thread (put does on its first call unless autostart is off)."""
        with self._start_lock:
            if self.thread is not None or self.closed:
                return
            thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
            thread.start()
            self.thread = thread

    def close(self, timeout: float = 10.0) -> bool:
        """Stop accepting records, write everything queued and make the open file ready; True if the writer finished
        within `timeout` (then nothing accepted is lost)."""
        self.closed = True
        self._stop.set()
        thread = self.thread
        if thread is None:  # never started: write what is queued here
            self.directory.mkdir(parents=True, exist_ok=True)
            self._drain()
            self._rotate()
            return True
        thread.join(timeout)
        if thread.is_alive():
            return False
        if self.queue:  # put just as `closed` was set, after the writer's last drain
            self._drain()
            self._rotate()
        return True

    def _forked(self) -> None:
        """In a child forked from this process: the parent's queue, thread and file are the parent's."""
        self.queue = deque()
        self.thread = None
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._token = uuid.uuid4().hex[:12]
        self._sequence = 0
        if self._file is not None:
            with contextlib.suppress(OSError):
                os.close(self._file.fd)  # the parent's lock stays with the parent's descriptor
            self._file = None

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            try:
                self._drain()
                if self._file is not None and time.monotonic() - self._file.opened >= self.rotate_seconds:
                    self._rotate()
                if self.refuse_over is not None and time.monotonic() - self._measured >= MEASURE_S:
                    self.measure()
            except Exception:  # the next round tries again; what could not be written was counted as dropped
                log.exception("prediction log writer failed")
            if stopping:
                break
            self._stop.wait(POLL_S)
        self._rotate()

    def _drain(self) -> None:
        queue = self.queue
        lines: list[bytes] = []
        pending = 0
        while queue:
            record = queue.popleft()
            try:
                line = to_line(record)
            except (TypeError, ValueError):
                log.exception("prediction log record not serialisable", extra={"request_id": record.id})
                self.counters.dropped.inc()
                continue
            record_day = shipped.day(record.time)
            current = self._file
            if current is not None and (current.day != record_day or current.size + pending >= self.rotate_bytes):
                self._write(lines)
                lines, pending = [], 0
                self._rotate()
                current = None
            if current is None:
                try:
                    self._open(record.time, record_day)
                except OSError:  # the folder unwritable or full: this record is lost, the next one tries again
                    if not self._open_failures:  # once per streak, not once per request
                        log.exception(
                            "prediction log spool file could not be created", extra={"folder": str(self.directory)}
                        )
                    self._open_failures += 1
                    self.counters.dropped.inc()
                    continue
                self._open_failures = 0
            lines.append(line)
            pending += len(line)
        self._write(lines)

    def _open(self, moment: float, record_day: str) -> None:
        self._sequence += 1
        stem = shipped.stem(moment, self._token, self._sequence)
        creating = self.directory / f".{stem}{NEW}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(creating, flags, 0o644)
        except FileNotFoundError:  # the folder is not there yet (or was removed)
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(creating, flags, 0o644)
        path = self.directory / f"{stem}{PART}"
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(creating, path)
        except OSError:
            os.close(fd)
            creating.unlink(missing_ok=True)
            raise
        self._file = _OpenFile(fd, path, record_day, time.monotonic())

    def _write(self, lines: list[bytes]) -> None:
        if not lines:
            return
        current = self._file
        assert current is not None
        data = b"".join(lines)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(current.fd, view) :]
        except OSError:  # disk full, say: cut what reached the file of this batch, keep the file's complete lines
            log.exception("prediction log spool write failed", extra={"file": current.path.name})
            self.counters.dropped.inc(len(lines))
            with contextlib.suppress(OSError):
                os.ftruncate(current.fd, current.size)
            self._rotate()
            return
        current.size += len(data)

    def _rotate(self) -> None:
        """Make the open file ready (an empty one is removed), then keep the spool within its bound."""
        current, self._file = self._file, None
        if current is None:
            return
        try:
            if current.size:
                os.rename(current.path, current.path.with_suffix(READY))
            else:
                current.path.unlink()
        except OSError:
            log.exception("prediction log spool file could not be closed", extra={"file": current.path.name})
        finally:
            os.close(current.fd)
        if self.max_spool_bytes is not None:
            enforce_bound(self.directory, self.max_spool_bytes, self.counters)
        if self.refuse_over is not None:
            self.measure()


def _forked(ref: weakref.ref[Spool]) -> None:
    spool = ref()
    if spool is not None:
        spool._forked()


def ready_files(directory: Path) -> list[Path]:
    """Files waiting for the shipper, oldest first: claimed (``.shipping``, an interrupted upload) and ready ones."""
    with contextlib.suppress(FileNotFoundError):
        files = [
            p for p in directory.iterdir() if p.suffix in (READY, SHIPPING) and not p.name.startswith(".") and ours(p)
        ]
        return sorted(files, key=lambda p: (p.suffix != SHIPPING, p.name))
    return []


def enforce_bound(directory: Path, max_bytes: int, counters: PredictionLogCounters) -> int:
    """Drop the oldest ready files until the ready ones hold at most `max_bytes`; returns the records dropped."""
    sizes: list[tuple[Path, int]] = []
    for path in ready_files(directory):
        with contextlib.suppress(FileNotFoundError):
            if path.suffix == READY:
                sizes.append((path, path.stat().st_size))
    total = sum(size for _, size in sizes)
    dropped = 0
    for path, size in sizes:
        if total <= max_bytes:
            break
        claimed = path.with_suffix(DROPPING)
        try:
            os.rename(path, claimed)  # only one process wins a file
        except FileNotFoundError:
            continue
        total -= size
        lines = count_lines(claimed)
        claimed.unlink()
        counters.dropped.inc(lines)
        dropped += lines
        log.warning(
            "prediction log spool over PREDICTION_LOG_MAX_SPOOL_BYTES: dropped its oldest file",
            extra={"file": path.name, "records": lines, "max_bytes": max_bytes},
        )
    return dropped


def promote_orphans(directory: Path, counters: PredictionLogCounters, min_age: float = 5.0) -> int:
    """Make the ``.part`` files of dead writers ready (cutting a partial last line, counted as dropped), and remove
    files abandoned while being created or dropped (older than `min_age` seconds); returns the files promoted."""
    promoted = 0
    try:
        candidates = list(directory.iterdir())
    except FileNotFoundError:
        return 0
    for path in candidates:
        if not ours(path):
            continue
        if path.suffix == PART:
            promoted += _promote(path, counters)
        elif path.suffix in (NEW, DROPPING):
            with contextlib.suppress(FileNotFoundError):
                if time.time() - path.stat().st_mtime > min_age and _unlocked(path):
                    path.unlink()
    return promoted


def _unlocked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _promote(path: Path, counters: PredictionLogCounters) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:  # its writer made it ready meanwhile
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its writer is alive
            return 0
        if not path.exists():  # made ready (or promoted) between our open and our lock
            return 0
        size = os.fstat(fd).st_size
        if size == 0:
            path.unlink()
            return 0
        tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
        if not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n")
            keep = max(0, size - len(tail) + cut + 1) if cut >= 0 else 0
            os.ftruncate(fd, keep)
            counters.dropped.inc()
            log.warning("prediction log: cut a partial last line of a dead writer's file", extra={"file": path.name})
            if keep == 0:
                path.unlink()
                return 0
        os.rename(path, path.with_suffix(READY))
        log.info("prediction log: a dead writer's file made ready", extra={"file": path.name})
        return 1
    finally:
        os.close(fd)
