"""Drift of served traffic from a model's training data: reference statistics, the sliding window, the measures.

The trainer stores a ``Reference`` in the model's signed lineage: per feature a histogram of its training rows on
fixed bins (``BIN_WIDTH_CM`` wide from 0 cm, ``BIN_COUNT`` of them), and the class counts (the priors). The serving
side keeps the newest served rows in a ``Window`` (their bin per feature and their predicted class) and compares, with
the measures Vertex AI Model Monitoring uses:

- per feature, the **Jensen-Shannon distance** (the square root of the divergence, base 2, so 0..1) between the
  window's histogram and the reference's on the same bins;
- for the predicted-class mix (feature ``predicted_class``), the **L-infinity distance**: the largest absolute
  difference between a class's share of the window's predictions and its share of the training labels.

A feature has drifted when its distance is above its threshold (``core.settings.DriftSettings``). Empty bins need no
special case in the Jensen-Shannon divergence (a term with p = 0 is 0, and the mixture is positive wherever either
side is), and ``smoothing`` (a pseudo-count per bin on both sides) is there for who wants it; values outside the bins
count in the edge bins (below 0 cm in the first, 10 cm and more in the last). ``DriftGauges`` exports a result as
``predictor_drift_score{feature}``, ``predictor_drift_detected{feature}`` and ``predictor_drift_window_rows``.

NumPy only (no scikit-learn, no Flask); prometheus_client is imported when gauges are made.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.iris import CLASSES, FEATURES
from core.settings import DRIFT_CLASS_FEATURE, DriftSettings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

BIN_WIDTH_CM = 0.25
"""Width of every histogram bin: iris measurements differ by tenths of a centimetre, species by centimetres."""
BIN_COUNT = 40
"""Bins from 0 to 10 cm (no iris is larger); the last one also holds everything from 10 cm up to core.iris.MAX_CM."""
SCORED = (*FEATURES, DRIFT_CLASS_FEATURE)
"""Everything that gets a drift score, in export order."""


def bin_indices(values: np.ndarray, width: float = BIN_WIDTH_CM, count: int = BIN_COUNT) -> np.ndarray:
    """The bin of each measurement (any shape): floor(value / width), values below 0 in bin 0 and at or past the
    last bin's end in the last one. ValueError for a value that is not finite (it has no bin)."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("drift statistics need finite measurements")
    return np.clip(np.floor(values / width), 0, count - 1).astype(np.int64)


def histogram(values: np.ndarray, width: float = BIN_WIDTH_CM, count: int = BIN_COUNT) -> np.ndarray:
    """Counts of one feature's values per bin."""
    return np.bincount(bin_indices(values, width, count), minlength=count)


def class_counts(class_ids: np.ndarray) -> np.ndarray:
    """Counts per class of CLASSES from class indices."""
    ids = np.asarray(class_ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= len(CLASSES)):
        raise ValueError(f"class ids must be 0..{len(CLASSES) - 1}")
    return np.bincount(ids, minlength=len(CLASSES))


def _shares(counts: np.ndarray, smoothing: float) -> np.ndarray:
    smoothed = np.asarray(counts, dtype=np.float64) + smoothing
    total = smoothed.sum()
    if total <= 0:
        raise ValueError("a distribution needs at least one count")
    return smoothed / total


def js_distance(p_counts: np.ndarray, q_counts: np.ndarray, smoothing: float = 0.0) -> float:
    """Jensen-Shannon distance, base 2 (0 for equal distributions, 1 for disjoint ones), of two count vectors."""
    p, q = _shares(p_counts, smoothing), _shares(q_counts, smoothing)
    m = (p + q) / 2
    divergence = 0.0
    for side in (p, q):
        used = side > 0  # 0 * log(0 / m) is 0; m > 0 wherever side > 0
        divergence += 0.5 * float(np.sum(side[used] * np.log2(side[used] / m[used])))
    return math.sqrt(min(1.0, max(0.0, divergence)))


