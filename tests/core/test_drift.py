"""core.drift: bins, the two distances, the reference in the signed lineage, the sliding window, the gauges."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from sklearn.datasets import load_iris

from core import drift
from core.drift import BIN_COUNT, BIN_WIDTH_CM, DriftGauges, DriftMonitor, Reference, Window
from core.iris import CLASSES, FEATURES, MAX_CM
from core.lineage import METADATA_TOTAL_BYTES, METADATA_VALUE_BYTES, Lineage, metadata_bytes, sent_bytes
from core.settings import DRIFT_CLASS_FEATURE, DriftSettings
from tests import keys


def iris() -> tuple[np.ndarray, np.ndarray]:
    data = load_iris()
    return data.data, np.array([CLASSES[t] for t in data.target])


def iris_reference() -> Reference:
    return Reference.of(*iris())


def test_bins_are_fixed_width_from_zero_with_edge_bins_for_values_outside() -> None:
    values = np.array([0.0, 0.24, 0.25, 1.4, 9.99, 10.0, MAX_CM, -3.0, 1e9])
    assert drift.bin_indices(values).tolist() == [0, 0, 1, 5, 39, 39, 39, 0, 39]
    assert BIN_COUNT * BIN_WIDTH_CM == 10.0
    assert drift.histogram(values).sum() == len(values)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_value_that_is_not_finite_has_no_bin(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        drift.bin_indices(np.array([1.0, bad]))


def test_js_distance_is_zero_for_equal_one_for_disjoint_and_symmetric() -> None:
    p, q = np.array([5, 0, 5, 0]), np.array([0, 3, 0, 3])
    assert drift.js_distance(p, p * 7) == 0.0
    assert drift.js_distance(p, q) == pytest.approx(1.0)
    r = np.array([1, 2, 3, 4])
    assert drift.js_distance(p, r) == pytest.approx(drift.js_distance(r, p))


def test_js_distance_matches_the_textbook_value_with_empty_bins() -> None:
    """p = (1/2, 1/2, 0), q = (0, 1/2, 1/2): m = (1/4, 1/2, 1/4), JSD = 1/2 bit, distance sqrt(1/2)."""
    assert drift.js_distance(np.array([1, 1, 0]), np.array([0, 1, 1])) == pytest.approx(math.sqrt(0.5))
    scipy_spatial = pytest.importorskip("scipy.spatial.distance")
    p, q = np.array([3, 0, 1, 6, 0]), np.array([0, 2, 2, 1, 5])
    expected = scipy_spatial.jensenshannon(p / p.sum(), q / q.sum(), base=2)
    assert drift.js_distance(p, q) == pytest.approx(expected)


def test_smoothing_pulls_distributions_together_and_needs_a_count() -> None:
    p, q = np.array([4, 0]), np.array([0, 4])
    assert drift.js_distance(p, q, smoothing=1.0) < drift.js_distance(p, q)
    with pytest.raises(ValueError, match="at least one count"):
        drift.js_distance(np.zeros(3), q)


def test_linf_distance_is_the_largest_share_difference() -> None:
    assert drift.linf_distance(np.array([50, 50, 50]), np.array([10, 10, 10])) == 0.0
    assert drift.linf_distance(np.array([2, 1, 1]), np.array([1, 1, 2])) == pytest.approx(0.25)


def test_the_reference_of_iris_counts_every_row_and_round_trips_the_lineage_form() -> None:
    reference = iris_reference()
    assert reference.classes == (50, 50, 50)
    assert all(sum(h) == 150 and len(h) == BIN_COUNT for h in reference.histograms.values())
    stored = json.loads(json.dumps(reference.to_lineage()))
    assert Reference.from_lineage(stored) == reference
    assert Reference.from_lineage({}) is None


@pytest.mark.parametrize(
    "change",
    [
        {"bins": "x"},
        {"bin_width": 0},
        {"classes": [1, 2]},
        {"classes": [0, 0, 0]},
        {"features": {"petal_length": [1] * BIN_COUNT}},
        {"features": {name: [1] * (BIN_COUNT - 1) for name in FEATURES}},
        {"features": {name: [-1, 2] + [0] * (BIN_COUNT - 2) for name in FEATURES}},
    ],
)
def test_a_malformed_reference_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="reference statistics"):
        Reference.from_lineage(iris_reference().to_lineage() | change)


def test_the_reference_needs_rows_and_one_known_label_each() -> None:
    features, labels = iris()
    with pytest.raises(ValueError, match="shape"):
        Reference.of(features[:, :3], labels)
    with pytest.raises(ValueError, match="unknown classes"):
        Reference.of(features, np.array(["tulip"] * len(features)))


def lineage(**changes: object) -> Lineage:
    return Lineage(
        version="20260101T000000000000Z", created_at="2026-01-01T00:00:00+00:00", sha256="0" * 64, signature="",
        sklearn_version="1.7.0", python_version="3.11.9", model_type="StandardScaler+LogisticRegression",
        data_fingerprint="f" * 64, row_count=150, metrics={"accuracy": 0.97}, feature_names=list(FEATURES),
        classes=list(CLASSES), **changes,  # type: ignore[arg-type]
    )  # fmt: skip


def test_the_reference_is_signed_in_the_lineage_and_older_lineages_still_verify() -> None:
    signed = lineage(reference=iris_reference().to_lineage()).signed_with(keys.KEYRING)
    metadata = signed.to_metadata()
    read = Lineage.from_metadata(metadata, "n")
    assert read.verifies(keys.READER)
    assert Reference.from_lineage(read.reference) == iris_reference()
    tampered = json.loads(metadata["reference"])
    tampered["classes"] = [1, 1, 1]
    patched = metadata | {"reference": json.dumps(tampered, separators=(",", ":"))}
    assert not Lineage.from_metadata(patched, "n").verifies(keys.READER)
    older = lineage().signed_with(keys.KEYRING).to_metadata()
    assert "reference" not in older  # what an artifact signed before the field existed stores
    assert Lineage.from_metadata(older, "n").verifies(keys.READER)


def test_the_largest_possible_reference_fits_the_metadata_budget_beside_everything_else() -> None:
    """Every bin of every feature at 7 digits (5 million training rows), the evaluation figures, long file names:
    the value stays far under GCS's per-value cap and data_objects still keeps names."""
    worst = {"bin_width": BIN_WIDTH_CM, "bins": BIN_COUNT, "classes": [5_000_000] * 3,
             "features": {name: [5_000_000] * BIN_COUNT for name in FEATURES}}  # fmt: skip
    assert Reference.from_lineage(worst) is not None
    names = [f"data/upload-{'x' * 80}-{i}.csv#{i}" for i in range(30)]
    evaluation = {"set": "20260101T000000000000Z", "accuracy": 0.9667, "recall": dict.fromkeys(CLASSES, 0.9667)}
    signed = lineage(reference=worst, evaluation=evaluation, data_objects=names, data_objects_total=30)
    metadata = signed.signed_with(keys.KEYRING).to_metadata()
    assert sent_bytes(metadata["reference"]) < METADATA_VALUE_BYTES / 2
    assert metadata_bytes(metadata) <= METADATA_TOTAL_BYTES
    assert len(json.loads(metadata["data_objects"])) >= 10
    typical = lineage(reference=iris_reference().to_lineage()).to_metadata()["reference"]
    assert sent_bytes(typical) < 800


