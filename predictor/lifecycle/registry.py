"""The model registry of one process: which verified model serves, and the rules for swapping it.

The same rules run twice per pod: in the model agent (predictor.agent), whose registry reads the bucket and hands
each model it swaps to over local disk, and in every serving process, whose registry reads that handover
(predictor.lifecycle.handover) and verifies the artifact again before it serves. Each process's composition root
builds its registry with the hooks it needs (``on_swap``, ``on_record``, ``upstream``): nothing rewires it later.

Readers take ``registry.serving`` once per request and never lock; a swap is one reference assignment made while
holding the load lock, so a request is answered entirely by the old or entirely by the new model. Loads are
serialized by that lock: concurrent offers of the same object load it once, and a version is never replaced by an
older one unless an explicit pin asks for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from core import layout
from core.errors import ArtifactRejected, StoreUnavailable
from core.states import RejectReason, SkipReason, SwapOutcome, SwapTrigger
from core.store import ArtifactRef, LoadedModel, ModelStore
from predictor.fastpath import ProbaFn, compile_proba
from predictor.metrics import Metrics
from predictor.settings import PredictorSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving:
    """The serving model and its compiled predict_proba, swapped together as one reference."""

    loaded: LoadedModel
    predict_proba: ProbaFn

    @classmethod
    def of(cls, loaded: LoadedModel) -> Serving:
        """`loaded` with its predict_proba compiled (the verified fast path when there is one)."""
        return cls(loaded, compile_proba(loaded.model))


@dataclass(frozen=True)
class SwapRecord:
    """What became of one offered artifact."""

    version: str | None
    trigger: str
    """A SwapTrigger."""
    outcome: str
    """A SwapOutcome."""
    reason: str | None
    duration_s: float
    at: str
    """ISO-8601 UTC time of the decision."""
    object: str | None
    message: str | None = None
    """Why, in words: the rejection message, or ``Type: text`` of an unexpected failure."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Artifacts(Protocol):
    """Where a registry finds artifacts: the bucket (ModelStore) in the agent, the pod's handover in a worker."""

    def list_versions(self) -> list[ArtifactRef]: ...

    def ref(self, name: str, generation: int | None = None) -> ArtifactRef: ...

    def load(self, ref: ArtifactRef) -> LoadedModel: ...


class Recent:
    """A set of at most `size` keys; adding past it forgets the least recently added."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, key: Hashable) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)


class RateLimit:
    """A token bucket: `rate` tokens a second, at most `rate` (and at least one) saved up."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.clock = rate, clock
        self.capacity = max(1.0, rate)
        self._tokens, self._at = self.capacity, clock()

    def take(self) -> bool:
        now = self.clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


OnSwap = Callable[[LoadedModel, str, datetime | None], object]
"""Called with a verified model, its trigger and finalize time just before it serves (load lock held); an OSError
fails the swap and the old model keeps serving."""
OnRecord = Callable[[list[SwapRecord]], object]
"""Called with the whole history after every recorded decision (the agent hands it over to the workers)."""
Upstream = Callable[[], list[SwapRecord]]
"""Decisions made for this process elsewhere (a worker: the agent's rejections), merged into history()."""