def linf_distance(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """L-infinity distance of two count vectors' shares: the largest absolute difference of one category's share."""
    return float(np.max(np.abs(_shares(p_counts, 0.0) - _shares(q_counts, 0.0))))


@dataclass(frozen=True)
class Reference:
    """A model's training data in brief: per-feature bin counts and class counts (the lineage's `reference`)."""

    histograms: dict[str, tuple[int, ...]]
    classes: tuple[int, ...]
    bin_width: float = BIN_WIDTH_CM
    bin_count: int = BIN_COUNT

    @classmethod
    def of(cls, features: np.ndarray, labels: Sequence[str] | np.ndarray) -> Reference:
        """The reference of training rows (columns in FEATURES order) and their class names."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(FEATURES) or len(features) == 0:
            raise ValueError(f"need rows of {len(FEATURES)} features, got shape {features.shape}")
        names = np.asarray(labels).astype(str)
        if names.shape != (len(features),):
            raise ValueError("one label per row")
        ids = np.full(len(names), -1, dtype=np.int64)
        for index, name in enumerate(CLASSES):
            ids[names == name] = index
        if (ids < 0).any():
            raise ValueError(f"unknown classes {sorted(set(names[ids < 0].tolist()))[:5]}")
        histograms = {name: tuple(int(c) for c in histogram(features[:, i])) for i, name in enumerate(FEATURES)}
        return cls(histograms, tuple(int(c) for c in class_counts(ids)))

    def to_lineage(self) -> dict[str, Any]:
        """The compact JSON object stored in the lineage (counts, not shares: integers are short and exact)."""
        return {
            "bin_width": self.bin_width,
            "bins": self.bin_count,
            "features": {name: list(counts) for name, counts in self.histograms.items()},
            "classes": list(self.classes),
        }

    @classmethod
    def from_lineage(cls, stored: dict[str, Any] | None) -> Reference | None:
        """The reference a lineage carries; None for a model trained before references existed. ValueError when it
        is malformed (it is signed, so that is a trainer bug, not an attack)."""
        if not stored:
            return None
        try:
            width, count = float(stored["bin_width"]), int(stored["bins"])
            histograms = {name: tuple(int(c) for c in stored["features"][name]) for name in FEATURES}
            classes = tuple(int(c) for c in stored["classes"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"reference statistics unreadable: {e!r}") from e
        if not (width > 0 and count > 1) or len(classes) != len(CLASSES) or sum(classes) <= 0:
            raise ValueError("reference statistics: bad bins or class counts")
        if any(len(h) != count or min(h) < 0 or sum(h) <= 0 for h in histograms.values()) or min(classes) < 0:
            raise ValueError("reference statistics: a histogram has the wrong length or no counts")
        return cls(histograms, classes, width, count)


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's (or the predicted-class mix's) distance from the reference and whether it passed the threshold."""

    feature: str
    score: float | None
    """None while the window holds fewer than DRIFT_MIN_ROWS rows."""
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """The window's comparison with the reference."""

    rows: int
    features: tuple[FeatureDrift, ...]

    @property
    def drifted(self) -> bool:
        return any(f.drifted for f in self.features)

    def __getitem__(self, feature: str) -> FeatureDrift:
        return next(f for f in self.features if f.feature == feature)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "drifted": self.drifted,
            "features": {f.feature: {"score": f.score, "threshold": f.threshold, "drifted": f.drifted}
                         for f in self.features},
        }  # fmt: skip


