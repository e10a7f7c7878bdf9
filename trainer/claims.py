"""One trainer per data fingerprint: a claim object created with if_generation_match=0 decides who trains.

A live run renews its claim (`kept_alive`), so a run that was killed is taken over CLAIM_STALE_AFTER seconds after its
last renewal, while a long run, however long, never looks stale.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import storage

from core import gcs, layout
from core.errors import ServiceError
from core.states import RunOutcome

log = logging.getLogger(__name__)

_SETTLED = (RunOutcome.PUBLISHED, RunOutcome.REJECTED)
"""Outcomes that end a fingerprint; a `failed` (or stale `training`) claim may be taken over."""


@dataclass(frozen=True)
class Refused:
    """Why this run may not train the fingerprint; `busy` when another run may still finish it (ask again later)."""

    reason: str
    busy: bool


@dataclass
class Claim:
    """The claim this run holds on one fingerprint (object name and generation for conditional updates)."""

    blob: storage.Blob
    generation: int

    def finish(self, state: str, retry: Any, **details: Any) -> None:
        """Record the outcome (published / rejected / failed) so no one trains the same data again."""
        # PreconditionFailed: taken over as stale meanwhile; the newer holder records its own outcome
        with contextlib.suppress(gexc.PreconditionFailed):
            self._write({"state": state, "at": time.time(), **details}, retry)

    def renew(self, retry: Any) -> bool:
        """Refresh the claim's time; False once another run has taken it over."""
        try:
            self._write({"state": "training", "at": time.time()}, retry)
        except gexc.PreconditionFailed:
            return False
        return True

    @contextlib.contextmanager
    def kept_alive(self, every: float, retry: Any) -> Iterator[None]:
        """Renew the claim every `every` seconds in a background thread while the block runs."""
        stop = threading.Event()
        thread = threading.Thread(target=self._beat, args=(stop, every, retry), name="claim-renewal", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _beat(self, stop: threading.Event, every: float, retry: Any) -> None:
        while not stop.wait(every):
            try:
                if not self.renew(retry):
                    log.warning("claim %s was taken over by another run", self.blob.name)
                    return
            except ServiceError as e:  # StoreUnavailable or StoreRefused: the next beat tries again
                log.warning("could not renew claim %s: %s", self.blob.name, e)

    def _write(self, state: dict[str, Any], retry: Any) -> None:
        body = json.dumps(state)
        gcs.call(retry, self.blob.upload_from_string, body, "application/json", if_generation_match=self.generation)
        self.generation = int(self.blob.generation or 0)


def acquire(bucket: storage.Bucket, fingerprint: str, stale_after: float, retry: Any) -> Claim | Refused:
    """Take the claim on `fingerprint`, or say why another run owns it."""
    blob = bucket.blob(f"{layout.CLAIMS}{fingerprint}.json")
    body = json.dumps({"state": "training", "at": time.time()})
    try:
        gcs.call(retry, blob.upload_from_string, body, "application/json", if_generation_match=0)
        return Claim(blob, int(blob.generation or 0))
    except gexc.PreconditionFailed:
        pass
    existing = gcs.call(retry, bucket.get_blob, blob.name)
    if existing is None:
        return Refused("claim vanished while reading it", busy=True)
    try:
        raw = gcs.call(retry, existing.download_as_bytes, if_generation_match=existing.generation)
        state = json.loads(raw or b"{}")
    except (gexc.NotFound, gexc.PreconditionFailed):
        return Refused("claim changed while reading it", busy=True)
    holder, age = state.get("state"), time.time() - float(state.get("at", 0))
    if holder in _SETTLED or (holder == "training" and age < stale_after):
        reason = f"data already claimed by another run (state {holder}, {age:.0f} s ago)"
        return Refused(reason, busy=holder not in _SETTLED)
    try:
        gcs.call(retry, blob.upload_from_string, body, "application/json", if_generation_match=existing.generation)
    except gexc.PreconditionFailed:
        return Refused("another run took over the stale claim first", busy=True)
    return Claim(blob, int(blob.generation or 0))
