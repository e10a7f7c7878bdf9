"""The joiner's ledger: one JSON object per pass under ``<FEEDBACK_LOG_PREFIX>ledger/<stamp>.json``.

A pass's entry lists the feedback objects it read, the rows it joined (with their features, labels, the
prediction's version and predicted class), how many items ended in each other outcome, the items still pending
(their prediction may not have shipped yet) and, once its batch is decided, the CSV its rows go into. It is created
(create-only) before anything else, marked once the live accuracy counted its rows, marked with its batch's CSV
name before that CSV is written from exactly the entries so marked, and marked written after: a joiner that dies
anywhere leaves entries the next pass finishes (the CSV is written from the entries, never recomputed, so never
doubled), nothing read is forgotten and nothing joined twice. The state a pass starts from is the union of the
entries of the window FEEDBACK_MAX_AGE plus a day (older ones cannot matter: their feedback is `late` by now); the
pending items are those of the newest entry.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import storage

from core import gcs, layout
from trainer.feedback.records import Feedback

LEDGER = "ledger/"
SCHEMA = 1
LEASE = "lease.json"
"""The joiners' lease in the ledger's folder: one pass at a time, whoever runs it."""
LEASE_SECONDS = 300.0
"""A lease not released within this long (its joiner died) may be taken over."""
_ENTRY = re.compile(r"\d{8}T\d{12}Z\.json")


def folder(prefix: str) -> str:
    return f"{prefix}{LEDGER}"


def stamp_time(stamp: str) -> float:
    return layout.version_time(stamp).timestamp()


def new_stamp(after: str | None, now: float) -> str:
    """A stamp for a pass at `now`, later than `after` (the newest entry's) even if the clock went back."""
    stamp = layout.format_version(datetime.fromtimestamp(now, UTC))
    if after is not None and stamp <= after:
        stamp = layout.format_version(datetime.fromtimestamp(stamp_time(after) + 1e-6, UTC))
    return stamp


@dataclass
class Entry:
    """One pass's ledger entry (see the module's docstring)."""

    stamp: str
    objects: list[str] = field(default_factory=list)
    joined: list[dict[str, Any]] = field(default_factory=list)
    """One per training row: id, row, label, features, version, predicted, time (of the feedback)."""
    outcomes: dict[str, int] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)
    csv: str | None = None
    csv_written: bool = False
    accuracy_counted: bool = False
    generation: int = 0
    """The stored object's generation (0 until it is stored); marks are written conditioned on it."""

    def name(self, prefix: str) -> str:
        return f"{folder(prefix)}{self.stamp}.json"

    def body(self) -> bytes:
        data = {
            "schema": SCHEMA, "stamp": self.stamp, "objects": self.objects, "joined": self.joined,
            "outcomes": self.outcomes, "pending": self.pending, "csv": self.csv, "csv_written": self.csv_written,
            "accuracy_counted": self.accuracy_counted,
        }  # fmt: skip
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, raw: bytes, generation: int) -> Entry:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError("not a ledger entry of schema 1")
        return cls(
            data["stamp"], list(data["objects"]), list(data["joined"]), dict(data["outcomes"]), list(data["pending"]),
            data["csv"], bool(data["csv_written"]), bool(data["accuracy_counted"]), generation,
        )  # fmt: skip

    def store(self, bucket: storage.Bucket, prefix: str, retry: Any) -> None:
        """Create the entry (create-only; a 412 means this very entry is already stored: nothing to do)."""
        blob = bucket.blob(self.name(prefix))
        try:
            gcs.call(retry, blob.upload_from_string, self.body(), "application/json", if_generation_match=0)
        except gexc.PreconditionFailed:
            stored = gcs.call(retry, bucket.get_blob, blob.name)
            self.generation = int(stored.generation or 0) if stored is not None else 0
            return
        self.generation = int(blob.generation or 0)

    def mark(self, bucket: storage.Bucket, prefix: str, retry: Any, **marks: Any) -> None:
        """Record progress (`csv`: the batch its rows go into, `csv_written`, `accuracy_counted`), conditioned on the
        generation last stored."""
        for key, value in marks.items():
            setattr(self, key, value)
        blob = bucket.blob(self.name(prefix))
        gcs.call(retry, blob.upload_from_string, self.body(), "application/json", if_generation_match=self.generation)
        self.generation = int(blob.generation or 0)