class Window:
    """The newest `size` served rows as bin indices and predicted classes, with running counts (thread-safe)."""

    def __init__(self, size: int, bin_width: float = BIN_WIDTH_CM, bin_count: int = BIN_COUNT) -> None:
        self.size, self.bin_width, self.bin_count = size, bin_width, bin_count
        self._bins = np.zeros((size, len(FEATURES)), dtype=np.int64)
        self._classes = np.zeros(size, dtype=np.int64)
        self._counts = np.zeros((len(FEATURES), bin_count), dtype=np.int64)
        self._class_counts = np.zeros(len(CLASSES), dtype=np.int64)
        self._next = 0
        self._rows = 0
        self._lock = threading.Lock()

    @property
    def rows(self) -> int:
        return self._rows

    def add(self, features: np.ndarray, class_ids: Sequence[int] | np.ndarray) -> None:
        """Served rows (columns in FEATURES order) and the class index each was predicted as; the oldest rows leave
        once the window is full. ValueError (nothing added) for a bad shape, a value that is not finite or an
        unknown class."""
        rows = np.asarray(features, dtype=np.float64)
        rows = rows[np.newaxis] if rows.ndim == 1 else rows
        if rows.ndim != 2 or rows.shape[1] != len(FEATURES):
            raise ValueError(f"rows of {len(FEATURES)} features expected, got shape {np.shape(features)}")
        ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
        if len(ids) != len(rows):
            raise ValueError(f"{len(rows)} rows but {len(ids)} predicted classes")
        class_counts(ids)  # validates the ids
        bins = bin_indices(rows, self.bin_width, self.bin_count)
        if len(rows) > self.size:
            bins, ids = bins[-self.size :], ids[-self.size :]
        flat = (bins + np.arange(len(FEATURES)) * self.bin_count).ravel()  # (feature, bin) as one index
        cells = len(FEATURES) * self.bin_count
        with self._lock:
            slots = (self._next + np.arange(len(ids))) % self.size  # distinct: at most `size` rows
            evicted = slots[slots < self._rows]  # the slots still holding an older row
            gone = (self._bins[evicted] + np.arange(len(FEATURES)) * self.bin_count).ravel()
            self._counts += (np.bincount(flat, minlength=cells) - np.bincount(gone, minlength=cells)).reshape(
                len(FEATURES), self.bin_count
            )
            self._class_counts += np.bincount(ids, minlength=len(CLASSES))
            self._class_counts -= np.bincount(self._classes[evicted], minlength=len(CLASSES))
            self._bins[slots], self._classes[slots] = bins, ids
            self._rows = min(self.size, self._rows + len(ids))
            self._next = int((self._next + len(ids)) % self.size)

    def counts(self) -> tuple[np.ndarray, np.ndarray, int]:
        """A consistent copy of the per-feature bin counts, the class counts and the row count."""
        with self._lock:
            return self._counts.copy(), self._class_counts.copy(), self._rows

    def compare(self, reference: Reference, settings: DriftSettings, smoothing: float = 0.0) -> DriftResult:
        """Each feature's Jensen-Shannon distance and the class mix's L-infinity distance from `reference`."""
        if (reference.bin_width, reference.bin_count) != (self.bin_width, self.bin_count):
            raise ValueError("the reference's bins differ from the window's")
        counts, classes, rows = self.counts()
        results = []
        for name in SCORED:
            threshold = settings.threshold(name)
            if rows < settings.drift_min_rows:
                results.append(FeatureDrift(name, None, threshold, False))
                continue
            if name == DRIFT_CLASS_FEATURE:
                score = linf_distance(classes, np.asarray(reference.classes))
            else:
                index = FEATURES.index(name)
                score = js_distance(counts[index], np.asarray(reference.histograms[name]), smoothing)
            results.append(FeatureDrift(name, score, threshold, score > threshold))
        return DriftResult(rows, tuple(results))


class DriftMonitor:
    """A window of DRIFT_WINDOW_ROWS rows, the serving model's reference and the settings: `observe` served rows,
    `evaluate` (and export with DriftGauges). A new model's reference keeps the window (the bins are fixed)."""

    def __init__(self, settings: DriftSettings, reference: Reference | None = None) -> None:
        self.settings = settings
        self.reference = reference
        self.window = Window(settings.drift_window_rows)

    def use(self, reference: Reference | None) -> None:
        """Compare with `reference` from now on (None: a model without reference statistics, no verdicts)."""
        if reference is not None and (reference.bin_width, reference.bin_count) != (
            self.window.bin_width,
            self.window.bin_count,
        ):
            self.window = Window(self.settings.drift_window_rows, reference.bin_width, reference.bin_count)
        self.reference = reference

    def observe(self, features: np.ndarray, class_ids: Sequence[int] | np.ndarray) -> None:
        self.window.add(features, class_ids)

    def evaluate(self) -> DriftResult | None:
        """The comparison, or None without a reference."""
        if self.reference is None:
            return None
        return self.window.compare(self.reference, self.settings)


class DriftGauges:
    """The drift figures as Prometheus gauges in `registry` (``mostrecent`` across processes: one process, the one
    that keeps the window, sets them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Gauge

        self.score = Gauge(
            "predictor_drift_score",
            "Distance of served traffic from the training data: Jensen-Shannon per feature, L-infinity for "
            "feature=predicted_class (NaN while the window is too small).",
            ["feature"], multiprocess_mode="mostrecent", registry=registry,
        )  # fmt: skip
        self.detected = Gauge(
            "predictor_drift_detected", "1 while the feature's drift score is above its threshold.",
            ["feature"], multiprocess_mode="mostrecent", registry=registry,
        )  # fmt: skip
        self.rows = Gauge(
            "predictor_drift_window_rows", "Served rows in the drift window.",
            multiprocess_mode="mostrecent", registry=registry,
        )  # fmt: skip

    def publish(self, result: DriftResult | None) -> None:
        """Set every gauge from `result`; None (no reference) clears the figures: NaN scores, nothing detected."""
        self.rows.set(result.rows if result else 0)
        by_feature = {f.feature: f for f in result.features} if result else {}
        for name in SCORED:
            found = by_feature.get(name)
            score = found.score if found is not None else None
            self.score.labels(name).set(math.nan if score is None else score)
            self.detected.labels(name).set(1 if found is not None and found.drifted else 0)
