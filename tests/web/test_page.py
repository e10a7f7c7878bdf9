"""GET / through Flask's test client: the form, the examples and the static assets it links (no server, no browser)."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.iris import CLASSES, EXAMPLES, FEATURES, MAX_CM
from predictor.http import page as page_module


class Page(HTMLParser):
    """Collects the tags of a page with their attributes, and the text of <script type=application/json>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.config_text = ""
        self._in_config = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_config = tag == "script" and dict(attrs).get("id") == "page-config"

    def handle_endtag(self, tag: str) -> None:
        self._in_config = False

    def handle_data(self, data: str) -> None:
        if self._in_config:
            self.config_text += data

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


@pytest.fixture
def client() -> FlaskClient:
    app = Flask("predictor")
    app.register_blueprint(page_module.bp)
    return app.test_client()


@pytest.fixture
def page(client: FlaskClient) -> Page:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    parsed = Page()
    parsed.feed(response.get_data(as_text=True))
    return parsed


def test_form_has_one_bounded_number_input_per_feature(page: Page) -> None:
    inputs = [a for a in page.find("input") if a.get("type") == "number"]
    assert [a["name"] for a in inputs] == list(FEATURES)
    for field in inputs:
        assert field["inputmode"] == "decimal"
        assert float(field["min"] or "nan") == 0.0
        assert float(field["max"] or "nan") == MAX_CM
        assert float(field["step"] or "nan") == pytest.approx(0.1)
        assert page.find("label", **{"for": str(field["id"])}), f"no label for {field['id']}"
        assert f"{field['id']}-error" in str(field["aria-describedby"]).split()


def test_form_leaves_validation_to_the_server(page: Page) -> None:
    (form,) = page.find("form", id="predict-form")
    assert "novalidate" in form


def test_examples_are_the_schema_examples(page: Page) -> None:
    buttons = [a for a in page.find("button") if "example" in str(a.get("class")).split()]
    got = {b["data-species"]: json.loads(str(b["data-values"])) for b in buttons}
    assert got == {species: dict(zip(FEATURES, values, strict=True)) for species, values in EXAMPLES.items()}


def test_page_config_comes_from_the_schema(page: Page) -> None:
    config = json.loads(page.config_text)
    assert config["features"] == list(FEATURES)
    assert config["classes"] == list(CLASSES)
    assert config["poll_ms"] == page_module.POLL_INTERVAL_MS


def test_page_is_phone_ready_and_asks_for_no_favicon(page: Page) -> None:
    (viewport,) = page.find("meta", name="viewport")
    assert "width=device-width" in str(viewport["content"])
    (icon,) = page.find("link", rel="icon")
    assert str(icon["href"]).startswith("data:")
    assert page.find("html", lang="en")


def test_live_regions_for_the_result_and_model_changes(page: Page) -> None:
    assert page.find("div", id="result")[0]["aria-live"] == "polite"
    assert page.find("p", id="model-announce")[0]["aria-live"] == "polite"
    assert page.find("p", id="form-error")[0]["role"] == "alert"


def test_linked_assets_are_local_and_served(page: Page, client: FlaskClient) -> None:
    urls = [str(a["href"]) for a in page.find("link", rel="stylesheet")]
    urls += [str(a["src"]) for t, a in page.tags if t == "script" and a.get("src")]
    assert len(urls) == 3
    expected = {"text/css", "text/javascript"}
    got = set()
    for url in urls:
        assert url.startswith("/"), f"{url} is not served by the app"
        with client.get(url) as response:
            assert response.status_code == 200, url
            assert response.get_data(), url
            got.add(response.mimetype)
    assert got == expected
