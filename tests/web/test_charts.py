"""The page's pictures in headless Chromium against a real predictor: the petal scatter of the serving model's
training sample with the visitor's flower, and the operators' live accuracy and drift charts (from monitoring
documents of the shared JSON shape, or their empty states), at phone and desktop widths."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from google.cloud import storage
from playwright.sync_api import Browser, Locator, Page, Route, ViewportSize, expect
from sklearn.datasets import load_iris
from sklearn.pipeline import Pipeline

from core import liveaccuracy
from core.drift import Reference
from core.iris import CLASSES, EXAMPLES, FEATURES
from core.lineage import Lineage
from core.store import ModelStore
from devstack.emulators import Service
from tests import keys
from tests.web.conftest import FIRST_METRICS as METRICS
from tests.web.conftest import Console, screenshot, start_predictor
from trainer.model import build

pytestmark = [pytest.mark.browser, pytest.mark.integration]

DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
MONITORING = "**/v1/model/monitoring"
OLD, NEW = "20261204T220000000000Z", "20261205T010000000000Z"
SHIPPED_TIMEOUT_MS = 40_000
"""How long the pod may take to read the bucket's document and ship, window and evaluate served rows."""


def monitoring(serving: str) -> dict[str, Any]:
    """GET /v1/model/monitoring as the shared contract writes it: two versions' live accuracy, the pod's drift."""

    def series(start: int, counts: list[tuple[int, int]]) -> list[dict[str, Any]]:
        return [
            {"time": f"2026-12-05T{start + i // 6:02d}:{(i % 6) * 10:02d}:00.000000Z", "correct": c, "total": t}
            for i, (c, t) in enumerate(counts)
        ]

    offline = {"accuracy": 0.97, "evaluation": 0.96, "accuracy_floor": 0.9}
    versions = {
        OLD: {"correct": 58, "total": 70, "series": series(0, [(9, 10), (27, 30), (45, 52), (58, 70)]),
              "offline": offline},
        NEW: {"correct": 41, "total": 43, "series": series(1, [(10, 10), (19, 20), (29, 31), (41, 43)]),
              "offline": {"accuracy": 0.98, "accuracy_floor": 0.9}},
    }  # fmt: skip
    drift = {
        "updated": "2026-12-05T01:40:00.000000Z",
        "version": serving,
        "window_rows": 412,
        "features": {
            "sepal_length": {"score": 0.05, "threshold": 0.25, "drifted": False},
            "sepal_width": {"score": 0.08, "threshold": 0.25, "drifted": False},
            "petal_length": {"score": 0.41, "threshold": 0.25, "drifted": True},
            "petal_width": {"score": 0.12, "threshold": 0.25, "drifted": False},
            "predicted_class": {"score": 0.31, "threshold": 0.2, "drifted": True},
        },
    }
    accuracy = {"schema": 1, "updated": "2026-12-05T01:50:00.000000Z", "versions": versions}
    return {"version": serving, "accuracy": accuracy, "drift": drift}


def serve(page: Page, body: dict[str, Any] | None, status: int = 200) -> None:
    """Answer the page's monitoring requests with `body` (the route's JSON) or a 404 when None."""

    def answer(route: Route) -> None:
        if body is None:
            error = {"error": {"code": "not_found", "message": "no such route", "details": None}}
            route.fulfill(status=404, content_type="application/json", body=json.dumps(error))
        else:
            route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    page.route(MONITORING, answer)


def open_page(browser: Browser, predictor: Service, viewport: ViewportSize) -> tuple[Page, Console]:
    page = browser.new_page(viewport=viewport)
    console = Console(page)
    return page, console


def no_sideways_scrolling(page: Page, viewport: ViewportSize) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


def legible(label: Locator) -> None:
    """A chart's text is drawn at least 12 px tall on screen (the viewBox is as wide as the chart is shown)."""
    box = label.bounding_box()
    assert box is not None
    assert box["height"] >= 12, f"{label} is {box['height']:.1f} px tall"