class Registry:
    """The serving model of this process, its pin and its recent swap history."""

    def __init__(
        self,
        store: Artifacts | ModelStore,
        settings: PredictorSettings,
        metrics: Metrics | None = None,
        *,
        on_swap: Sequence[OnSwap] = (),
        on_record: Sequence[OnRecord] = (),
        upstream: Upstream | None = None,
        lookups_limited: bool = True,
    ) -> None:
        """A registry on `store` with its hooks: `on_swap` run before each swap, `on_record` after each decision,
        `upstream` merged into history(); `lookups_limited` rate-limits the bucket lookups notifications cause (off
        where artifacts come from local disk)."""
        self.store, self.settings = store, settings
        self.on_swap: tuple[OnSwap, ...] = tuple(on_swap)
        self.on_record: tuple[OnRecord, ...] = tuple(on_record)
        self.upstream = upstream
        self.metrics = metrics or Metrics()
        self.serving: Serving | None = None
        """The serving model (read it once per request)."""
        self.loaded_at: datetime | None = None
        self.loaded_trigger: str | None = None
        self.pinned: str | None = settings.pinned_model_version
        self._lock = threading.RLock()
        self._refused = Recent(settings.refused_cache_size)
        """(object, generation) pairs that failed verification: never downloaded again except by an explicit pin."""
        self._missing = Recent(settings.refused_cache_size)
        """(object, generation) pairs that did not exist when offered (what forged notifications name): kept apart,
        so a flood of them never pushes a real refusal out."""
        self.notification_lookups = RateLimit(settings.notification_lookup_rate) if lookups_limited else None
        """Bounds the bucket lookups notifications cause (None where artifacts come from local disk)."""
        self._history: deque[SwapRecord] = deque(maxlen=settings.swap_history_size)

    @property
    def ready(self) -> bool:
        return self.serving is not None

    @property
    def version(self) -> str | None:
        serving = self.serving
        return serving.loaded.version if serving else None

    def history(self) -> list[SwapRecord]:
        """Recorded swaps, rejections and failures, newest first (with the upstream ones, if any)."""
        records = list(self._history)
        if self.upstream is None:
            return records
        merged = sorted([*records, *self.upstream()], key=lambda r: r.at, reverse=True)
        return merged[: self.settings.swap_history_size]

    def offer(
        self, name: str, generation: int | None, trigger: str, finalized_at: datetime | None = None
    ) -> SwapRecord:
        """Consider one object (from a notification, say); load and swap it if the rules allow."""
        with self._lock:
            skip = self._skip_reason(name, layout.model_version(name), generation)
            if skip:
                return self._ignored(name, trigger, skip)
            limit = self.notification_lookups
            if trigger == SwapTrigger.NOTIFICATION and limit is not None and not limit.take():
                return self._ignored(name, trigger, SkipReason.RATE_LIMITED)
            return self._load(name, generation, trigger, finalized_at)

    def reconcile(self, trigger: str = SwapTrigger.RECONCILE) -> SwapRecord | None:
        """List the store (models/ in the agent; a serving process's handover holds only the pointer's artifact) and
        serve the newest valid version newer than the current one (or exactly the pin)."""
        with self._lock:
            refs = self.store.list_versions()
            if self.pinned is not None:
                return self._reconcile_pinned(refs, trigger)
            outcome: SwapRecord | None = None
            for ref in reversed(refs):
                if self.version is not None and ref.version <= self.version:
                    break
                if self._skip_reason(ref.name, ref.version, ref.generation):
                    continue
                outcome = self._load(ref.name, ref.generation, trigger, None, ref)
                if outcome.outcome == SwapOutcome.SWAPPED:
                    break
            return outcome

    def pin(self, version: str) -> SwapRecord:
        """Serve exactly `version` from now on (loading it, older or not); the pin holds only if it loads."""
        with self._lock:
            if self.version == version:
                self.pinned = version
                return self._ignored(layout.model_object(version), SwapTrigger.ADMIN, SkipReason.ALREADY_SERVING)
            previous, self.pinned = self.pinned, version  # the swap hooks see the new pin
            record = self._load(layout.model_object(version), None, SwapTrigger.ADMIN, None)
            if record.outcome != SwapOutcome.SWAPPED:
                self.pinned = previous
            return record

    def follow_pin(self, version: str | None) -> None:
        """Take the pin the pod's agent decided (a serving process, before it offers the agent's pointer)."""
        with self._lock:
            self.pinned = version

    def unpin(self) -> SwapRecord | None:
        """Drop the pin and catch up with the newest valid version."""
        with self._lock:
            self.pinned = None
            return self.reconcile(SwapTrigger.ADMIN)

    def acceptable_newer(self, refs: Sequence[ArtifactRef]) -> list[ArtifactRef]:
        """Those of `refs` these rules would still load: newer than the serving version (any, while none serves),
        neither refused by verification nor found missing, and the pinned version alone while pinned."""
        return [ref for ref in refs if self._skip_reason(ref.name, ref.version, ref.generation) is None]

    def _skip_reason(self, name: str, version: str | None, generation: int | None) -> str | None:
        if version is None:
            return SkipReason.NOT_A_MODEL
        if generation is not None and self._known_bad(name, generation):
            return SkipReason.ALREADY_REJECTED
        if version == self.version:
            return SkipReason.ALREADY_SERVING
        if self.pinned is not None:
            return None if version == self.pinned else SkipReason.PINNED
        if self.version is not None and version < self.version:
            return SkipReason.OLDER
        return None

    def _reconcile_pinned(self, refs: list[ArtifactRef], trigger: str) -> SwapRecord | None:
        if self.version == self.pinned:
            return None
        match = [ref for ref in refs if ref.version == self.pinned]
        if not match:
            log.warning("pinned model version %s is not in the bucket", self.pinned)
            return None
        ref = match[-1]
        if self._known_bad(ref.name, ref.generation):
            return None
        return self._load(ref.name, ref.generation, trigger, None, ref)

    def _known_bad(self, name: str, generation: int) -> bool:
        return (name, generation) in self._refused or (name, generation) in self._missing

    def _load(
        self,
        name: str,
        generation: int | None,
        trigger: str,
        finalized_at: datetime | None,
        ref: ArtifactRef | None = None,
    ) -> SwapRecord:
        started = time.perf_counter()
        try:
            ref = ref or self.store.ref(name, generation)
            loaded = self.store.load(ref)
        except ArtifactRejected as e:
            remembered = self._missing if e.reason == RejectReason.NOT_FOUND else self._refused
            for g in {generation, ref.generation if ref else None} - {None}:
                remembered.add((name, g))
            return self._rejected(name, trigger, e, time.perf_counter() - started)
        except StoreUnavailable:
            self.metrics.swaps.labels(trigger, SwapOutcome.FAILED).inc()
            raise
        except Exception as e:
            log.exception("loading %s failed", name)
            text = f"{type(e).__name__}: {e}"
            return self._record(
                SwapRecord(None, trigger, SwapOutcome.FAILED, type(e).__name__, _since(started), _now(), name, text)
            )
        return self._swap(loaded, trigger, finalized_at, started)

    def _swap(self, loaded: LoadedModel, trigger: str, finalized_at: datetime | None, started: float) -> SwapRecord:
        try:
            for listener in self.on_swap:
                listener(loaded, trigger, finalized_at)
        except OSError as e:
            log.exception("handing over %s failed", loaded.ref.name)
            text = f"{type(e).__name__}: {e}"
            return self._record(
                SwapRecord(
                    None, trigger, SwapOutcome.FAILED, type(e).__name__, _since(started), _now(), loaded.ref.name, text
                )
            )
        old = self.version
        self.loaded_at, self.loaded_trigger = datetime.now(UTC), trigger
        self.serving = Serving.of(loaded)
        self.metrics.set_serving(old, loaded.version)
        if finalized_at is not None:
            self.metrics.swap_latency.observe(max(0.0, (datetime.now(UTC) - finalized_at).total_seconds()))
        record = SwapRecord(
            loaded.version, trigger, SwapOutcome.SWAPPED, None, _since(started), _now(), loaded.ref.name
        )
        log.info("serving model %s (was %s)", loaded.version, old, extra={"swap": record.as_dict()})
        return self._record(record)

    def _rejected(self, name: str, trigger: str, error: ArtifactRejected, seconds: float) -> SwapRecord:
        self.metrics.rejected.labels(error.reason).inc()
        log.warning("rejected artifact %s: %s", name, error.message, extra={"reason": error.reason})
        return self._record(
            SwapRecord(
                layout.model_version(name),
                trigger,
                SwapOutcome.REJECTED,
                error.reason,
                seconds,
                _now(),
                name,
                error.message,
            )
        )

    def _ignored(self, name: str, trigger: str, reason: str) -> SwapRecord:
        record = SwapRecord(layout.model_version(name), trigger, SwapOutcome.IGNORED, reason, 0.0, _now(), name)
        self.metrics.swaps.labels(trigger, SwapOutcome.IGNORED).inc()
        if reason == SkipReason.PINNED:
            log.info("pinned to %s: not swapping to %s", self.pinned, name)
            self._remember(record)
        return record

    def _record(self, record: SwapRecord) -> SwapRecord:
        self.metrics.swaps.labels(record.trigger, record.outcome).inc()
        self._remember(record)
        return record

    def _remember(self, record: SwapRecord) -> None:
        self._history.appendleft(record)
        history = list(self._history)
        for listener in self.on_record:
            try:
                listener(history)
            except OSError:
                log.exception("handing over the swap history failed")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 6)
