"""The page in headless Chromium against a real predictor on fake-gcs-server: predict, hot swap, errors, examples."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect
from sklearn.pipeline import Pipeline

from core import layout
from core.iris import EXAMPLES, FEATURES
from core.lineage import Lineage, Provenance, Trigger
from core.store import ModelStore
from devstack.emulators import Service
from tests.web.conftest import Console, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SWAP_TIMEOUT_MS = 10_000
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 360, "height": 780}


def open_page(browser: Browser, predictor: Service, viewport: ViewportSize) -> tuple[Page, Console]:
    page = browser.new_page(viewport=viewport)
    console = Console(page)
    page.goto(predictor.url + "/")
    return page, console


def fill(page: Page, values: dict[str, str]) -> None:
    for name, value in values.items():
        page.get_by_label(name.replace("_", " ").capitalize(), exact=True).fill(value)


def test_predict_and_watch_a_hot_swap_land(
    browser: Browser,
    predictor: Service,
    first_model: Lineage,
    store: ModelStore,
    fitted_model: Pipeline,
    tmp_path: Path,
) -> None:
    page, console = open_page(browser, predictor, DESKTOP)
    expect(page.locator("#model-version")).to_have_text(first_model.version)
    expect(page.locator("#model-accuracy")).to_have_text("97.0 %")
    expect(page.locator("#model-rows")).to_have_text("150 rows")

    fill(page, dict(zip(FEATURES, ["6.7", "3.1", "5.8", "2.2"], strict=True)))
    page.get_by_label("Petal width", exact=True).press("Enter")  # the keyboard submits the form
    expect(page.locator("#result-species")).to_have_text("virginica")
    expect(page.locator("#result-version")).to_have_text(first_model.version)
    expect(page.locator(".bar-row.top .bar-value")).to_have_text(re.compile(r"^\d+\.\d %$"))

    expect(page.locator("#model-trigger")).to_have_text("a manual run")
    expect(page.locator("#model-files li")).to_have_text(["—"])
    finalized = datetime.now(UTC) - timedelta(seconds=2)
    provenance = Provenance(Trigger.EVENT, ("data/new.csv#17", "data/iris.csv#3"), finalized)
    second = store.publish(
        fitted_model,
        data_fingerprint="sha256:second",
        row_count=300,
        metrics={"accuracy": 0.98},
        provenance=provenance,
        feedback_rows=40,
    )
    expect(page.locator("#model-version")).to_have_text(second.version, timeout=SWAP_TIMEOUT_MS)
    expect(page.locator("#model-announce")).to_contain_text(f"now serving {second.version} (was {first_model.version})")
    expect(page.locator("#model-changed")).to_be_visible()
    expect(page.locator("#model-rows")).to_have_text("300 rows (40 from feedback)")
    expect(page.locator("#model-trigger")).to_have_text(
        re.compile(r"^new data, published 2\.\d s after its newest file$")
    )
    expect(page.locator("#model-files li")).to_have_text(["data/new.csv", "data/iris.csv"])
    expect(page.locator("#model-files li").first).to_have_attribute("title", "generation 17")
    expect(page.locator("#model-history .history-item").first).to_contain_text(second.version)
    expect(page.locator("#model-history .history-item").first).to_contain_text("swapped")
    load_time = page.locator("#model-history .history-item .history-meta").first
    expect(load_time).to_contain_text(re.compile(r"· (\d+(\.\d)? ms|\d+\.\d\d s)$"))
    expect(load_time).not_to_contain_text(re.compile(r"· 0(\.0+)? m?s$"))

    page.get_by_role("button", name="Predict species").click()
    expect(page.locator("#result-version")).to_have_text(second.version)
    screenshot(page, tmp_path, "predict-and-swap-desktop")
    assert console.errors == []
    assert console.failed == []
    assert console.origins == {predictor.host}, "the page fetched something the app does not serve"


def test_errors_examples_and_rejections_on_a_phone(
    browser: Browser, predictor: Service, first_model: Lineage, store: ModelStore, tmp_path: Path
) -> None:
    page, console = open_page(browser, predictor, PHONE)
    expect(page.locator("#model-version")).to_have_text(first_model.version)

    fill(page, dict(zip(FEATURES, ["5.1", "3.5", "1.4", "-1"], strict=True)))
    page.get_by_role("button", name="Predict species").click()
    expect(page.locator("#petal_width-error")).to_have_text("negative measurement")
    expect(page.locator("#petal_width")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#petal_width")).to_be_focused()
    expect(page.locator("#result-error")).to_contain_text("instances[0].petal_width: negative measurement")
    screenshot(page, tmp_path, "invalid-input-phone")

    fill(page, {"petal_width": "0.2", "sepal_width": ""})
    page.get_by_role("button", name="Predict species").click()
    expect(page.locator("#sepal_width-error")).to_have_text("missing feature")
    expect(page.locator("#petal_width-error")).to_be_empty()

    unsigned = layout.model_object(layout.format_version(layout.version_time(first_model.version).replace(year=2999)))
    store.bucket.blob(unsigned).upload_from_string(b"not a model")
    rejected = page.locator("#model-history .history-item", has_text="rejected")
    expect(rejected).to_contain_text("unsigned: the artifact carries no signature", timeout=SWAP_TIMEOUT_MS)
    expect(rejected.locator(".history-detail")).to_have_text("artifact has no signature in its metadata")
    expect(page.locator("#model-version")).to_have_text(first_model.version)

    for species, values in EXAMPLES.items():
        page.get_by_role("button", name=species.capitalize()).click()
        expect(page.locator("#result-species")).to_have_text(species)
        expect(page.locator("#sepal_width")).to_have_value(str(values[1]))
    expect(page.locator("#sepal_width-error")).to_be_empty()

    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= PHONE["width"], "the page scrolls sideways at 360 px"
    screenshot(page, tmp_path, "errors-examples-phone")
    assert console.errors == []
    assert [f for f in console.failed if not f.startswith("400 ")] == []