def test_scatter_shows_the_sample_and_the_visitors_flower(
    browser: Browser, predictor: Service, first_model: Lineage, tmp_path: Path
) -> None:
    page, console = open_page(browser, predictor, PHONE)
    serve(page, monitoring(first_model.version))
    page.goto(predictor.url + "/")
    scatter = page.locator("#scatter")
    expect(scatter.locator(".point")).to_have_count(150)  # the iris rows the fixture model carries
    for index, species in enumerate(CLASSES):
        expect(scatter.locator(f".species-{index} .point")).to_have_count(50)
        expect(page.locator("#scatter-legend li").nth(index)).to_have_text(species)
    expect(scatter).to_have_attribute("role", "img")
    expect(scatter).to_have_attribute("aria-label", re.compile("setosa: 50 flowers, petal length 1.0 to 1.9 cm"))
    expect(scatter.locator(".visitor")).to_have_count(0)
    expect(scatter.locator(".axis-x text")).not_to_have_count(0)

    page.get_by_role("button", name="Virginica").click()
    expect(page.locator("#result-species")).to_have_text("virginica")
    expect(scatter.locator(".visitor")).to_have_count(1)
    length, width = EXAMPLES["virginica"][2:]
    told = f"Your flower: petal length {length} cm, width {width} cm, predicted virginica."
    expect(scatter).to_have_attribute("aria-label", re.compile(re.escape(told)))
    placed = scatter.locator(".visitor-star").bounding_box()
    page.get_by_role("button", name="Setosa").click()
    expect(page.locator("#result-species")).to_have_text("setosa")
    expect(scatter.locator(".visitor")).to_have_count(1)
    moved = scatter.locator(".visitor-star").bounding_box()
    assert placed is not None
    assert moved is not None
    assert moved["x"] < placed["x"], "setosa's petals are shorter"
    assert moved["y"] > placed["y"], "and narrower"
    legible(scatter.locator(".axis-title").first)
    legible(scatter.locator(".axis-x text").first)
    no_sideways_scrolling(page, PHONE)
    screenshot(page, tmp_path, "scatter-phone")
    screenshot(page.locator("#scatter-panel"), tmp_path, "scatter-card-phone")
    narrow = scatter.get_attribute("viewBox")
    page.set_viewport_size(DESKTOP)  # drawn again at the width it is shown
    expect(scatter).not_to_have_attribute("viewBox", str(narrow))
    expect(scatter.locator(".point")).to_have_count(150)
    expect(scatter.locator(".visitor")).to_have_count(1)
    legible(scatter.locator(".axis-x text").first)
    assert console.errors == []
    assert console.failed == []


def open_operators(page: Page) -> None:
    page.get_by_text("Operators: live accuracy and drift").click()
    expect(page.locator("#operators")).to_have_attribute("open", "")