def test_the_window_keeps_the_newest_rows_and_their_counts() -> None:
    window = Window(4)
    rows = np.array([[1.0, 2.0, 3.0, 0.1 * i] for i in range(6)])
    window.add(rows[:3], [0, 1, 2])
    window.add(rows[3:], [2, 2, 1])
    counts, classes, n = window.counts()
    assert n == 4
    assert classes.tolist() == [0, 1, 3]  # rows 2..5 predicted 2, 2, 2, 1
    assert counts[3].tolist() == drift.histogram(rows[2:, 3]).tolist()
    window.add(rows, [0] * 6)  # more rows than the window: only the newest count
    assert window.counts()[1].tolist() == [4, 0, 0]


def test_the_window_counts_equal_a_recount_of_its_newest_rows_for_any_batch_sizes() -> None:
    rng = np.random.default_rng(7)
    window, rows, classes = Window(37), np.empty((0, 4)), np.empty(0, dtype=np.int64)
    for size in [*rng.integers(1, 20, 30), 37, 50, 1, 36]:
        batch, ids = rng.uniform(-1, 12, (size, 4)), rng.integers(0, 3, size)
        window.add(batch, ids)
        rows, classes = np.vstack([rows, batch])[-37:], np.concatenate([classes, ids])[-37:]
        counts, class_totals, n = window.counts()
        assert n == len(rows)
        assert class_totals.tolist() == drift.class_counts(classes).tolist()
        assert counts.tolist() == [drift.histogram(rows[:, i]).tolist() for i in range(4)]
    window.add(np.array([5.1, 3.5, 1.4, 0.2]), [0])  # one row, unnested
    assert window.counts()[1].sum() == 37


@pytest.mark.parametrize(
    ("rows", "classes", "match"),
    [
        (np.ones((4, 2)), [0, 0], "4 features"),
        (np.ones((2, 4)), [0], "predicted classes"),
        (np.ones((1, 4)), [3], "class ids"),
        (np.array([[1.0, math.nan, 1.0, 1.0]]), [0], "finite"),
    ],
)
def test_bad_rows_add_nothing(rows: np.ndarray, classes: list[int], match: str) -> None:
    window = Window(10)
    with pytest.raises(ValueError, match=match):
        window.add(rows, classes)
    assert window.rows == 0