@dataclass
class State:
    """What the ledger says so far: the objects read, the (id, row) pairs joined, what is pending, what is
    unfinished."""

    entries: list[Entry] = field(default_factory=list)
    """Entries of the window, oldest first."""
    unreadable: list[str] = field(default_factory=list)

    @property
    def objects(self) -> set[str]:
        return {name for entry in self.entries for name in entry.objects}

    @property
    def joined(self) -> set[tuple[str, int]]:
        return {(row["id"], row["row"]) for entry in self.entries for row in entry.joined}

    @property
    def pending(self) -> list[Feedback]:
        if not self.entries:
            return []
        return [Feedback.from_dict(item) for item in self.entries[-1].pending]

    @property
    def newest(self) -> str | None:
        return self.entries[-1].stamp if self.entries else None

    def unfinished(self) -> list[Entry]:
        """Entries whose accuracy counts were not confirmed (their pass died before the end)."""
        return [e for e in self.entries if e.joined and not e.accuracy_counted]


def unwritten(entries: list[Entry]) -> list[Entry]:
    """Those of `entries` whose joined rows are in no written CSV yet (waiting for their batch, or their pass died)."""
    return [e for e in entries if e.joined and not e.csv_written]


def load(bucket: storage.Bucket, prefix: str, since: float, retry: Any, cache: dict[str, Entry] | None = None) -> State:
    """The entries stamped at or after `since` (epoch seconds), oldest first; unreadable ones are listed, skipped.

    `cache` keeps parsed entries between passes: an entry is downloaded again only when its generation changed (a
    mark), so a long-running joiner reads each entry about three times, not once per pass."""
    cache = {} if cache is None else cache
    start = f"{folder(prefix)}{layout.format_version(datetime.fromtimestamp(since, UTC))}"
    blobs = gcs.call(retry, gcs.listed, bucket, prefix=folder(prefix))
    state = State()
    listed = set()
    for blob in sorted(blobs, key=lambda b: b.name):
        if blob.name < start or not _ENTRY.fullmatch(blob.name.removeprefix(folder(prefix))):
            continue
        listed.add(blob.name)
        known = cache.get(blob.name)
        if known is not None and known.generation == int(blob.generation or 0):
            state.entries.append(known)
            continue
        try:
            raw = gcs.call(retry, blob.download_as_bytes, if_generation_match=blob.generation)
        except (gexc.NotFound, gexc.PreconditionFailed):  # rewritten by a mark meanwhile: read it again
            fresh = gcs.call(retry, bucket.get_blob, blob.name)
            if fresh is None:
                continue
            blob, raw = fresh, gcs.call(retry, fresh.download_as_bytes)
        try:
            entry = Entry.parse(raw, int(blob.generation or 0))
        except (ValueError, KeyError, TypeError):
            state.unreadable.append(blob.name)
            continue
        cache[blob.name] = entry
        state.entries.append(entry)
    for name in set(cache) - listed:  # out of the window, or deleted
        del cache[name]
    return state


def take_lease(bucket: storage.Bucket, prefix: str, holder: str, retry: Any) -> int | None:
    """The lease's generation once this joiner holds it; None while another joiner's lease is live."""
    blob = bucket.blob(folder(prefix) + LEASE)
    body = json.dumps({"holder": holder, "until": time.time() + LEASE_SECONDS})
    try:
        gcs.call(retry, blob.upload_from_string, body, "application/json", if_generation_match=0)
        return int(blob.generation or 0)
    except gexc.PreconditionFailed:
        pass
    held = gcs.call(retry, bucket.get_blob, blob.name)
    if held is None:
        return None  # released meanwhile: the next pass takes it
    try:
        until = float(json.loads(gcs.call(retry, held.download_as_bytes, if_generation_match=held.generation))["until"])
    except (gexc.NotFound, gexc.PreconditionFailed):
        return None
    except (ValueError, KeyError, TypeError):
        until = 0.0  # unreadable: as good as expired
    if until > time.time():
        return None
    try:
        gcs.call(retry, blob.upload_from_string, body, "application/json", if_generation_match=held.generation)
    except gexc.PreconditionFailed:
        return None
    return int(blob.generation or 0)


def release_lease(bucket: storage.Bucket, prefix: str, generation: int, retry: Any) -> None:
    """Give the lease back (only the generation this joiner wrote; a lease taken over is the new holder's)."""
    with contextlib.suppress(gexc.NotFound, gexc.PreconditionFailed):
        gcs.call(retry, bucket.blob(folder(prefix) + LEASE).delete, if_generation_match=generation)