def test_operator_charts_draw_live_accuracy_and_drift(
    browser: Browser, predictor: Service, first_model: Lineage, tmp_path: Path
) -> None:
    for viewport, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page, console = open_page(browser, predictor, viewport)
        serve(page, monitoring(NEW))
        page.goto(predictor.url + "/")
        page.get_by_role("button", name="Versicolor").click()
        expect(page.locator("#result-species")).to_have_text("versicolor")
        open_operators(page)
        chart = page.locator("#accuracy-chart")
        expect(chart.locator(".live-line")).to_have_count(2)
        expect(chart.locator(".live-point")).to_have_count(8)
        expect(chart.locator(".offline-line.heldout")).to_have_count(2)
        expect(chart.locator(".offline-line.evaluation")).to_have_count(1)  # the newer version has no evaluation
        expect(chart.locator(".floor-line")).to_have_count(1)
        expect(chart.locator(".floor-label")).to_have_text("floor 90.0 %")
        expect(chart).to_have_attribute("role", "img")
        expect(chart).to_have_attribute("aria-label", re.compile(re.escape(f"{NEW}: live 95.3 % (41 of 43)")))
        expect(page.locator("#accuracy-versions .version-item")).to_have_count(2)
        serving = page.locator(f'#accuracy-versions .version-item[data-version="{NEW}"]')
        expect(serving).to_contain_text("serving")
        expect(serving).to_contain_text("live 95.3 % (41 of 43) · held-out 98.0 % · floor 90.0 %")
        expect(page.locator("#accuracy-empty")).to_be_hidden()

        drift = page.locator("#drift-chart")
        expect(drift.locator(".drift-bar")).to_have_count(5)
        expect(drift.locator(".threshold")).to_have_count(5)
        expect(drift.locator(".drifted")).to_have_count(2)
        expect(drift.locator(".drifted .drift-label")).to_have_text(["Petal length", "Predicted class"])
        expect(drift.locator(".drift-label").first).to_have_text("Sepal length")
        bars = [drift.locator(".drift-bar").nth(i).bounding_box() for i in (0, 2)]
        assert bars[0] is not None
        assert bars[1] is not None
        assert bars[1]["width"] > 5 * bars[0]["width"], "a score of 0.41 is drawn longer than one of 0.05"
        expect(drift).to_have_attribute("aria-label", re.compile("Drifted: Petal length, Predicted class"))
        expect(page.locator("#drift-caption")).to_contain_text("newest 412 served rows")
        expect(page.locator("#drift-empty")).to_be_hidden()

        for label in (
            chart.locator(".axis-x text").first,
            chart.locator(".floor-label"),
            drift.locator(".drift-label").first,
        ):
            legible(label)
        no_sideways_scrolling(page, viewport)
        screenshot(page, tmp_path, f"operators-{name}")
        screenshot(page.locator("#operators"), tmp_path, f"operators-card-{name}")
        assert console.errors == []
        assert console.failed == []
        page.close()


def test_a_model_without_a_sample_says_so_and_still_places_the_flower(
    browser: Browser, predictor: Service, first_model: Lineage, store: ModelStore, tmp_path: Path
) -> None:
    page, console = open_page(browser, predictor, DESKTOP)
    page.goto(predictor.url + "/")
    expect(page.locator("#scatter .point")).to_have_count(150)
    iris = load_iris()
    older_kind = build().fit(iris.data, np.asarray(CLASSES)[iris.target])  # as trained before models had a sample
    second = store.publish(older_kind, data_fingerprint="sha256:second", row_count=150, metrics={"accuracy": 0.97})
    expect(page.locator("#model-version")).to_have_text(second.version, timeout=10_000)
    expect(page.locator("#scatter-status")).to_have_text(re.compile("carries no training data to show"))
    expect(page.locator("#scatter-figure")).to_be_hidden()
    page.get_by_role("button", name="Versicolor").click()
    expect(page.locator("#result-species")).to_have_text("versicolor")
    expect(page.locator("#scatter .visitor")).to_have_count(1)
    expect(page.locator("#scatter .point")).to_have_count(0)
    screenshot(page.locator("#scatter-panel"), tmp_path, "scatter-no-sample-desktop")
    assert console.errors == []
    assert console.failed == [f"404 {predictor.url}/v1/model/training-sample"]


@pytest.mark.parametrize("answer", ["missing route", "no figures", "no versions, no features"])
def test_operator_charts_say_when_there_is_nothing_to_draw(
    browser: Browser, predictor: Service, first_model: Lineage, answer: str, tmp_path: Path
) -> None:
    page, console = open_page(browser, predictor, PHONE)
    bodies: dict[str, dict[str, Any] | None] = {
        "missing route": None,
        "no figures": {"version": first_model.version, "accuracy": None, "drift": None},
        "no versions, no features": {
            "version": first_model.version,
            "accuracy": {"schema": 1, "updated": "2026-12-05T01:50:00.000000Z", "versions": {}},
            "drift": {"updated": "2026-12-05T01:40:00.000000Z", "version": first_model.version, "window_rows": 0,
                      "features": {}},
        },
    }  # fmt: skip
    serve(page, bodies[answer])
    page.goto(predictor.url + "/")
    expect(page.locator("#model-version")).to_have_text(first_model.version)
    open_operators(page)
    expect(page.locator("#accuracy-empty")).to_be_visible()
    expect(page.locator("#accuracy-empty")).to_contain_text("No feedback yet")
    expect(page.locator("#drift-empty")).to_be_visible()
    expect(page.locator("#drift-empty")).to_contain_text("No drift figures yet")
    expect(page.locator("#accuracy-figure")).to_be_hidden()
    expect(page.locator("#drift-figure")).to_be_hidden()
    expect(page.locator("#operators-status")).to_be_hidden()
    assert page.locator("#accuracy-chart *").count() == 0
    if answer == "missing route":
        screenshot(page, tmp_path, "operators-empty-phone")
    assert console.errors == []
    assert [f for f in console.failed if "/v1/model/monitoring" not in f] == []