def served(shift: float, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Iris rows with 0.1 cm noise; petal length + `shift` on a third of them; their true classes as predictions."""
    features, labels = iris()
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(features), n)
    rows = features[picked] + rng.normal(0, 0.1, (n, 4))
    rows[rng.random(n) < 1 / 3, 2] += shift
    return rows, np.array([CLASSES.index(label) for label in labels[picked]])


def test_iris_like_traffic_does_not_drift_and_shifted_petal_length_does() -> None:
    settings, reference = DriftSettings(), iris_reference()
    window = Window(settings.drift_window_rows)
    window.add(*served(0.0, settings.drift_window_rows))
    calm = window.compare(reference, settings)
    assert not calm.drifted
    assert calm.rows == settings.drift_window_rows
    window.add(*served(1.5, settings.drift_window_rows, seed=1))
    shifted = window.compare(reference, settings)
    assert shifted.drifted
    assert [f.feature for f in shifted.features if f.drifted] == ["petal_length"]
    assert shifted["petal_length"].score > calm["petal_length"].score  # type: ignore[operator]


def test_no_verdict_below_min_rows_and_per_feature_thresholds() -> None:
    settings = DriftSettings(drift_window_rows=100, drift_min_rows=50,
                             drift_thresholds={"sepal_width": 0.01, DRIFT_CLASS_FEATURE: 0.9})  # fmt: skip
    window, reference = Window(100), iris_reference()
    window.add(*served(0.0, 49))
    early = window.compare(reference, settings)
    assert all(f.score is None and not f.drifted for f in early.features)
    window.add(*served(0.0, 51, seed=2))
    result = window.compare(reference, settings)
    assert result["sepal_width"].drifted
    assert result["sepal_width"].threshold == 0.01
    assert result[DRIFT_CLASS_FEATURE].threshold == 0.9
    assert not result[DRIFT_CLASS_FEATURE].drifted
    assert result["petal_length"].threshold == settings.drift_threshold


def test_the_class_mix_drifts_when_one_class_dominates() -> None:
    settings = DriftSettings(drift_window_rows=100, drift_min_rows=10)
    window = Window(100)
    window.add(np.tile([5.1, 3.5, 1.4, 0.2], (100, 1)), [0] * 100)
    result = window.compare(iris_reference(), settings)
    assert result[DRIFT_CLASS_FEATURE].score == pytest.approx(2 / 3)
    assert result[DRIFT_CLASS_FEATURE].drifted


@pytest.mark.parametrize(
    "env",
    [
        {"DRIFT_THRESHOLDS": '{"petal_lenght": 0.2}'},
        {"DRIFT_THRESHOLDS": '{"petal_length": 0}'},
        {"DRIFT_MIN_ROWS": "600", "DRIFT_WINDOW_ROWS": "500"},
        {"DRIFT_THRESHOLD": "1.5"},
    ],
)
def test_bad_drift_settings_are_refused(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        DriftSettings()


def test_drift_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFT_THRESHOLDS", '{"petal_length": 0.3}')
    monkeypatch.setenv("DRIFT_WINDOW_ROWS", "1000")
    settings = DriftSettings()
    assert (settings.threshold("petal_length"), settings.threshold("sepal_length")) == (0.3, settings.drift_threshold)
    assert settings.drift_window_rows == 1000


def test_the_gauges_export_scores_flags_and_rows() -> None:
    registry = CollectorRegistry()
    gauges = DriftGauges(registry)
    settings = DriftSettings(drift_window_rows=200, drift_min_rows=100)
    monitor = DriftMonitor(settings, iris_reference())
    monitor.observe(*served(1.5, 200))
    result = monitor.evaluate()
    gauges.publish(result)
    value = registry.get_sample_value
    assert value("predictor_drift_window_rows") == 200
    assert value("predictor_drift_detected", {"feature": "petal_length"}) == 1
    assert value("predictor_drift_detected", {"feature": "sepal_width"}) == 0
    assert result is not None
    assert value("predictor_drift_score", {"feature": "petal_length"}) == result["petal_length"].score
    monitor.use(None)  # a model trained before references: no verdicts
    gauges.publish(monitor.evaluate())
    assert math.isnan(value("predictor_drift_score", {"feature": "petal_length"}) or 0.0)
    assert value("predictor_drift_detected", {"feature": "petal_length"}) == 0
    assert value("predictor_drift_window_rows") == 0


def test_a_reference_on_other_bins_starts_a_new_window() -> None:
    monitor = DriftMonitor(DriftSettings(drift_window_rows=100, drift_min_rows=10), iris_reference())
    monitor.observe(*served(0.0, 50))
    other = replace(iris_reference(), bin_width=0.5, bin_count=20,
                    histograms={n: (1,) * 20 for n in FEATURES})  # fmt: skip
    monitor.use(other)
    assert monitor.window.rows == 0
    assert monitor.window.bin_count == 20
    monitor.use(iris_reference())
    assert monitor.window.bin_count == BIN_COUNT
