"""Typed access to a predictor app's per-app state (kept in ``app.extensions``): its settings, registry and metrics.

`install` puts them there once, in the app factory; every reader goes through the accessors, which check the type, so
no module spells the keys or casts what it gets.
"""

from __future__ import annotations

from typing import Any, TypeVar

from flask import Flask, current_app

from predictor.metrics import Metrics
from predictor.registry import Registry
from predictor.settings import PredictorSettings

T = TypeVar("T")
SETTINGS, REGISTRY, METRICS = "settings", "registry", "metrics"


def install(app: Flask, settings: PredictorSettings, registry: Registry, metrics: Metrics) -> None:
    app.extensions.update({SETTINGS: settings, REGISTRY: registry, METRICS: metrics})


def settings(app: Flask | None = None) -> PredictorSettings:
    """The app's settings (the current app's by default)."""
    return _get(app, SETTINGS, PredictorSettings)


def registry(app: Flask | None = None) -> Registry:
    """The app's model registry."""
    return _get(app, REGISTRY, Registry)


def metrics(app: Flask | None = None) -> Metrics:
    """The app's metric families."""
    return _get(app, METRICS, Metrics)


def _get(app: Flask | None, key: str, kind: type[T]) -> T:
    found: Any = (app or current_app).extensions.get(key)
    if not isinstance(found, kind):
        raise RuntimeError(f"the app has no {kind.__name__} (built by predictor.app.create_app?)")
    return found
