"""The page for people at GET /: a measurement form, a petal scatter of the serving model's training sample with the
visitor's flower, a live model panel and, for operators, live accuracy and drift charts (static assets served by the
app).

Features, their range and the example flowers come from core.iris and are rendered into the page server-side, so
the form and the API share one source of truth. The page talks to the JSON API (`POST /predict`, `GET /v1/model`,
`GET /v1/model/training-sample`, `GET /v1/model/monitoring`) with fetch from `static/app.js`; `static/charts.js`
draws the charts as plain SVG (no library, nothing fetched from elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, render_template

from core.iris import CLASSES, EXAMPLES, FEATURES, MAX_CM

bp = Blueprint("web", __name__, static_folder="static", static_url_path="/assets", template_folder="templates")

STEP_CM = 0.1
"""Granularity of the number inputs (the iris data set is measured to a millimetre)."""
POLL_INTERVAL_MS = 2000
"""How often the page polls GET /v1/model to show a hot swap as it lands."""


@dataclass(frozen=True)
class Field:
    """One measurement input of the form."""

    name: str
    label: str
    minimum: float
    maximum: float
    step: float


def feature_label(name: str) -> str:
    """`sepal_length` -> `Sepal length`."""
    return name.replace("_", " ").capitalize()


def form_fields() -> list[Field]:
    """The form's inputs, one per schema feature, bounded like the API's own check."""
    return [Field(name, feature_label(name), 0.0, MAX_CM, STEP_CM) for name in FEATURES]


def examples() -> list[dict[str, Any]]:
    """The example flowers as {species, values: {feature: cm}}, in schema order."""
    return [{"species": s, "values": dict(zip(FEATURES, v, strict=True))} for s, v in EXAMPLES.items()]


def page_config() -> dict[str, Any]:
    """What app.js needs to know, embedded into the page as JSON."""
    return {"features": list(FEATURES), "classes": list(CLASSES), "poll_ms": POLL_INTERVAL_MS}


@bp.get("/")
def index() -> str:
    return render_template("index.html", fields=form_fields(), examples=examples(), config=page_config())