def test_operator_charts_from_a_running_pod(
    browser: Browser,
    common_env: dict[str, str],
    store: ModelStore,
    fitted_model: Pipeline,
    storage_client: storage.Client,
    bucket_name: str,
    tmp_path: Path,
) -> None:
    """The whole way: the bucket's live accuracy document and shifted traffic through the prediction log reach the
    pod's model agent, which hands them to the worker's GET /v1/model/monitoring, which the page draws."""
    iris = load_iris()
    reference = Reference.of(iris.data, np.asarray(CLASSES)[iris.target]).to_lineage()
    served = store.publish(
        fitted_model, data_fingerprint="sha256:served", row_count=150, metrics=METRICS, reference=reference
    )
    (tmp_path / "handover").mkdir()
    env = {
        **common_env, "WEB_CONCURRENCY": "1", "MODEL_EVENTS_ENABLED": "false", "RECONCILE_INTERVAL_WITHOUT_EVENTS": "1",
        "HANDOVER_DIR": str(tmp_path / "handover"), "PREDICTION_LOG_DIR": str(tmp_path / "spool"),
        "PREDICTION_LOG_ROTATE_SECONDS": "1", "PREDICTION_LOG_BATCH_INTERVAL": "1", "POD_NAME": "pod-a",
        "DRIFT_WINDOW_ROWS": "150", "DRIFT_MIN_ROWS": "150", "LIVE_ACCURACY_INTERVAL": "1",
    }  # fmt: skip
    pod = start_predictor(env, tmp_path / "predictor.log")
    try:
        document = monitoring(served.version)["accuracy"]
        document["versions"] = {OLD: document["versions"][OLD], served.version: document["versions"][NEW]}
        liveaccuracy.write(storage_client.bucket(bucket_name), "feedback/", json.dumps(document).encode(), keys.KEYRING)
        shifted = iris.data.copy()
        shifted[:, FEATURES.index("petal_length")] += 1.5
        instances = [dict(zip(FEATURES, row, strict=True)) for row in shifted.tolist()]
        assert requests.post(f"{pod.url}/predict", json={"instances": instances}, timeout=10).status_code == 200

        page, console = open_page(browser, pod, DESKTOP)
        page.goto(pod.url + "/")
        expect(page.locator("#model-live")).to_have_text("95.3 % (41 of 43 labelled)", timeout=SHIPPED_TIMEOUT_MS)
        open_operators(page)
        chart = page.locator("#accuracy-chart")
        expect(chart.locator(".live-line")).to_have_count(2)
        expect(page.locator(f'#accuracy-versions .version-item[data-version="{served.version}"]')).to_contain_text(
            "serving"
        )
        drift = page.locator("#drift-chart")
        expect(drift.locator(".drift-bar")).to_have_count(5, timeout=SHIPPED_TIMEOUT_MS)
        expect(drift.locator(".drifted .drift-label").first).to_have_text("Petal length")
        expect(page.locator("#drift-caption")).to_contain_text("newest 150 served rows")
        screenshot(page, tmp_path, "operators-pod-desktop")
        assert console.errors == []
        assert console.failed == []
    finally:
        pod.stop()
